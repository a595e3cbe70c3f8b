"""What a SynthDFER frame draws: the materials, the drawing operations, and the operations made
from a face's projected contours (:mod:`finecliper.data.synth.face` computes those contours)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from finecliper.data.synth.scenario import Identity
from finecliper.face.schema import PARSING_INDEX


class Paint:
    """Ids of the drawn materials (more than the parsing classes: iris, teeth, glasses ...)."""

    BACKGROUND = 0
    SHIRT = 1
    NECK = 2
    HAIR = 3
    EAR = 4
    SKIN = 5
    CHEEK = 6
    CREASE = 7
    BEARD = 8
    EYE_WHITE = 9
    IRIS = 10
    PUPIL = 11
    LASH = 12
    BROW = 13
    NOSE = 14
    NOSE_TIP = 15
    NOSTRIL = 16
    MOUSTACHE = 17
    INNER_MOUTH = 18
    TEETH = 19
    UPPER_LIP = 20
    LOWER_LIP = 21
    HAT = 22
    GLASSES = 23
    COUNT = 24


class Shape(NamedTuple):
    """One drawing operation in pixel coordinates (pixel centres at integers).

    ``parse`` is the parsing class the shape writes, or None when it does not change the
    parsing map (iris, teeth, creases, glasses: they lie on a region labelled by another shape).
    """

    kind: str  # "poly", "line" (open polyline) or "circle" (points = centre, size = radius)
    points: np.ndarray
    paint: int
    parse: int | None
    size: float = 0.0  # line width or circle radius, in pixels


def _down(dy: float) -> np.ndarray:
    return np.array([0.0, dy])


def body_shapes(ident: Identity, pose: np.ndarray, size: int, face_px: float) -> list[Shape]:
    """Neck and shoulders: they follow the head's translation but not its rotation."""
    hw = ident.head_w
    centre = np.array([size * (0.5 + pose[3]), size * (0.5 + pose[4])])
    neck = np.array([[-0.36 * hw, 0.85], [0.36 * hw, 0.85], [0.42 * hw, 2.8], [-0.42 * hw, 2.8]])
    shirt = np.array(
        [[-0.45 * hw, 1.8], [0.45 * hw, 1.8], [2.6, 2.3], [2.9, 4.0], [-2.9, 4.0], [-2.6, 2.3]]
    )
    return [
        Shape("poly", neck * face_px + centre, Paint.NECK, None),
        Shape("poly", shirt * face_px + centre, Paint.SHIRT, None),
    ]


def face_shapes(
    ident: Identity, px: dict[str, np.ndarray], creases: list[str], face_px: float
) -> list[Shape]:
    """Drawing order: what is drawn later covers what was drawn before."""
    P = PARSING_INDEX
    thin = max(0.6, 0.018 * face_px)
    shapes: list[Shape] = []
    if "hair_back" in px:
        shapes.append(Shape("poly", px["hair_back"], Paint.HAIR, P["hair"]))
    for side in (-1, 1):
        if f"ear{side}" in px:
            shapes.append(Shape("poly", px[f"ear{side}"], Paint.EAR, P["skin"]))
    shapes.append(Shape("poly", px["face"], Paint.SKIN, P["skin"]))
    shapes += [Shape("poly", px[f"cheek{side}"], Paint.CHEEK, None) for side in (-1, 1)]
    shapes += [
        Shape("line", px[name], Paint.CREASE, None, thin) for name in creases if "nose" not in name
    ]
    if "beard" in px:
        shapes.append(Shape("poly", px["beard"], Paint.BEARD, None))
    for side, key, cls in ((-1, "eye_r", "right_eye"), (1, "eye_l", "left_eye")):
        shapes += _eye_shapes(
            ident, px[f"{key}_up"], px[f"{key}_lo"], px[f"iris{side}"][0], P[cls], face_px, thin
        )
    shapes.append(Shape("poly", px["brow_r_poly"], Paint.BROW, P["right_brow"]))
    shapes.append(Shape("poly", px["brow_l_poly"], Paint.BROW, P["left_brow"]))
    shapes += _nose_shapes(px, creases, face_px, thin)
    if "moustache" in px:
        shapes.append(Shape("poly", px["moustache"], Paint.MOUSTACHE, None))
    shapes += _mouth_shapes(px, face_px)
    if "hair_front" in px:
        shapes.append(Shape("poly", px["hair_front"], Paint.HAIR, P["hair"]))
    if "hat" in px:
        shapes.append(Shape("poly", px["hat"], Paint.HAT, P["background"]))
    for name in ("glasses_r", "glasses_l", "glasses_bridge"):
        if name in px:
            shapes.append(Shape("line", px[name], Paint.GLASSES, None, 1.6 * thin))
    return shapes


def _eye_shapes(
    ident: Identity,
    upper: np.ndarray,
    lower: np.ndarray,
    iris_centre: np.ndarray,
    parse_class: int,
    face_px: float,
    thin: float,
) -> list[Shape]:
    """Eye white, iris and pupil, then skin over the iris outside the lids, then the lash line."""
    iris_r = ident.iris_r * face_px
    reach = (ident.iris_r + 0.03) * face_px
    lid_top = np.concatenate([upper, upper[::-1] - _down(reach)])
    lid_bottom = np.concatenate([lower, lower[::-1] + _down(reach)])
    return [
        Shape("poly", np.concatenate([upper, lower[-2:0:-1]]), Paint.EYE_WHITE, parse_class),
        Shape("circle", iris_centre, Paint.IRIS, None, iris_r),
        Shape("circle", iris_centre, Paint.PUPIL, None, 0.42 * iris_r),
        Shape("poly", lid_top, Paint.SKIN, None),
        Shape("poly", lid_bottom, Paint.SKIN, None),
        Shape("line", upper, Paint.LASH, None, 1.3 * thin),
    ]


def _nose_shapes(
    px: dict[str, np.ndarray], creases: list[str], face_px: float, thin: float
) -> list[Shape]:
    nose = px["nose"]
    nostril_r = 0.028 * face_px
    shapes = [
        Shape("poly", px["nose_region"], Paint.NOSE, PARSING_INDEX["nose"]),
        Shape("circle", nose[3] + [0.0, -0.01 * face_px], Paint.NOSE_TIP, None, 0.05 * face_px),
    ]
    for index in (5, 7):  # landmarks 32 and 34
        shapes.append(
            Shape("circle", nose[index] + [0.0, -0.6 * nostril_r], Paint.NOSTRIL, None, nostril_r)
        )
    shapes += [
        Shape("line", px[name], Paint.CREASE, None, thin) for name in creases if "nose" in name
    ]
    return shapes


def _mouth_shapes(px: dict[str, np.ndarray], face_px: float) -> list[Shape]:
    """Inner mouth, the upper teeth (never below the lower lip), then the lips over them."""
    P = PARSING_INDEX
    outer_up, outer_lo = px["mouth_ou"], px["mouth_ol"]
    inner_up, inner_lo = px["mouth_iu"], px["mouth_il"]
    opening = inner_lo - inner_up
    length = np.maximum(np.linalg.norm(opening, axis=1, keepdims=True), 1e-6)
    teeth_bottom = inner_up + opening * np.minimum(1.0, 0.055 * face_px / length)
    return [
        Shape(
            "poly", np.concatenate([inner_up, inner_lo[::-1]]), Paint.INNER_MOUTH, P["inner_mouth"]
        ),
        Shape("poly", np.concatenate([inner_up, teeth_bottom[::-1]]), Paint.TEETH, None),
        Shape("poly", np.concatenate([outer_up, inner_up[::-1]]), Paint.UPPER_LIP, P["upper_lip"]),
        Shape("poly", np.concatenate([outer_lo, inner_lo[::-1]]), Paint.LOWER_LIP, P["lower_lip"]),
    ]
