"""Descriptions measured from prepared landmarks, with no model: the offline text backend.

Reads a clip's ``landmarks.npy`` ((T, 68, 2), iBUG order, NaN rows for frames without a face;
SynthDFER's ``clips/<clip_id>`` or a ``prepare faces`` cache's clip folder), brings every frame into
a face-aligned frame (eye midpoint at the origin, eye line horizontal, inter-ocular distance 1) and
measures, per frame: brow height above the eyes, the slant of the brows (inner ends against outer
ends) and the gap between the inner brow corners, eye opening (eye aspect ratio), the height of the
nose tip and base (a wrinkling nose pulls them up), mouth opening, lip corner height and mouth
width, and head position, roll and turn. Each measure is compared with the clip's first frames;
changes above fixed thresholds become sentences ("The eyebrows rise clearly midway through the clip
and then settle back."). Points measured by MediaPipe are first smoothed over 3 frames (its jitter
would otherwise read as movement) and calibrated to true amplitudes. Gaze: 68 points carry no iris,
so when a ``mesh.npy`` with the 478 MediaPipe points (iris included) lies next to the landmarks, the
iris position within each eye gives the gaze; otherwise the head turn stands in for it. The wording
never names an emotion (no label is ever seen), so this backend serves the description branch
offline and on SynthDFER.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from finecliper.data.synth.generate import GENERATOR as SYNTH_GENERATOR
from finecliper.errors import ConfigError, FineCLIPERError
from finecliper.face.arrays import (
    LANDMARKS_FILE,
    DamagedArraysError,
    has_landmarks,
    has_mesh,
    read_landmarks,
    read_mesh,
)
from finecliper.face.cache import clip_dir, is_faces_cache
from finecliper.io import read_text
from finecliper.text.backends import BackendOptions, ClipRequest, Reply, register_backend

TEMPLATE_VERSION = "2"
# (slight, clear, strong) change thresholds, in inter-ocular distances unless noted.
THRESHOLDS: dict[str, tuple[float, float, float]] = {
    "brow_height": (0.03, 0.06, 0.12),
    "brow_gap": (0.04, 0.08, 0.16),
    "brow_slant": (0.04, 0.08, 0.14),
    "nose_rise": (0.015, 0.03, 0.05),
    "eye_open": (0.12, 0.25, 0.45),  # relative change of the eye aspect ratio
    "mouth_open": (0.06, 0.15, 0.35),
    "corner_lift": (0.03, 0.06, 0.12),
    "mouth_width": (0.06, 0.12, 0.2),  # relative change
    "gaze": (0.06, 0.12, 0.2),  # iris offset, in eye widths
    "head_turn": (0.05, 0.1, 0.2),
    "head_shift": (0.1, 0.25, 0.5),
    "head_roll": (4.0, 8.0, 15.0),  # degrees
}
DEGREE_WORDS = ("slightly", "clearly", "strongly")
# How much larger a change looks in MediaPipe-measured landmarks (``prepare faces``, ``predict``)
# than in the true points, per measure: fitted on the 4,000 clips of SynthDFER seed 1234 so
# that the degree words from measured and from true points agree on the most clips
# (``scripts/calibrate_template.py``). Measured changes are divided by it, so "slightly",
# "clearly" and "strongly" mark the same true amplitudes whichever points are read. MediaPipe
# barely sees drawn brows pull together (correlation 0.03), so that word is rarely said. The
# series are smoothed (``smooth_jitter``) before the gains are fitted and applied.
MEDIAPIPE_GAINS: dict[str, float] = {
    "brow_height": 0.53,
    "brow_gap": 2.378,
    "brow_slant": 0.707,
    "nose_rise": 1.059,
    "eye_open": 0.749,
    "mouth_open": 1.059,
    "corner_lift": 1.122,
    "mouth_width": 1.335,
    "head_turn": 1.498,
    "head_x": 1.0,
    "head_y": 0.944,
    "head_roll": 1.0,
}
# MediaPipe face-mesh indices: iris centres and the eye corners (image-left, image-right).
MESH_EYES = ((468, 33, 133), (473, 362, 263))


@dataclass(frozen=True)
class Change:
    """How a per-frame measure departs from its value at the start of the clip."""

    delta: float  # signed change at the frame of largest departure
    peak: float  # where that frame lies in the clip, 0..1
    returns: bool  # back near the start value by the last frame


def start_value(series: np.ndarray) -> float:
    """A measure's value at the start of the clip: the mean of its first eighth of frames."""
    return float(series[: max(1, len(series) // 8)].mean())


def measure_change(series: np.ndarray, relative: bool = False) -> Change:
    """Largest signed departure from the start value (relative to it with ``relative``)."""
    start = start_value(series)
    offsets = series - start
    if relative:
        offsets = offsets / max(abs(start), 1e-6)
    peak = int(np.argmax(np.abs(offsets)))
    delta = float(offsets[peak])
    returns = abs(float(offsets[-1])) < 0.4 * abs(delta)
    return Change(delta, peak / max(1, len(series) - 1), returns)


def degree(change: Change, key: str) -> str | None:
    """ "slightly"/"clearly"/"strongly", or None when the change is below the first threshold."""
    size = abs(change.delta)
    words = [
        word for word, limit in zip(DEGREE_WORDS, THRESHOLDS[key], strict=True) if size >= limit
    ]
    return words[-1] if words else None


def when(change: Change) -> str:
    if change.peak < 0.34:
        return "early in the clip"
    return "midway through the clip" if change.peak < 0.67 else "towards the end of the clip"


def settle(change: Change, phrase: str = "then settle back") -> str:
    return f" and {phrase}" if change.returns else ""


def align_to_face(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face-aligned points (T, 68, 2), eye midpoints (T, 2) and roll angles in degrees (T,)."""
    right_eye = points[:, 36:42].mean(axis=1)  # the subject's right eye, iBUG 36-41
    left_eye = points[:, 42:48].mean(axis=1)
    centre = (right_eye + left_eye) / 2
    axis = left_eye - right_eye
    distance = np.linalg.norm(axis, axis=1)
    if np.any(distance < 1e-6):
        raise ValueError("landmarks with coinciding eye centres")
    cos, sin = axis[:, 0] / distance, axis[:, 1] / distance
    rotation = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], 1)
    shifted = points - centre[:, None, :]
    aligned = np.einsum("tij,tpj->tpi", rotation, shifted) / distance[:, None, None]
    return aligned, centre, np.degrees(np.arctan2(axis[:, 1], axis[:, 0]))


def face_measures(points: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame measures of (T, 68, 2) landmarks without NaN rows."""
    aligned, centre, roll = align_to_face(points)
    p = aligned
    eye_y = {"right": p[:, 36:42, 1].mean(1), "left": p[:, 42:48, 1].mean(1)}
    brow_height = (
        (eye_y["right"] - p[:, 17:22, 1].mean(1)) + (eye_y["left"] - p[:, 22:27, 1].mean(1))
    ) / 2
    iod_pixels = np.linalg.norm(points[:, 42:48].mean(1) - points[:, 36:42].mean(1), axis=1)
    return {
        "brow_height": brow_height,
        "brow_gap": np.linalg.norm(p[:, 22] - p[:, 21], axis=1),
        "brow_slant": p[:, [17, 26], 1].mean(1) - p[:, [21, 22], 1].mean(1),
        "nose_rise": -p[:, 30:36, 1].mean(1),
        "eye_open": (_eye_ratio(p, 36) + _eye_ratio(p, 42)) / 2,
        "mouth_open": np.linalg.norm(p[:, 61:64].mean(1) - p[:, 65:68].mean(1), axis=1),
        "corner_lift": (p[:, [51, 62], 1].mean(1) - p[:, [48, 54], 1].mean(1)),
        "mouth_width": np.linalg.norm(p[:, 54] - p[:, 48], axis=1),
        "head_turn": p[:, 30, 0],
        "head_x": (centre[:, 0] - centre[0, 0]) / np.median(iod_pixels),
        "head_y": (centre[:, 1] - centre[0, 1]) / np.median(iod_pixels),
        "head_roll": roll,
    }


def _eye_ratio(p: np.ndarray, first: int) -> np.ndarray:
    """Eye aspect ratio: mean lid distance over eye width, for the eye starting at ``first``."""
    e = p[:, first : first + 6]
    lids = np.linalg.norm(e[:, 1] - e[:, 5], axis=1) + np.linalg.norm(e[:, 2] - e[:, 4], axis=1)
    return lids / (2 * np.linalg.norm(e[:, 3] - e[:, 0], axis=1))


def gaze_offsets(mesh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Iris offset from each eye's centre along (x) and across (y) the eye, in eye widths."""
    across, along = [], []
    for iris, first, second in MESH_EYES:
        corner_a, corner_b = mesh[:, first, :2], mesh[:, second, :2]
        axis = corner_b - corner_a
        width = np.linalg.norm(axis, axis=1)
        unit = axis / width[:, None]
        offset = mesh[:, iris, :2] - (corner_a + corner_b) / 2
        along.append((offset * unit).sum(1) / width)
        normal = np.stack([-unit[:, 1], unit[:, 0]], 1)  # points down the image
        across.append((offset * normal).sum(1) / width)
    return np.mean(along, axis=0), np.mean(across, axis=0)


def describe_brows(m: dict[str, np.ndarray]) -> list[str]:
    sentences = []
    height = measure_change(m["brow_height"])
    if word := degree(height, "brow_height"):
        verb = "rise" if height.delta > 0 else "are drawn down"
        sentences.append(f"The eyebrows {verb} {word} {when(height)}{settle(height)}.")
    gap = measure_change(m["brow_gap"])
    if (word := degree(gap, "brow_gap")) and gap.delta < 0:
        sentences.append(f"The inner brow corners pull {word} together{settle(gap, 'then part')}.")
    slant = measure_change(m["brow_slant"])
    if word := degree(slant, "brow_slant"):
        shape = "lift" if slant.delta > 0 else "draw down towards the nose"
        sentences.append(f"The inner ends of the eyebrows {shape} {word}{settle(slant)}.")
    return sentences


def describe_nose(m: dict[str, np.ndarray]) -> list[str]:
    rise = measure_change(m["nose_rise"])
    if (word := degree(rise, "nose_rise")) and rise.delta > 0:
        return [f"The nose wrinkles {word} {when(rise)}{settle(rise, 'then smooths')}."]
    return []


def describe_eyes(m: dict[str, np.ndarray]) -> list[str]:
    ratio = m["eye_open"]
    # Blinks are brief dips: the upper envelope (max over 3 frames) follows the eyes' opening
    # without them, and a frame well below its envelope is (part of) a blink.
    envelope = np.maximum.reduce([ratio, np.roll(ratio, 1), np.roll(ratio, -1)])
    envelope[0], envelope[-1] = ratio[:2].max(), ratio[-2:].max()
    sentences = []
    opening = measure_change(envelope, relative=True)
    if word := degree(opening, "eye_open"):
        verb = "widen" if opening.delta > 0 else "narrow"
        sentences.append(f"The eyes {verb} {word} {when(opening)}{settle(opening, 'then relax')}.")
    blinks = _count_blinks(ratio < 0.5 * envelope)
    if blinks:
        sentences.append(
            "The eyes blink once." if blinks == 1 else f"The eyes blink {blinks} times."
        )
    return sentences


def _count_blinks(closed: np.ndarray) -> int:
    """Closures that reopen within the clip: closed -> open transitions."""
    return int(np.count_nonzero(np.diff(closed.astype(np.int8)) == -1))


def describe_mouth(m: dict[str, np.ndarray]) -> list[str]:
    sentences = []
    opening = measure_change(m["mouth_open"])
    if word := degree(opening, "mouth_open"):
        if opening.delta > 0:
            sentences.append(
                f"The mouth opens {word} {when(opening)}{settle(opening, 'then closes')}."
            )
        else:
            sentences.append(f"The lips close {word} {when(opening)}.")
    if _oscillations(m["mouth_open"]) >= 3:
        sentences.append("The mouth opens and closes repeatedly.")
    lift = measure_change(m["corner_lift"])
    if word := degree(lift, "corner_lift"):
        direction = "pull upwards" if lift.delta > 0 else "turn downwards"
        sentences.append(f"The lip corners {direction} {word} {when(lift)}{settle(lift)}.")
    width = measure_change(m["mouth_width"], relative=True)
    if word := degree(width, "mouth_width"):
        shape = "stretch sideways" if width.delta > 0 else "narrow and push forward"
        sentences.append(f"The lips {shape} {word}{settle(width)}.")
    return sentences


def _oscillations(series: np.ndarray, amplitude: float = 0.05) -> int:
    """Direction reversals between swings larger than ``amplitude``."""
    reversals, direction, anchor = 0, 0, float(series[0])
    for value in series[1:]:
        step = float(value) - anchor
        if abs(step) < amplitude:
            continue
        new_direction = 1 if step > 0 else -1
        reversals += direction not in (0, new_direction)
        direction, anchor = new_direction, float(value)
    return reversals


def describe_gaze(m: dict[str, np.ndarray]) -> list[str]:
    if "gaze_x" not in m:
        return []
    sentences = []
    for key, positive, negative in (("gaze_x", "left", "right"), ("gaze_y", "down", "up")):
        change = measure_change(m[key])
        if word := degree(change, "gaze"):
            where = positive if change.delta > 0 else negative
            where = f"to the person's {where}" if key == "gaze_x" else f"{where}wards"
            sentences.append(
                f"The gaze shifts {word} {where} {when(change)}{settle(change, 'then returns')}."
            )
    return sentences


def describe_head(m: dict[str, np.ndarray]) -> list[str]:
    sentences = []
    turn = measure_change(m["head_turn"])
    if word := degree(turn, "head_turn"):
        side = "left" if turn.delta > 0 else "right"
        gaze = "" if "gaze_x" in m else ", turning the line of sight with it"
        sentences.append(f"The head turns {word} towards the person's {side}{gaze}.")
    roll = measure_change(m["head_roll"])
    if word := degree(roll, "head_roll"):
        sentences.append(f"The head tilts {word} to one side{settle(roll, 'then straightens')}.")
    shift = measure_change(np.hypot(m["head_x"], m["head_y"]))
    if word := degree(shift, "head_shift"):
        vertical = measure_change(m["head_y"])
        direction = "down" if vertical.delta > 0 else "up"
        if abs(vertical.delta) < 0.5 * abs(shift.delta):
            direction = "sideways"
        sentences.append(f"The head moves {word} {direction}.")
    if not sentences:
        sentences.append("The head stays still.")
    return sentences


def calibrate(measures: dict[str, np.ndarray], gains: dict[str, float]) -> dict[str, np.ndarray]:
    """Every series' departures from its start value divided by its gain (absolute and
    relative changes alike shrink by the gain)."""
    calibrated = dict(measures)
    for key, gain in gains.items():
        series = measures[key]
        start = start_value(series)
        calibrated[key] = start + (series - start) / gain
    return calibrated


def smooth_jitter(measures: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A 3-frame running mean of every series but the eye opening: MediaPipe's points jitter
    from frame to frame, and a jitter peak would otherwise be read as the largest change. The
    eye opening stays raw, as a blink lasts a frame or two."""
    kernel = np.ones(3) / 3
    return {
        key: series
        if key == "eye_open" or len(series) < 3
        else np.convolve(np.pad(series, 1, mode="edge"), kernel, mode="valid")
        for key, series in measures.items()
    }


def describe_landmarks(
    points: np.ndarray, mesh: np.ndarray | None = None, *, measured: bool = True
) -> str:
    """Describe (T, 68, 2) landmarks without NaN rows (and an optional (T, 478, >=2) mesh).

    ``measured``: the points come from MediaPipe (a faces cache, ``predict``), and their
    changes are calibrated to true amplitudes (``MEDIAPIPE_GAINS``); False for exact points
    such as SynthDFER's ground truth."""
    measures = face_measures(points)
    if measured:
        measures = calibrate(smooth_jitter(measures), MEDIAPIPE_GAINS)
    if mesh is not None and mesh.shape[1] >= 478:
        measures["gaze_x"], measures["gaze_y"] = gaze_offsets(mesh)
    face = describe_brows(measures) + describe_eyes(measures) + describe_gaze(measures)
    face += describe_nose(measures)
    face += describe_mouth(measures)
    if not face:
        face = ["The brows, eyes and mouth show little movement."]
    return " ".join(face + describe_head(measures))


def phrase_table_sha256() -> str:
    """Identifies this template's wording and thresholds (recorded as the 'prompt' hash)."""
    table = {"version": TEMPLATE_VERSION, "thresholds": THRESHOLDS, "gains": MEDIAPIPE_GAINS}
    blob = json.dumps(table, sort_keys=True)
    source = Path(__file__).read_bytes()
    return hashlib.sha256(blob.encode("utf-8") + source).hexdigest()


LandmarksLocator = Callable[[str], Path]  # clip id -> the folder holding its arrays


def landmarks_locator(root: Path) -> LandmarksLocator:
    """Clip folders under ``root``: a ``prepare faces`` cache (as its manifest declares) names
    them with its file-system-safe folder names; any other root is laid out as SynthDFER is,
    ``clips/<clip_id>``."""
    if is_faces_cache(root):
        return partial(clip_dir, root)
    return lambda clip_id: root / "clips" / clip_id


def holds_true_points(root: Path) -> bool:
    """Whether ``root`` is a SynthDFER folder, whose landmarks are the generator's own."""
    meta = root / "meta.json"
    try:
        return json.loads(read_text(meta)).get("generator") == SYNTH_GENERATOR
    except (OSError, ValueError, AttributeError, FineCLIPERError):
        return False


class TemplateBackend:
    """Describes a clip from its ``landmarks.npy`` (and ``mesh.npy``), found by ``locator``
    (default: :func:`landmarks_locator` of ``options.landmarks_root``)."""

    name = "template"
    needs_frames = False
    uses_prompt = False
    model_id = "finecliper-landmark-template"
    prompt_id = "landmark-template"

    def __init__(self, options: BackendOptions, locator: LandmarksLocator | None = None):
        if options.landmarks_root is None:
            raise ConfigError("template backend: no landmarks folder given (--landmarks DIR)")
        self.root = Path(options.landmarks_root)
        self.clip_folder = locator or landmarks_locator(self.root)
        # SynthDFER's own folder holds the true points; anything else MediaPipe's.
        self.measured = not holds_true_points(self.root)
        self.revision = TEMPLATE_VERSION
        self.prompt_sha256 = phrase_table_sha256()

    def settings(self) -> dict[str, Any]:
        gains = MEDIAPIPE_GAINS if self.measured else None
        return {"landmarks_root": str(self.root), "thresholds": THRESHOLDS, "gains": gains}

    def describe(self, requests: Sequence[ClipRequest]) -> list[Reply]:
        return [self.describe_clip(request.clip_id) for request in requests]

    def complete(self, prompts: Sequence[str]) -> list[Reply]:
        raise ConfigError("the template backend cannot answer prompts (use it for describe only)")

    def describe_clip(self, clip_id: str) -> Reply:
        folder = self.clip_folder(clip_id)
        if not has_landmarks(folder):
            return Reply(None, f"{folder}: no landmarks.npy (no face found, or not prepared)")
        try:
            # float64: the face cache stores the mesh in float16.
            points = read_landmarks(folder).astype(np.float64)
            mesh = read_mesh(folder).astype(np.float64) if has_mesh(folder) else None
        except DamagedArraysError as exc:
            return Reply(None, f"{folder}: cannot read landmarks.npy / mesh.npy ({exc.reason})")
        where = folder / LANDMARKS_FILE
        if points.ndim != 3 or points.shape[1:] != (68, 2):
            return Reply(None, f"{where}: shape {points.shape}, need (T, 68, 2)")
        found = np.flatnonzero(np.isfinite(points).all(axis=(1, 2)))
        if len(found) == 0:
            return Reply(None, f"{where}: no frame with a face")
        if mesh is not None and (
            mesh.ndim != 3 or len(mesh) != len(points) or not np.isfinite(mesh[found]).all()
        ):
            mesh = None  # a mesh that does not line up with the landmarks is ignored
        try:
            text = describe_landmarks(
                points[found], None if mesh is None else mesh[found], measured=self.measured
            )
        except ValueError as exc:
            return Reply(None, f"{where}: {exc}")
        return Reply(text, frame_indices=found.tolist())


# The template reads landmarks, not a model: ``model`` only names it, and it cannot judge.
@register_backend("template", default_model="finecliper-landmark-template", judge=False)
def create_template(model: str, options: BackendOptions) -> TemplateBackend:
    return TemplateBackend(options)
