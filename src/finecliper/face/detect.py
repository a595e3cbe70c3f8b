"""Face detection on whole frames with MediaPipe's BlazeFace models (shipped in its wheel)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from finecliper.closing import Closing
from finecliper.face.landmarks import check_rgb, import_solutions, mediapipe_version
from finecliper.face.native_logs import QuietGraph


@dataclass(frozen=True)
class FaceBox:
    """An axis-aligned face box in pixels, ``x1``/``y1`` exclusive, with a detector score."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)

    def iou(self, other: FaceBox) -> float:
        w = min(self.x1, other.x1) - max(self.x0, other.x0)
        h = min(self.y1, other.y1) - max(self.y0, other.y0)
        inter = max(w, 0.0) * max(h, 0.0)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


class FaceDetector(Closing):
    """BlazeFace full-range model, with the short-range model as a second try.

    The full-range model finds small and distant faces in wide shots; the short-range one is
    better on faces that fill the frame, which the full-range model can miss.
    """

    def __init__(self, *, min_confidence: float = 0.5) -> None:
        solutions = import_solutions()
        self.min_confidence = min_confidence
        self._models = [
            QuietGraph(
                partial(
                    solutions.face_detection.FaceDetection,
                    model_selection=selection,
                    min_detection_confidence=min_confidence,
                ),
                lambda result: bool(result.detections),
            )
            for selection in (1, 0)
        ]

    def describe(self) -> dict[str, Any]:
        return {
            "tool": "mediapipe.solutions.face_detection",
            "version": mediapipe_version(),
            "settings": {
                "models": ["full_range", "short_range (when full_range finds none)"],
                "min_detection_confidence": self.min_confidence,
            },
        }

    def __call__(self, image: np.ndarray) -> list[FaceBox]:
        """All faces found in an (H, W, 3) uint8 RGB frame, best score first."""
        image = check_rgb(image)
        height, width = image.shape[:2]
        for model in self._models:
            detections = model.process(image).detections or []
            boxes = [_to_box(d, width, height) for d in detections]
            if boxes:
                return sorted(boxes, key=lambda b: -b.score)
        return []

    def close(self) -> None:
        for model in self._models:
            model.close()


def _to_box(detection: Any, width: int, height: int) -> FaceBox:
    rel = detection.location_data.relative_bounding_box
    x0, y0 = rel.xmin * width, rel.ymin * height
    return FaceBox(
        x0=float(x0),
        y0=float(y0),
        x1=float(x0 + rel.width * width),
        y1=float(y0 + rel.height * height),
        score=float(detection.score[0]) if detection.score else 0.0,
    )
