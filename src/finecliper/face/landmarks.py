"""Facial landmarks: MediaPipe Face Mesh (468 points, 478 with irises) and its iBUG 68 subset.

MediaPipe 0.10.21 is the last release whose wheel ships the face-mesh models, so landmarks run
offline with nothing to download. Mesh coordinates are returned in pixels of the image they were
computed on: ``x`` and ``y`` as MediaPipe's normalised values times the width and height, ``z``
(depth relative to the face centre, smaller = nearer the camera) times the width, as MediaPipe
scales it.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import numpy as np

from finecliper.closing import Closing
from finecliper.errors import FineCLIPERError
from finecliper.face.native_logs import QuietGraph

MESH_POINTS = 468
MESH_POINTS_WITH_IRISES = 478

# iBUG 68-point index -> MediaPipe mesh vertex. One vertex per point, chosen on the canonical mesh:
# the jaw points are the face-oval vertices nearest to 17 equal steps of arc length from ear to ear
# (measured on a frontal face); the other points are the mesh's own contour vertices at the iBUG
# positions. "Right"/"left" are the subject's own sides, as in face/schema.py, so iBUG points 0-16
# run from the subject's right ear (image left in an unmirrored photo) to the left one.
MESH_TO_IBUG68: tuple[int, ...] = (
    # 0-16 jaw: right ear -> chin (8) -> left ear
    *(127, 234, 132, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 361, 454, 356),
    # 17-21 right brow, outer -> inner (upper edge); 22-26 left brow, inner -> outer
    *(70, 63, 105, 66, 107, 336, 296, 334, 293, 300),
    # 27-30 nose bridge, between the eyes -> tip; 31-35 nostril base, right -> left
    *(168, 197, 5, 4, 98, 97, 2, 326, 327),
    # 36-41 right eye: outer corner, upper outer, upper inner, inner corner, lower inner,
    # lower outer
    *(33, 160, 158, 133, 153, 144),
    # 42-47 left eye: inner corner, upper inner, upper outer, outer corner, lower outer,
    # lower inner
    *(362, 385, 387, 263, 373, 380),
    # 48-59 outer lips: right corner, upper lip to the left corner, lower lip back
    *(61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91),
    # 60-67 inner lips: right corner, upper inner lip, left corner, lower inner lip
    *(78, 81, 13, 311, 308, 402, 14, 178),
)


def mesh_to_68(mesh: np.ndarray) -> np.ndarray:
    """(..., 468 or 478, >=2) mesh -> (..., 68, 2) float32 iBUG landmarks (x, y)."""
    if mesh.ndim < 2 or mesh.shape[-2] not in (MESH_POINTS, MESH_POINTS_WITH_IRISES):
        raise FineCLIPERError(
            f"face mesh of shape {mesh.shape}: expected (..., {MESH_POINTS} or "
            f"{MESH_POINTS_WITH_IRISES}, 2 or 3)"
        )
    return np.ascontiguousarray(mesh[..., MESH_TO_IBUG68, :2], dtype=np.float32)


def import_solutions() -> ModuleType:
    """``mediapipe.solutions``, with a clear error when the package is missing."""
    # MediaPipe's C++ side logs every graph start to stderr; keep warnings and errors only.
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        from mediapipe.python import solutions
    except ImportError as exc:
        raise FineCLIPERError(
            f"mediapipe cannot be imported ({exc}); install it with "
            "`pip install --no-deps mediapipe==0.10.21 absl-py attrs flatbuffers 'protobuf<5' "
            "opencv-python-headless`"
        ) from exc
    return solutions


def mediapipe_version() -> str:
    import mediapipe

    return str(mediapipe.__version__)


def check_rgb(image: np.ndarray, what: str = "image") -> np.ndarray:
    """A C-contiguous (H, W, 3) uint8 array, or a FineCLIPERError saying what is wrong."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise FineCLIPERError(
            f"{what}: expected (H, W, 3) uint8 RGB, got {image.dtype} {image.shape}"
        )
    return np.ascontiguousarray(image)


class MeshLandmarker(Closing):
    """MediaPipe Face Mesh on single images (``static_image_mode``: every frame on its own, so a
    clip's result never depends on where a run was interrupted or which frames were read)."""

    def __init__(
        self,
        *,
        refine_landmarks: bool = True,
        min_detection_confidence: float = 0.5,
        max_faces: int = 2,
    ) -> None:
        solutions = import_solutions()
        self.settings: dict[str, Any] = {
            "static_image_mode": True,
            "refine_landmarks": refine_landmarks,
            "min_detection_confidence": min_detection_confidence,
            "max_num_faces": max_faces,
        }
        self._mesh = QuietGraph(
            lambda: solutions.face_mesh.FaceMesh(**self.settings),
            lambda result: bool(result.multi_face_landmarks),
        )

    def describe(self) -> dict[str, Any]:
        return {
            "tool": "mediapipe.solutions.face_mesh",
            "version": mediapipe_version(),
            "settings": dict(self.settings),
            "points": MESH_POINTS_WITH_IRISES if self.settings["refine_landmarks"] else MESH_POINTS,
        }

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        """(N, 3) float32 pixel mesh of the face nearest the image centre, or None if no face.

        With several faces in view the most central one wins: after tracking and cropping, that is
        the followed face.
        """
        image = check_rgb(image)
        result = self._mesh.process(image)
        if not result.multi_face_landmarks:
            return None
        height, width = image.shape[:2]
        scale = np.array([width, height, width], dtype=np.float32)
        faces = [
            np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32) * scale
            for face in result.multi_face_landmarks
        ]
        centre = np.array([width / 2, height / 2], dtype=np.float32)
        return min(faces, key=lambda f: float(np.linalg.norm(f[:, :2].mean(0) - centre)))

    def close(self) -> None:
        self._mesh.close()
