"""How well the face pipeline measures SynthDFER: its landmarks against the generator's truth.

SynthDFER knows every clip's true 68 landmarks; ``finecliper prepare faces`` measures them with
MediaPipe on the rendered frames. The normalised mean error (NME) of a frame is the mean
distance between measured and true points divided by the true inter-ocular distance (outer eye
corners, iBUG 36 and 45, the 300-W convention); a clip's NME is the mean over its frames with a
face, and the report gives the mean per class and over all clips, with the frames where no face
was found.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from finecliper.data.records import DatasetIndex
from finecliper.errors import FineCLIPERError
from finecliper.face.arrays import has_landmarks, read_landmarks
from finecliper.face.cache import clip_dir
from finecliper.face.pipeline import unique_records

OUTER_EYE_CORNERS = (36, 45)


@dataclass(frozen=True)
class LandmarkError:
    per_class: dict[str, float]  # mean clip NME per class
    overall: float | None  # mean clip NME over all clips measured (None: no clip)
    clips: int  # clips with at least one measured frame
    frames_without_face: int
    frames: int

    def to_dict(self) -> dict:
        return {
            "nme_per_class": {name: round(value, 4) for name, value in self.per_class.items()},
            "nme": None if self.overall is None else round(self.overall, 4),
            "clips": self.clips,
            "frames": self.frames,
            "frames_without_face": self.frames_without_face,
        }


def clip_nme(truth: np.ndarray, measured: np.ndarray) -> tuple[float | None, int]:
    """Mean per-frame NME of a clip over its frames with a face, and the frames without one."""
    found = np.isfinite(measured).all(axis=(1, 2))
    if not found.any():
        return None, len(measured)
    true_points, points = truth[found], measured[found]
    right, left = OUTER_EYE_CORNERS
    iod = np.linalg.norm(true_points[:, right] - true_points[:, left], axis=1)
    errors = np.linalg.norm(points - true_points, axis=2).mean(axis=1) / iod
    return float(errors.mean()), int((~found).sum())


def landmark_error(root: Path, index: DatasetIndex, cache: Path) -> LandmarkError:
    """NME of the cache's landmarks for every clip of the SynthDFER folder ``root``."""
    by_class: dict[str, list[float]] = {name: [] for name in index.classes}
    missing = frames = 0
    for record in unique_records(index):
        truth = read_landmarks(root / "clips" / record.clip_id).astype(np.float64)
        folder = clip_dir(cache, record.clip_id)
        frames += len(truth)
        if not has_landmarks(folder):
            missing += len(truth)
            continue
        measured = read_landmarks(folder).astype(np.float64)
        if measured.shape != truth.shape:
            raise FineCLIPERError(
                f"{folder}: {len(measured)} measured frames for {len(truth)} true ones "
                "(a cache made with --max-frames or cropping cannot be compared)"
            )
        nme, without = clip_nme(truth, measured)
        missing += without
        if nme is not None:
            by_class[index.classes[record.label]].append(nme)
    values = [v for clip_values in by_class.values() for v in clip_values]
    return LandmarkError(
        per_class={name: float(np.mean(v)) for name, v in by_class.items() if v},
        overall=float(np.mean(values)) if values else None,
        clips=len(values),
        frames_without_face=missing,
        frames=frames,
    )
