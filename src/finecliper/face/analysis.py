"""The face analysis of a clip, shared by ``prepare faces`` (the cache) and ``predict``.

Pass 1 (:func:`track_main_face`) detects faces in every frame and follows the main one
(largest, longest on screen) into steady square crops (``margin`` around the face box, smoothed
over ``smooth`` frames; the centre square when no face is found anywhere). Pass 2
(:func:`analyse_frame`) cuts a frame's crop at ``crop_size`` (or keeps the frame whole) and runs
the face mesh and, where a face is found, the parser on it. A frame without a face takes the
results of its nearest frame with one (:func:`nearest_sources`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from finecliper.errors import ConfigError
from finecliper.face.detect import FaceBox, FaceDetector
from finecliper.face.landmarks import MeshLandmarker
from finecliper.face.parsing import make_parser
from finecliper.face.track import (
    CropBox,
    centre_crop_box,
    crop_boxes,
    crop_square,
    follow_main_face,
)

CropMode = Literal["auto", "always", "never"]


@dataclass(frozen=True)
class FacesSettings:
    """Everything that changes the cache's content; recorded in the manifest and checked on
    resume, so one cache never mixes clips made with different settings."""

    # auto: crop videos, keep frame folders (already face crops) as they are
    crop: CropMode = "auto"
    crop_size: int = 224
    margin: float = 0.25  # crop side = face box side x (1 + 2 margin)
    smooth: int = 5  # frames over which the crop box is averaged
    max_frames: int | None = None  # subsample longer clips uniformly to this many frames
    parser: str = "mesh"
    parser_weights: str | None = None
    refine_landmarks: bool = True  # 478 points (with irises) instead of 468
    min_confidence: float = 0.5
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        if self.crop not in ("auto", "always", "never"):
            raise ConfigError(f"crop mode {self.crop!r}: expected auto, always or never")
        if not 16 <= self.crop_size <= 2048:
            raise ConfigError(f"crop size {self.crop_size}: expected 16..2048 pixels")
        if not 0 <= self.margin <= 2:
            raise ConfigError(f"crop margin {self.margin}: expected 0..2")
        if self.smooth < 1:
            raise ConfigError(f"smoothing window {self.smooth}: expected >= 1 frame")
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError(f"max frames {self.max_frames}: expected >= 1")
        if not 0 < self.min_confidence < 1:
            raise ConfigError(f"min confidence {self.min_confidence}: expected 0..1")

    def crops(self, path: Path) -> bool:
        return self.crop == "always" or (self.crop == "auto" and not path.is_dir())


class FaceTools:
    """The models one process needs: face mesh, face detector and parser."""

    def __init__(self, settings: FacesSettings) -> None:
        self.landmarker = MeshLandmarker(
            refine_landmarks=settings.refine_landmarks,
            min_detection_confidence=settings.min_confidence,
        )
        self.detector = FaceDetector(min_confidence=settings.min_confidence)
        self.parser = make_parser(settings.parser, settings.parser_weights)

    def describe(self) -> dict[str, Any]:
        return {
            "landmarks": self.landmarker.describe(),
            "detector": self.detector.describe(),
            "parser": {"name": self.parser.name, **self.parser.describe()},
        }

    def close(self) -> None:
        self.landmarker.close()
        self.detector.close()


def nearest_sources(found: Sequence[bool]) -> list[int]:
    """For each position, the nearest position with ``found`` True (the earlier on a tie)."""
    hits = np.flatnonzero(np.asarray(found, dtype=bool))
    positions = np.arange(len(found))
    after = np.clip(np.searchsorted(hits, positions), 0, len(hits) - 1)
    before = np.clip(after - 1, 0, len(hits) - 1)
    use_before = np.abs(positions - hits[before]) <= np.abs(hits[after] - positions)
    return np.where(use_before, hits[before], hits[after]).tolist()


@dataclass
class Tracking:
    """Pass 1 over a clip: the main face per frame and each frame's crop (None: no cropping,
    or no frame could be read to place one)."""

    boxes: list[FaceBox | None]  # the followed main face, source pixels
    crops: list[CropBox] | None
    fallback: str | None = None  # "centre": no face anywhere, centre squares instead
    frame_size: tuple[int, int] | None = None  # (width, height) of the first readable frame


def track_main_face(
    images: Iterable[np.ndarray | None], tools: FaceTools, settings: FacesSettings, crop: bool
) -> Tracking:
    """Detect faces in every frame (None: unreadable, no face), follow the main one and, if
    ``crop``, place the crops."""
    detections: list[list[FaceBox]] = []
    size = None
    for image in images:
        detections.append([] if image is None else tools.detector(image))
        if image is not None and size is None:
            size = (image.shape[1], image.shape[0])
    boxes = follow_main_face(detections)
    if not crop:
        return Tracking(boxes, None, frame_size=size)
    crops, fallback = crop_boxes(boxes, margin=settings.margin, smooth=settings.smooth), None
    if crops is None and size is not None:
        crops, fallback = [centre_crop_box(*size)] * len(boxes), "centre"
    return Tracking(boxes, crops, fallback, size)


@dataclass
class FrameAnalysis:
    """Pass 2 on one frame: the frame the results are in pixels of, and its face results."""

    image: np.ndarray  # the crop at crop_size, or the frame as it is
    mesh: np.ndarray | None  # (478 or 468, 3) face mesh; None: no face found
    parsing: np.ndarray | None  # (H, W) uint8 label map, where a face was found


def analyse_frame(
    image: np.ndarray, crop: CropBox | None, tools: FaceTools, settings: FacesSettings
) -> FrameAnalysis:
    """Cut ``crop`` out of ``image`` (None: keep it whole), then the face mesh and parser."""
    frame = image if crop is None else crop_square(image, crop, settings.crop_size)
    mesh = tools.landmarker(frame)
    parsing = None if mesh is None else tools.parser(frame, mesh)
    return FrameAnalysis(frame, mesh, parsing)
