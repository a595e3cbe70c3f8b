"""MediaPipe face mesh and its iBUG 68-point subset, checked on a real photo.

Reference points were marked by hand on ``skimage.data.astronaut()`` (512 x 512, pixel x, y):
iris centres, nose tip, mouth centre. "Right"/"left" are the subject's own sides.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mediapipe")
skimage_data = pytest.importorskip("skimage.data")

from finecliper.errors import FineCLIPERError  # noqa: E402
from finecliper.face.detect import FaceDetector  # noqa: E402
from finecliper.face.landmarks import (  # noqa: E402
    MESH_POINTS,
    MESH_POINTS_WITH_IRISES,
    MESH_TO_IBUG68,
    MeshLandmarker,
    mesh_to_68,
)
from finecliper.face.schema import LANDMARK_FLIP, LANDMARK_GROUPS, NUM_LANDMARKS  # noqa: E402

RIGHT_IRIS = (203, 102)
LEFT_IRIS = (246, 103)
NOSE_TIP = (223, 127)
MOUTH_CENTRE = (223, 146)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def landmarker():
    with MeshLandmarker() as model:
        yield model


@pytest.fixture(scope="module")
def mesh(photo: np.ndarray, landmarker: MeshLandmarker) -> np.ndarray:
    result = landmarker(photo)
    assert result is not None, "no face found on the astronaut photo"
    return result


def near(point: np.ndarray, expected: tuple[int, int], tolerance: float) -> bool:
    return float(np.linalg.norm(np.asarray(point) - np.asarray(expected))) <= tolerance


def test_mesh_has_478_points_in_pixel_coordinates(mesh: np.ndarray) -> None:
    assert mesh.shape == (MESH_POINTS_WITH_IRISES, 3) and mesh.dtype == np.float32
    # The face spans roughly x 175..275, y 60..180 of the 512 x 512 photo.
    assert 160 < mesh[:, 0].min() < mesh[:, 0].max() < 290
    assert 50 < mesh[:, 1].min() < mesh[:, 1].max() < 195
    # Refined iris centres (468: subject's right, 473: left) sit on the hand-marked irises.
    assert near(mesh[468, :2], RIGHT_IRIS, 4)
    assert near(mesh[473, :2], LEFT_IRIS, 4)


def test_68_points_on_eyes_nose_and_mouth(mesh: np.ndarray) -> None:
    points = mesh_to_68(mesh)
    assert points.shape == (NUM_LANDMARKS, 2) and points.dtype == np.float32
    assert near(points[LANDMARK_GROUPS["right_eye"]].mean(0), RIGHT_IRIS, 5)
    assert near(points[LANDMARK_GROUPS["left_eye"]].mean(0), LEFT_IRIS, 5)
    assert near(points[30], NOSE_TIP, 5)
    mouth = points[48:68].mean(0)
    assert near(mouth, MOUTH_CENTRE, 6)


def test_68_point_layout_follows_ibug_order(mesh: np.ndarray) -> None:
    p = mesh_to_68(mesh)
    # Jaw from the subject's right ear (image left) over the chin (lowest point) to the left ear.
    assert p[0, 0] < p[8, 0] < p[16, 0]
    assert np.argmax(p[0:17, 1]) in (7, 8, 9)
    # Brows above eyes, eyes above the nose tip, nose tip above the mouth; eye corners in order.
    assert p[17:27, 1].mean() < p[36:48, 1].mean() < p[30, 1] < p[48:68, 1].mean()
    assert p[36, 0] < p[39, 0] < p[42, 0] < p[45, 0]
    assert p[48, 0] < p[51, 0] < p[54, 0] and p[51, 1] < p[57, 1]
    assert p[62, 1] <= p[66, 1]  # inner upper lip above inner lower lip


def test_68_subset_is_mirror_consistent(
    photo: np.ndarray, landmarker: MeshLandmarker, mesh: np.ndarray
) -> None:
    """A mirrored photo, mapped back with LANDMARK_FLIP, gives the same 68 points: the table's
    left/right pairs are the mesh's mirror vertices."""
    mirrored = landmarker(np.ascontiguousarray(photo[:, ::-1]))
    assert mirrored is not None
    back = mesh_to_68(mirrored)[list(LANDMARK_FLIP)]
    back[:, 0] = photo.shape[1] - back[:, 0]
    error = np.linalg.norm(back - mesh_to_68(mesh), axis=1)
    assert error.mean() < 2.5 and error.max() < 8


def test_index_table_is_68_distinct_mesh_vertices() -> None:
    assert len(MESH_TO_IBUG68) == NUM_LANDMARKS
    assert len(set(MESH_TO_IBUG68)) == NUM_LANDMARKS
    assert all(0 <= i < MESH_POINTS for i in MESH_TO_IBUG68)


def test_mesh_to_68_keeps_leading_axes_and_rejects_other_shapes() -> None:
    clip = np.random.default_rng(0).random((5, MESH_POINTS, 3)).astype(np.float32)
    out = mesh_to_68(clip)
    assert out.shape == (5, 68, 2)
    np.testing.assert_array_equal(out[2, 30], clip[2, MESH_TO_IBUG68[30], :2])
    with pytest.raises(FineCLIPERError, match="expected"):
        mesh_to_68(np.zeros((68, 2)))


def test_no_face_gives_none(landmarker: MeshLandmarker) -> None:
    flat = np.full((128, 128, 3), 90, dtype=np.uint8)
    assert landmarker(flat) is None


def test_bad_images_are_refused_with_a_clear_error(landmarker: MeshLandmarker) -> None:
    with pytest.raises(FineCLIPERError, match="uint8 RGB"):
        landmarker(np.zeros((64, 64), dtype=np.uint8))
    with pytest.raises(FineCLIPERError, match="uint8 RGB"):
        landmarker(np.zeros((64, 64, 3), dtype=np.float32))


def test_detector_box_holds_the_face_and_nothing_on_a_blank(photo: np.ndarray) -> None:
    with FaceDetector() as detector:
        boxes = detector(photo)
        blank = detector(np.full((96, 96, 3), 200, dtype=np.uint8))
    assert len(boxes) == 1 and boxes[0].score > 0.5
    box = boxes[0]
    for x, y in (RIGHT_IRIS, LEFT_IRIS, NOSE_TIP, MOUTH_CENTRE):
        assert box.x0 < x < box.x1 and box.y0 < y < box.y1
    assert 70 < box.width < 140  # one face, not the whole photo
    assert blank == []
