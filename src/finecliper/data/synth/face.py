"""Geometry of a SynthDFER face: one frame's parameters -> the 68 landmarks and the shapes to draw.

The face is built in "face units" (half face width ~1, y down, origin near the nose) as dense
contours, each with a depth so that head yaw/pitch/roll can be applied as a rotation followed by
an orthographic projection. The 68 iBUG landmarks are *samples of the same contours that are
drawn*: eye corners are the first and last points of the drawn eyelid curves, mouth corners the
ends of the drawn lip contours, brow points lie on the drawn brow's centre line, the jaw points on
the drawn face outline. So the landmarks are exact by construction. The projected contours become
drawing operations in :mod:`finecliper.data.synth.shapes`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from finecliper.data.synth.scenario import AU, Identity
from finecliper.data.synth.shapes import Shape, body_shapes, face_shapes

CENTRE_Y = 0.05  # the head outline's centre line, in face units
# Depth of landmarks 27-35 (the nose stands out), and of the nose region polygon, whose bottom
# edge is landmarks 31-35 with the same depths so the region follows them under head rotation.
NOSE_DEPTH = np.array([0.42, 0.52, 0.62, 0.72, 0.45, 0.55, 0.6, 0.55, 0.45])
NOSE_REGION_DEPTH = np.concatenate(
    [[0.42, 0.5, 0.58, 0.45], NOSE_DEPTH[4:], [0.45, 0.58, 0.5, 0.42]]
)

# Dense parameter grids; landmark samples are taken at fixed indices of them.
_JAW_PHI = np.deg2rad(np.linspace(-100.0, 100.0, 33))  # landmarks 0..16 at every 2nd sample
_CROWN_PHI = np.deg2rad(np.linspace(110.0, 250.0, 15))
_EYE_T = np.linspace(-1.0, 1.0, 13)  # corners at 0 and 12, lid points at 4 and 8 (t = -+1/3)
_BROW_S = np.linspace(0.0, 1.0, 9)  # outer end 0 -> inner end 8, landmarks at even samples
_MOUTH_T = np.array([-1, -0.85, -0.62, -0.42, -0.25, -0.12, 0, 0.12, 0.25, 0.42, 0.62, 0.85, 1])
_INNER_S = np.array([-1, -0.72, -0.45, -0.22, 0, 0.22, 0.45, 0.72, 1])
_INNER_SPAN = 0.92  # inner lip corners sit this fraction of the way to the outer corners
_CIRCLE = np.linspace(0.0, 2 * np.pi, 16, endpoint=False)


def _down(dy: float) -> np.ndarray:
    return np.array([0.0, dy])


def _superellipse(phi: np.ndarray, ident: Identity, jaw_open: float) -> np.ndarray:
    """Head outline at angles ``phi`` (0 = chin, +-180 deg = crown; negative = image left)."""
    s, c = np.sin(phi), np.cos(phi)
    lower = c >= 0
    n = np.where(lower, ident.jaw_n, ident.crown_n)
    b = np.where(lower, ident.jaw_h, ident.crown_h)
    down = np.maximum(c, 0.0)
    x = ident.head_w * np.sign(s) * np.abs(s) ** (2 / n)
    x *= 1.0 - ident.chin_taper * down**2 - 0.05 * jaw_open * down
    y = CENTRE_Y + b * np.sign(c) * np.abs(c) ** (2 / n) + 0.36 * jaw_open * down**1.5
    return np.stack([x, y], axis=1)


def _ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    return np.stack([cx + rx * np.cos(_CIRCLE), cy + ry * np.sin(_CIRCLE)], axis=1)


def _eye(
    ident: Identity, side: int, au: np.ndarray, blink: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Upper and lower lid curves (13 points each, image-left corner first) of one eye."""
    widen, tighten = au[AU["eye_widen"]], au[AU["lid_tighten"]]
    cheek, down = au[AU["cheek_raise"]], au[AU["gaze_down"]]
    cx = side * ident.eye_x
    x = cx + ident.eye_w * _EYE_T
    base = ident.eye_y - ident.eye_tilt * _EYE_T * side
    open_up = ident.eye_up * max(0.05, 1 + 0.9 * widen - 0.4 * tighten - 0.2 * cheek - 0.3 * down)
    open_lo = ident.eye_lo * max(0.05, 1 + 0.25 * widen - 0.45 * tighten - 0.55 * cheek)
    dome = 1.0 - _EYE_T**2
    closed = base + 0.35 * open_lo * dome**0.9
    upper = base - open_up * dome**0.75
    lower = base + open_lo * dome**0.9
    opening = 1.0 - blink
    upper = closed + (upper - closed) * opening
    lower = closed + (lower - closed) * min(1.0, 2.5 * opening)
    return np.stack([x, upper], 1), np.stack([x, lower], 1), open_up


def _brow(ident: Identity, side: int, au: np.ndarray, flash: float) -> np.ndarray:
    """Centre line of one brow, 9 points from the outer end to the inner end."""
    inner_raise = min(1.0, au[AU["brow_inner_raise"]] + flash)
    outer_raise = min(1.0, au[AU["brow_outer_raise"]] + flash)
    lower = au[AU["brow_lower"]]
    together = min(1.0, au[AU["brow_together"]] + 0.5 * lower)
    s = _BROW_S
    x = side * (ident.brow_outer + (ident.brow_inner - ident.brow_outer) * s)
    x -= side * 0.08 * together * s**1.2  # inner ends stay >= 0.06 from the midline
    y = ident.eye_y - ident.brow_gap - ident.brow_arch * np.sin(np.pi * (0.15 + 0.7 * s))
    y -= 0.2 * inner_raise * (0.15 + 0.85 * s**1.3)
    y -= 0.18 * outer_raise * (1.0 - 0.6 * s)
    y += 0.14 * lower * (0.45 + 0.55 * s) + 0.03 * together * s
    return np.stack([x, y], 1)


def _brow_polygon(ident: Identity, centre: np.ndarray) -> np.ndarray:
    half = 0.5 * ident.brow_thick * (0.65 + 0.35 * _BROW_S)
    top = centre - np.stack([np.zeros_like(half), half], 1)
    bottom = centre + np.stack([np.zeros_like(half), half], 1)
    return np.concatenate([top, bottom[::-1]])


def _nose(ident: Identity, au: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks 27-35 and the nose region polygon."""
    wrinkle, lip_raise = au[AU["nose_wrinkle"]], au[AU["upper_lip_raise"]]
    top = ident.eye_y - 0.02
    tip = ident.nose_tip_y - 0.02 * wrinkle
    lift = 0.04 * wrinkle + 0.02 * lip_raise
    width = ident.nose_w + 0.03 * wrinkle
    bottom = ident.nose_tip_y + 0.08 - lift
    bridge = np.array([[0, top], [0, top + (tip - top) / 3], [0, top + 2 * (tip - top) / 3]])
    base = np.array(
        [
            [-width, bottom - 0.05],
            [-0.5 * width, bottom - 0.015],
            [0.0, bottom],
            [0.5 * width, bottom - 0.015],
            [width, bottom - 0.05],
        ]
    )
    landmarks = np.concatenate([bridge, [[0.0, tip]], base])
    left_side = np.array(
        [
            [-0.065, top],
            [-0.075, bridge[1, 1]],
            [-0.5 * width - 0.01, bridge[2, 1] + 0.02],
            [-width - 0.03, bottom - 0.1],
        ]
    )
    right_side = left_side[::-1] * np.array([-1.0, 1.0])
    region = np.concatenate([left_side, base, right_side])
    return landmarks, region


def _mouth(
    ident: Identity, au: np.ndarray, speech: float, rounding: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Outer upper/lower (13 points each) and inner upper/lower (9 each) lip contours."""
    pull, depress = au[AU["lip_corner_pull"]], au[AU["lip_corner_depress"]]
    stretch, press = au[AU["lip_stretch"]], au[AU["lip_press"]]
    lip_raise, wrinkle = au[AU["upper_lip_raise"]], au[AU["nose_wrinkle"]]
    jaw = au[AU["jaw_drop"]] + speech
    half = ident.mouth_w * (1 + 0.22 * pull + 0.3 * stretch - 0.08 * press - 0.06 * jaw)
    half *= 1 - 0.22 * rounding
    corner_dy = -0.13 * pull + 0.13 * depress + 0.02 * stretch + 0.06 * jaw + 0.02 * wrinkle
    gap_up = 0.05 * lip_raise + 0.015 * jaw + 0.01 * stretch
    gap_lo = 0.34 * jaw + 0.02 * stretch + 0.01 * pull
    thin = 0.55 * press + 0.3 * stretch
    lip_up = ident.lip_up * max(0.25, 1 - 0.3 * pull - thin + 0.15 * rounding + 0.2 * lip_raise)
    lip_lo = ident.lip_lo * max(0.25, 1 - 0.2 * pull - thin + 0.2 * rounding)

    def line(t: np.ndarray) -> np.ndarray:
        return ident.mouth_y + corner_dy * t**2

    def gap(t: np.ndarray) -> np.ndarray:
        return (1.0 - np.clip(t / _INNER_SPAN, -1, 1) ** 2) ** 0.7

    t = _MOUTH_T
    bow = (1 - np.abs(t) ** 1.8) ** 0.8 * (1 - 0.2 * np.exp(-((t / 0.15) ** 2)))
    outer_up = np.stack([half * t, line(t) - gap_up * gap(t) - lip_up * bow], 1)
    outer_lo = np.stack([half * t, line(t) + gap_lo * gap(t) + lip_lo * (1 - t**2) ** 0.7], 1)
    s = _INNER_S * _INNER_SPAN
    inner_up = np.stack([half * s, line(s) - gap_up * gap(s)], 1)
    inner_lo = np.stack([half * s, line(s) + gap_lo * gap(s)], 1)
    return outer_up, outer_lo, inner_up, inner_lo


def _landmarks(
    jaw: np.ndarray,
    brows: tuple[np.ndarray, np.ndarray],
    nose: np.ndarray,
    eyes: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    mouth: tuple[np.ndarray, ...],
) -> np.ndarray:
    """The 68 iBUG points, each a sample of a drawn contour."""
    right_brow, left_brow = brows
    (r_up, r_lo), (l_up, l_lo) = eyes
    outer_up, outer_lo, inner_up, inner_lo = mouth
    return np.concatenate(
        [
            jaw[::2],  # 0-16
            right_brow[::2],  # 17-21: outer -> inner
            left_brow[::-2],  # 22-26: inner -> outer
            nose,  # 27-35
            r_up[[0, 4, 8, 12]],  # 36-39
            r_lo[[8, 4]],  # 40-41
            l_up[[0, 4, 8, 12]],  # 42-45
            l_lo[[8, 4]],  # 46-47
            outer_up[[0, 2, 4, 6, 8, 10, 12]],  # 48-54
            outer_lo[[10, 8, 6, 4, 2]],  # 55-59
            inner_up[[0, 2, 4, 6, 8]],  # 60-64
            inner_lo[[6, 4, 2]],  # 65-67
        ]
    )


def _depth(points: np.ndarray, ident: Identity) -> np.ndarray:
    """A rounded face surface: features stand out in front of the outline (depth 0)."""
    rx = points[:, 0] / ident.head_w
    ry = (points[:, 1] - CENTRE_Y) / ident.jaw_h
    return 0.45 * np.sqrt(np.clip(1.0 - rx**2 - 0.3 * ry**2, 0.0, None))


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return (rz @ rx @ ry)[:2]


class _Builder:
    """Collects canonical point sets with depths, then projects them all at once."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.points: list[np.ndarray] = []
        self.depths: list[np.ndarray] = []

    def add(self, name: str, points: np.ndarray, depth: np.ndarray | float) -> None:
        self.names.append(name)
        self.points.append(np.asarray(points, float))
        self.depths.append(depth if isinstance(depth, np.ndarray) else np.full(len(points), depth))

    def project(self, rotation: np.ndarray, scale: float, centre: np.ndarray):
        xyz = np.concatenate(
            [np.concatenate(self.points), np.concatenate(self.depths)[:, None]], axis=1
        )
        pixels = xyz @ rotation.T * scale + centre
        out, start = {}, 0
        for name, pts in zip(self.names, self.points, strict=True):
            out[name] = pixels[start : start + len(pts)]
            start += len(pts)
        return out


def _hair_parts(b: _Builder, ident: Identity, crown: np.ndarray) -> None:
    """Back hair (drawn behind the face) and the front hair cap with its hairline."""
    style, vol, hw = ident.hair_style, ident.hair_volume, ident.head_w
    if style == "none":
        return
    grown = (crown - [0.0, CENTRE_Y]) * [1 + 0.6 * vol, 1 + vol] + [0.0, CENTRE_Y]
    if style == "long":
        sides = np.array(
            [
                [-hw * (1.12 + vol), 0.3],
                [-hw * (1.0 + vol), 1.6],
                [-0.45, 1.72],
                [0.45, 1.72],
                [hw * (1.0 + vol), 1.6],
                [hw * (1.12 + vol), 0.3],
            ]
        )
        b.add("hair_back", np.concatenate([grown[::-1], sides[::-1]]), 0.0)
    elif style == "afro":
        afro = _ellipse(0.0, -0.45, hw * (1.35 + vol), ident.crown_h * (0.85 + 0.5 * vol))
        b.add("hair_back", afro, 0.0)
    elif style == "bun":
        b.add("hair_back", _ellipse(0, CENTRE_Y - ident.crown_h - 0.12, 0.3, 0.26), 0.0)
    # a fringe hangs lower, but stays above the highest raised brow (about -0.88)
    line_y = min(ident.hairline_y + 0.04, -0.96) if style == "fringe" else ident.hairline_y
    temple = crown[[0, -1]] * [0.97, 1.0]  # where the sideburns meet the outline
    xs = np.array([-0.9, -0.55, -0.25, 0.0, 0.25, 0.55, 0.9]) * hw
    ys = line_y + 0.09 * (np.abs(xs) / hw) ** 2
    ys[[0, -1]] = -0.72
    if style == "fringe":
        ys[1:-1] += np.array([0.0, 0.03, -0.01, 0.03, 0.0])
    # grown[::-1] runs image-left -> crown -> image-right; the hairline runs back right -> left
    hairline = np.concatenate([temple[:1], np.stack([xs, ys], 1)[::-1], temple[-1:]])
    b.add("hair_front", np.concatenate([grown[::-1], hairline]), 0.15)


def _accessory_parts(
    b: _Builder,
    ident: Identity,
    jaw_outline: np.ndarray,
    mouth: tuple[np.ndarray, ...],
    nose_bottom: float,
    crown: np.ndarray,
) -> None:
    """Beard, moustache, hat and glasses, in face units."""
    outer_up, outer_lo, _, _ = mouth
    if ident.beard != "none":
        span = slice(5, 28) if ident.beard == "full" else slice(11, 22)
        lower = jaw_outline[span]
        chin_line = outer_lo[::-1] + _down(0.05)
        if ident.beard == "full":
            ends = np.array([[outer_up[-1, 0] + 0.12, outer_up[-1, 1]]])
            upper = np.concatenate([ends, chin_line, ends * [-1.0, 1.0]])
        else:
            upper = chin_line[2:-2]
        b.add("beard", np.concatenate([lower, upper]), 0.3)
    if ident.moustache:
        lower = outer_up * [1.08, 1.0] - [0.0, 0.015]
        upper = np.stack([lower[:, 0], np.maximum(lower[:, 1] - 0.07, nose_bottom + 0.02)], 1)
        b.add("moustache", np.concatenate([lower, upper[::-1]]), 0.42)
    if ident.hat:
        band = ident.hairline_y - 0.02
        hat = crown[(crown[:, 1] < band)]
        hat = (hat - [0.0, CENTRE_Y]) * 1.06 + [0.0, CENTRE_Y]
        b.add("hat", np.concatenate([[[hat[0, 0], band]], hat, [[hat[-1, 0], band]]]), 0.1)
    if ident.glasses:
        for side, name in ((-1, "glasses_r"), (1, "glasses_l")):
            rim = _ellipse(side * ident.eye_x, ident.eye_y, 1.5 * ident.eye_w, 0.19)
            b.add(name, np.concatenate([rim, rim[:1]]), 0.5)
        inner = ident.eye_x - 1.5 * ident.eye_w
        b.add("glasses_bridge", [[-inner, ident.eye_y - 0.04], [inner, ident.eye_y - 0.04]], 0.55)


def _crease_parts(
    b: _Builder,
    ident: Identity,
    au: np.ndarray,
    flash: float,
    brows: tuple[np.ndarray, np.ndarray],
    nose: np.ndarray,
    mouth: tuple[np.ndarray, ...],
) -> list[str]:
    """Wrinkles that strong movements make: forehead, glabella, nose, nasolabial, crow's feet."""
    names = []
    right_brow, _ = brows
    raise_ = max(au[AU["brow_inner_raise"]], au[AU["brow_outer_raise"]]) + flash
    if raise_ > 0.35:
        top = right_brow[:, 1].min() - ident.brow_thick
        span = 0.25 + 0.25 * raise_
        for i in range(2 if raise_ < 0.7 else 3):
            x = np.linspace(-span, span, 5)
            y = top - 0.09 - 0.075 * i - 0.02 * np.cos(x / span * np.pi / 2)
            b.add(f"crease_forehead{i}", np.stack([x, y], 1), 0.4)
            names.append(f"crease_forehead{i}")
    knit = max(au[AU["brow_lower"]], au[AU["brow_together"]])
    if knit > 0.35:
        inner_y = right_brow[-1, 1]
        for side in (-1, 1):
            b.add(
                f"crease_glabella{side}",
                [[side * 0.045, inner_y - 0.07], [side * 0.04, inner_y + 0.06]],
                0.45,
            )
            names.append(f"crease_glabella{side}")
    if au[AU["nose_wrinkle"]] > 0.25:
        y = nose[1, 1]
        for i, dy in enumerate((-0.03, 0.02, 0.07)):
            b.add(f"crease_nose{i}", [[-0.07, y + dy], [0.0, y + dy - 0.012], [0.07, y + dy]], 0.55)
            names.append(f"crease_nose{i}")
    fold = max(
        au[AU["lip_corner_pull"]], 0.8 * au[AU["upper_lip_raise"]], 0.7 * au[AU["lip_stretch"]]
    )
    if fold > 0.25:
        outer_up = mouth[0]
        for side in (-1, 1):
            start = nose[6 + 2 * side] + [side * 0.05, -0.02]  # beside the alar points 31 / 35
            end = outer_up[-1 if side > 0 else 0] + [side * 0.07, 0.04]
            mid = 0.5 * (start + end) + [side * 0.04 * fold, 0.0]
            b.add(f"crease_fold{side}", [start, mid, end], 0.4)
            names.append(f"crease_fold{side}")
    if au[AU["cheek_raise"]] > 0.4:
        for side in (-1, 1):
            corner = np.array([side * (ident.eye_x + ident.eye_w + 0.03), ident.eye_y])
            for i, dy in enumerate((-0.04, 0.03)):
                b.add(f"crease_crow{side}{i}", [corner, corner + np.array([side * 0.08, dy])], 0.3)
                names.append(f"crease_crow{side}{i}")
    return names


class FrameGeometry(NamedTuple):
    landmarks: np.ndarray  # (68, 2) pixel (x, y)
    shapes: list[Shape]


def frame_geometry(
    ident: Identity, au: np.ndarray, extras: dict[str, float], pose: np.ndarray, size: int
) -> FrameGeometry:
    """Landmarks and drawing operations of one frame.

    ``extras`` holds the distractor values of the frame: brow_flash, blink, speech,
    speech_round, gaze_x, gaze_y. ``pose`` is (yaw, pitch, roll, tx, ty, scale).
    """
    flash, blink = extras["brow_flash"], extras["blink"]
    jaw_open = au[AU["jaw_drop"]] + extras["speech"]
    outline = _superellipse(_JAW_PHI, ident, jaw_open)
    crown = _superellipse(_CROWN_PHI, ident, 0.0)
    brows = (_brow(ident, -1, au, flash), _brow(ident, 1, au, flash))
    eyes = (_eye(ident, -1, au, blink), _eye(ident, 1, au, blink))
    nose, nose_region = _nose(ident, au)
    mouth = _mouth(ident, au, extras["speech"], extras["speech_round"])

    b = _Builder()
    hw = ident.head_w
    _hair_parts(b, ident, crown)
    if ident.hair_style != "long":
        for side in (-1, 1):
            b.add(f"ear{side}", _ellipse(side * hw * 0.98, -0.08, 0.11, 0.2), -0.1)
    b.add("face", np.concatenate([outline, crown]), 0.0)
    cheek = au[AU["cheek_raise"]]
    for side in (-1, 1):
        b.add(
            f"cheek{side}",
            _ellipse(side * (ident.eye_x + 0.05), 0.2 - 0.09 * cheek, 0.16, 0.11),
            0.38,
        )
    interior = {
        "brow_r": brows[0],
        "brow_l": brows[1],
        "eye_r_up": eyes[0][0],
        "eye_r_lo": eyes[0][1],
        "eye_l_up": eyes[1][0],
        "eye_l_lo": eyes[1][1],
        "mouth_ou": mouth[0],
        "mouth_ol": mouth[1],
        "mouth_iu": mouth[2],
        "mouth_il": mouth[3],
    }
    for name, pts in interior.items():
        b.add(name, pts, _depth(pts, ident))
    for name, centre in (("brow_r_poly", brows[0]), ("brow_l_poly", brows[1])):
        depth = _depth(centre, ident)  # the centre line's depth, so landmarks stay inside
        b.add(name, _brow_polygon(ident, centre), np.concatenate([depth, depth[::-1]]))
    b.add("nose", nose, NOSE_DEPTH)
    b.add("nose_region", nose_region, NOSE_REGION_DEPTH)
    for side, (_, _, open_up) in zip((-1, 1), eyes, strict=True):
        iris = [
            [
                side * ident.eye_x + 0.4 * ident.eye_w * extras["gaze_x"],
                ident.eye_y - 0.1 * open_up + 0.03 * extras["gaze_y"] + 0.035 * au[AU["gaze_down"]],
            ]
        ]
        b.add(f"iris{side}", iris, 0.4)
    _accessory_parts(b, ident, outline, mouth, nose[-3, 1], crown)
    creases = _crease_parts(b, ident, au, flash, brows, nose, mouth)

    yaw, pitch, roll, tx, ty, scale = pose
    face_px = size * ident.face_scale * scale
    centre = np.array([size * (0.5 + tx), size * (0.5 + ty)])
    px = b.project(_rotation(yaw, pitch, roll), face_px, centre)
    landmarks = _landmarks(
        px["face"][: len(_JAW_PHI)],
        (px["brow_r"], px["brow_l"]),
        px["nose"],
        ((px["eye_r_up"], px["eye_r_lo"]), (px["eye_l_up"], px["eye_l_lo"])),
        (px["mouth_ou"], px["mouth_ol"], px["mouth_iu"], px["mouth_il"]),
    )
    shapes = body_shapes(ident, pose, size, face_px) + face_shapes(ident, px, creases, face_px)
    return FrameGeometry(landmarks.astype(np.float32), shapes)
