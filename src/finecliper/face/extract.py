"""One clip of ``prepare faces``: its frames analysed into a hidden folder, renamed into place.

T counts every frame of the clip (or ``max_frames`` of them, spread uniformly; ``source_indices``
in status.json says which). A frame where no face was found, or that could not be read, reuses
the nearest frame's result and says so (``found``, ``reused_from``, ``frame_errors``). A clip with
no face in any frame gets status ``no_face`` and no arrays: its middle-level modalities are
missing. A clip that cannot be read at all gets status ``failed`` with the error.

Each clip is written in a hidden ``.partial`` folder and renamed into place once status.json is
in it, so a killed run leaves no half clip.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from finecliper.data.records import ClipRecord
from finecliper.data.video import VideoReadError
from finecliper.errors import FineCLIPERError
from finecliper.face.analysis import (
    FacesSettings,
    FaceTools,
    Tracking,
    analyse_frame,
    nearest_sources,
    track_main_face,
)
from finecliper.face.arrays import write_arrays
from finecliper.face.cache import clip_dir
from finecliper.face.frames import FrameSource, open_source, read_selected
from finecliper.face.landmarks import mesh_to_68
from finecliper.face.track import CropBox
from finecliper.io import write_json


def _track_crops(source: FrameSource, tools: FaceTools, settings: FacesSettings) -> Tracking:
    """Pass 1 for cropped clips: the main face over every selected frame, and its crops."""
    tracking = track_main_face(
        (image for image, _ in read_selected(source)), tools, settings, crop=True
    )
    if tracking.crops is None:  # nowhere to place even the centre square
        raise VideoReadError(f"{source.path}: no frame of the clip could be read")
    return tracking


@dataclass
class FrameResults:
    """Pass 2 over a clip: per selected frame, its mesh (None: no face or unreadable)."""

    meshes: list[np.ndarray | None] = field(default_factory=list)
    maps: dict[int, np.ndarray] = field(default_factory=dict)  # position -> parsing map
    readable: list[bool] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    frame_size: tuple[int, int] | None = None  # (width, height) of the stored frames


def _landmark_frames(
    source: FrameSource,
    crops: list[CropBox] | None,
    work: Path,
    tools: FaceTools,
    settings: FacesSettings,
) -> FrameResults:
    """Analyse each frame (cropped, and the crop stored, if ``crops`` are given)."""
    results = FrameResults()
    for position, (image, error) in enumerate(read_selected(source)):
        results.readable.append(image is not None)
        if image is None:
            results.errors.append({"frame": position, "error": error})
            results.meshes.append(None)
            continue
        crop = None if crops is None else crops[position]
        frame = analyse_frame(image, crop, tools, settings)
        if crop is not None:
            path = work / "frames" / f"{position:06d}.jpg"
            _save_jpeg(path, frame.image, settings.jpeg_quality)
        results.frame_size = results.frame_size or (frame.image.shape[1], frame.image.shape[0])
        results.meshes.append(frame.mesh)
        if frame.parsing is not None:
            results.maps[position] = frame.parsing
    if results.frame_size is None:
        count = len(results.readable)
        raise VideoReadError(f"{source.path}: none of its {count} frames could be read")
    return results


def _extract(record: ClipRecord, work: Path, tools: FaceTools, settings: FacesSettings) -> dict:
    """Process one clip into ``work``; returns its status (arrays written unless no face)."""
    source = open_source(Path(record.path), settings.max_frames)
    cropping = settings.crops(Path(record.path))
    tracking = _track_crops(source, tools, settings) if cropping else None
    if tracking is not None:
        (work / "frames").mkdir()
    crops = tracking.crops if tracking else None
    results = _landmark_frames(source, crops, work, tools, settings)
    if tracking is not None:
        _fill_unreadable_frames(work / "frames", results.readable)
    found = [m is not None for m in results.meshes]
    status = {
        "clip_id": record.clip_id,
        "path": str(record.path),
        "status": "ok" if any(found) else "no_face",
        "frames": len(found),
        "source_frames": source.total,
        "source_indices": source.indices,
        "frame_size": list(results.frame_size),
        "frames_dir": "frames" if cropping else None,
        "frame_files": [source.files[i].name for i in source.indices] if source.files else None,
        "found": found,
        "reused_from": nearest_sources(found) if any(found) else None,
        "frame_errors": results.errors,
        "source_problem": source.problem,
        "crop": None if tracking is None else _crop_status(tracking, settings),
    }
    if any(found):
        _write_reused_arrays(work, results, status["reused_from"])
    return status


def _crop_status(tracking: Tracking, settings: FacesSettings) -> dict[str, Any]:
    assert tracking.crops is not None
    return {
        "boxes": [b.as_list() for b in tracking.crops],
        "detected": [b is not None for b in tracking.boxes],
        "fallback": tracking.fallback,
        "source_size": list(tracking.frame_size) if tracking.frame_size else None,
        "size": settings.crop_size,
    }


def _write_reused_arrays(work: Path, results: FrameResults, sources: list[int]) -> None:
    """The clip's arrays, each frame without a face taking its nearest found frame's rows."""
    mesh = np.stack([results.meshes[s] for s in sources])  # type: ignore[misc]
    parsing = np.stack([results.maps[s] for s in sources])
    write_arrays(work, mesh_to_68(mesh), parsing, mesh)


def _save_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    Image.fromarray(image).save(path, format="JPEG", quality=quality)


def _fill_unreadable_frames(frames: Path, readable: list[bool]) -> None:
    """An unreadable source frame's crop is a copy of the nearest readable frame's crop."""
    for position, source in enumerate(nearest_sources(readable)):
        if source != position:
            shutil.copyfile(frames / f"{source:06d}.jpg", frames / f"{position:06d}.jpg")


@dataclass
class ClipResult:
    clip_id: str
    status: str
    frames: int
    error: str | None = None


def process_clip(
    record: ClipRecord, cache: Path, tools: FaceTools, settings: FacesSettings
) -> ClipResult:
    """Extract one clip into its cache folder; never raises for a bad clip (records it)."""
    final = clip_dir(cache, record.clip_id)
    work = final.with_name(f".{final.name}.partial")
    shutil.rmtree(work, ignore_errors=True)  # left by a killed run
    work.mkdir(parents=True)
    try:
        status = _extract(record, work, tools, settings)
    except Exception as exc:  # any failure of one clip is recorded, the job goes on
        shutil.rmtree(work)
        work.mkdir()
        status = {
            "clip_id": record.clip_id,
            "path": str(record.path),
            "status": "failed",
            "frames": 0,
            "error": str(exc)
            if isinstance(exc, FineCLIPERError)
            else f"{type(exc).__name__}: {exc}",
        }
    write_json(work / "status.json", status)
    if final.exists():
        shutil.rmtree(final)  # an unfinished folder, or a failed clip being retried
    os.replace(work, final)
    return ClipResult(record.clip_id, status["status"], status["frames"], status.get("error"))
