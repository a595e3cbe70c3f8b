"""The clip arrays' file format: round trip, reproducible bytes, damaged files, row rules."""

import zipfile
from pathlib import Path

import numpy as np
import pytest

from finecliper.face.arrays import (
    LANDMARKS_FILE,
    MESH_FILE,
    PARSING_FILE,
    DamagedArraysError,
    has_landmarks,
    has_mesh,
    no_face,
    padded_rows,
    read_arrays,
    read_landmarks,
    source_frames,
    write_arrays,
)


def clip_arrays(frames: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    landmarks = rng.uniform(0, 32, (frames, 68, 2)).astype(np.float32)
    landmarks[1] = np.nan  # a frame without a face
    parsing = rng.integers(0, 11, (frames, 32, 32), dtype=np.uint8)
    mesh = rng.uniform(0, 32, (frames, 478, 3))
    return landmarks, parsing, mesh


def test_round_trip_keeps_every_value_and_the_stored_dtypes(tmp_path: Path) -> None:
    landmarks, parsing, mesh = clip_arrays()
    write_arrays(tmp_path, landmarks, parsing, mesh)
    arrays = read_arrays(tmp_path, mesh=True)
    np.testing.assert_array_equal(arrays.landmarks, landmarks)
    np.testing.assert_array_equal(arrays.parsing, parsing)
    assert arrays.mesh is not None and arrays.mesh.dtype == np.float16
    np.testing.assert_array_equal(arrays.mesh, mesh.astype(np.float16))
    assert read_arrays(tmp_path).mesh is None
    mapped = read_landmarks(tmp_path, mmap=True)
    assert isinstance(mapped, np.memmap)
    np.testing.assert_array_equal(mapped, landmarks)
    with np.load(tmp_path / PARSING_FILE) as archive:  # readable as a plain npz, key "maps"
        assert archive.files == ["maps"]


def test_written_files_are_byte_identical_across_writes(tmp_path: Path) -> None:
    landmarks, parsing, mesh = clip_arrays()
    write_arrays(tmp_path / "a", landmarks, parsing, mesh)
    write_arrays(tmp_path / "b", landmarks, parsing, mesh)
    for name in (LANDMARKS_FILE, MESH_FILE, PARSING_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    with zipfile.ZipFile(tmp_path / "a" / PARSING_FILE) as archive:
        assert archive.getinfo("maps.npy").date_time == (1980, 1, 1, 0, 0, 0)
    assert not list(tmp_path.glob("a/.*"))  # no temporaries left behind


def test_without_a_mesh_no_mesh_file_is_written(tmp_path: Path) -> None:
    landmarks, parsing, _ = clip_arrays()
    assert not has_landmarks(tmp_path)
    write_arrays(tmp_path, landmarks, parsing)
    assert has_landmarks(tmp_path) and not has_mesh(tmp_path)


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        (PARSING_FILE, b"not a zip archive"),
        (PARSING_FILE, b"PK\x03\x04 truncated"),
        (LANDMARKS_FILE, b""),
        (LANDMARKS_FILE, b"\x93NUMPY garbage"),
    ],
)
def test_a_damaged_file_is_an_error_naming_the_folder(
    tmp_path: Path, name: str, payload: bytes
) -> None:
    landmarks, parsing, _ = clip_arrays()
    write_arrays(tmp_path, landmarks, parsing)
    (tmp_path / name).write_bytes(payload)
    with pytest.raises(DamagedArraysError, match="damaged middle-level arrays") as caught:
        read_arrays(tmp_path)
    assert caught.value.folder == tmp_path and str(tmp_path) in str(caught.value)
    assert caught.value.reason


def test_parsing_archive_without_maps_is_damaged(tmp_path: Path) -> None:
    landmarks, parsing, _ = clip_arrays()
    write_arrays(tmp_path, landmarks, parsing)
    np.savez(tmp_path / PARSING_FILE, other=parsing)
    with pytest.raises(DamagedArraysError, match="maps"):
        read_arrays(tmp_path)


def test_missing_files_are_damaged_clips(tmp_path: Path) -> None:
    with pytest.raises(DamagedArraysError):
        read_arrays(tmp_path)


def test_frames_past_the_last_row_reuse_the_last_row() -> None:
    assert padded_rows([0, 2, 4, 7], 5).tolist() == [0, 2, 4, 4]
    assert padded_rows(np.arange(3), 1).tolist() == [0, 0, 0]


def test_rows_map_to_source_frames_through_the_recorded_indices() -> None:
    assert source_frames([0, 2, 2], (3, 7, 11)) == [3, 11, 11]
    assert source_frames([0, 2], None) == [0, 2]


def test_all_nan_rows_mean_no_face() -> None:
    landmarks, _, _ = clip_arrays()
    assert not no_face(landmarks)
    assert no_face(landmarks[[1, 1]])
    assert no_face(np.full((3, 68, 2), np.nan, np.float32))
