"""Where one clip's frames and middle-level arrays come from, before it is packed."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from finecliper.data.records import ClipRecord
from finecliper.data.video import VideoReadError, list_frame_files
from finecliper.errors import FineCLIPERError
from finecliper.face.arrays import DamagedArraysError, has_landmarks, read_arrays
from finecliper.face.cache import clip_dir, load_clip_faces, read_status


@dataclass(frozen=True)
class PackSources:
    """Where the middle-level data and descriptions come from."""

    faces_cache: Path | None = None
    synth_middle: bool = False  # SynthDFER: landmarks.npy / parsing.npz beside frames/
    descriptions: Path | None = None


@dataclass(frozen=True)
class ClipPlan:
    """Where one clip's frames come from, and its middle-level arrays (None: missing)."""

    files: list[Path] | None = None
    video: Path | None = None
    video_indices: list[int] | None = None  # None: every frame of the video
    landmarks: np.ndarray | None = None
    parsing: np.ndarray | None = None
    note: str | None = None  # why the middle-level data is missing


def source_plan(path: Path) -> ClipPlan:
    if path.is_dir():
        files = list_frame_files(path)
        if not files:
            raise VideoReadError(f"{path}: frame folder holds no *.jpg/*.jpeg/*.png images")
        return ClipPlan(files=files)
    if path.is_file():
        return ClipPlan(video=path)
    raise VideoReadError(f"{path}: no such frame folder or video file")


def synth_plan(record: ClipRecord) -> ClipPlan:
    plan = source_plan(Path(record.path))
    folder = Path(record.path).parent
    if not has_landmarks(folder):
        return replace(plan, note="no landmarks.npy beside the frames")
    try:
        arrays = read_arrays(folder)
    except DamagedArraysError as exc:
        return replace(plan, note=f"{folder}: unreadable middle-level files ({exc.reason})")
    return replace(plan, landmarks=arrays.landmarks, parsing=arrays.parsing)


def cache_plan(record: ClipRecord, cache: Path) -> ClipPlan:
    try:
        status = read_status(clip_dir(cache, record.clip_id))
        faces = load_clip_faces(cache, record.clip_id) if status else None
    except FineCLIPERError as exc:
        return replace(source_plan(Path(record.path)), note=str(exc))
    if status is None or faces is None:
        return replace(source_plan(Path(record.path)), note="not in the faces cache")
    if status["status"] != "ok" or faces.landmarks is None:
        why = f"faces cache status {status['status']}"
        if status.get("error"):
            why += f" ({status['error']})"
        return replace(source_plan(Path(record.path)), note=why)
    if faces.frames_dir is not None:  # the cache's face crops are the frames its arrays fit
        files = [faces.frames_dir / f"{p:06d}.jpg" for p in range(int(status["frames"]))]
        plan = ClipPlan(files=files)
    elif status.get("frame_files"):
        plan = ClipPlan(files=[Path(record.path) / name for name in status["frame_files"]])
    else:
        plan = ClipPlan(video=Path(record.path), video_indices=list(status["source_indices"]))
    return replace(plan, landmarks=faces.landmarks, parsing=faces.parsing)


def plan_clip(record: ClipRecord, sources: PackSources) -> ClipPlan:
    if sources.faces_cache is not None:
        return cache_plan(record, sources.faces_cache)
    if sources.synth_middle:
        return synth_plan(record)
    return source_plan(Path(record.path))
