"""The face stage of ``predict``: follow the main face, crop it, landmarks and parsing per frame.

The very face analysis of ``finecliper prepare faces`` (:mod:`finecliper.face.analysis`), on a
video that was never prepared: pass 1 follows the main face into steady square crops, pass 2
cuts each crop at ``crop_size`` and runs the face mesh and the parser on it. Frame folders are
used as they are (already face crops, like DFEW's) unless ``crop="always"``, exactly as
``prepare faces`` does.

Per frame only compact data is kept: the detected box, the crop, the 68 landmarks, the mesh and
the parsing map compressed with zlib (a few kB), so hours of video fit in memory. The frames the
model needs are streamed to the caller and not kept here.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from finecliper.face.analysis import (
    FacesSettings,
    FaceTools,
    Tracking,
    analyse_frame,
    nearest_sources,
    track_main_face,
)
from finecliper.face.detect import FaceBox
from finecliper.face.landmarks import mesh_to_68
from finecliper.face.track import CropBox
from finecliper.serve.source import VideoSource


@dataclass
class FrameFace:
    """One frame's face data; landmarks, mesh and parsing are in model-frame pixels."""

    box: FaceBox | None  # the main face as detected, source pixels
    crop: CropBox | None  # the square cut out of the source; None: the frame is used whole
    landmarks: np.ndarray | None = None  # (68, 2) float32; None: no face mesh found
    mesh: np.ndarray | None = None  # (478, 3) float16
    parsing: bytes | None = None  # zlib of the (H, W) uint8 label map

    @property
    def found(self) -> bool:
        return self.landmarks is not None

    def parsing_map(self, size: tuple[int, int]) -> np.ndarray:
        """The (H, W) label map; ``size`` is the model frame's (height, width)."""
        assert self.parsing is not None
        return np.frombuffer(zlib.decompress(self.parsing), dtype=np.uint8).reshape(size)


def track_faces(
    source: VideoSource,
    tools: FaceTools,
    settings: FacesSettings,
    crop: bool,
    progress: bool = False,
) -> Tracking:
    """Pass 1 over every frame of ``source`` (:func:`finecliper.face.analysis.track_main_face`)."""
    frames = tqdm(
        source.frames(), total=source.count, desc="faces", unit="frame", disable=not progress
    )
    return track_main_face(frames, tools, settings, crop)


def analyse_frames(
    source: VideoSource, tracking: Tracking, tools: FaceTools, settings: FacesSettings
) -> Iterator[tuple[np.ndarray, FrameFace]]:
    """Pass 2: per frame, the model frame (the crop, or the frame) and its face data."""
    for index, image in enumerate(source.frames()):
        crop = None if tracking.crops is None else tracking.crops[index]
        frame = analyse_frame(image, crop, tools, settings)
        face = FrameFace(tracking.boxes[index], crop)
        if frame.mesh is not None:
            face.landmarks = mesh_to_68(frame.mesh)
            face.mesh = frame.mesh.astype(np.float16)
            face.parsing = zlib.compress(frame.parsing.tobytes(), 1)
        yield frame.image, face


def nearest_found(faces: list[FrameFace]) -> list[int] | None:
    """For each frame of a run of frames, the nearest one with a face (None: no face at all).

    A frame without a face borrows its neighbour's landmarks and parsing, as the face cache does.
    """
    found = [face.found for face in faces]
    return nearest_sources(found) if any(found) else None


def to_source_pixels(points: np.ndarray, crop: CropBox | None, crop_size: int) -> np.ndarray:
    """(..., 2) points in crop pixels -> source-frame pixels (pixel centres at integers)."""
    if crop is None:
        return points
    scale = crop.side / crop_size
    return (points + 0.5) * scale - 0.5 + np.array([crop.x0, crop.y0], dtype=np.float32)
