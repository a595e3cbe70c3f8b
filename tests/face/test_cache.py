"""The faces cache's layout: folder names, finished clips, what declares a folder a cache."""

import json
from pathlib import Path

import numpy as np
import pytest

from finecliper.errors import FineCLIPERError
from finecliper.face.arrays import write_arrays
from finecliper.face.cache import (
    CACHE_FORMAT,
    clip_dir,
    is_faces_cache,
    iter_statuses,
    load_clip_faces,
)
from finecliper.io import write_json


def finished_clip(cache: Path, clip_id: str, status: str = "ok") -> Path:
    folder = clip_dir(cache, clip_id)
    folder.mkdir(parents=True)
    if status == "ok":
        landmarks = np.zeros((2, 68, 2), np.float32)
        write_arrays(folder, landmarks, np.zeros((2, 8, 8), np.uint8), np.zeros((2, 478, 3)))
    write_json(folder / "status.json", {"clip_id": clip_id, "status": status})
    return folder


def test_clip_ids_with_slashes_get_safe_distinct_folders(tmp_path: Path) -> None:
    assert clip_dir(tmp_path, "00001") == tmp_path / "clips" / "00001"
    nested = clip_dir(tmp_path, "Scene/Happy/0001")
    assert nested.parent == tmp_path / "clips" and "/" not in nested.name


def test_finished_clips_load_and_unfinished_ones_are_named(tmp_path: Path) -> None:
    finished_clip(tmp_path, "a/b")
    finished_clip(tmp_path, "c", status="no_face")
    (tmp_path / "clips" / ".d.partial").mkdir()
    assert [status["clip_id"] for _, status in iter_statuses(tmp_path)] == ["a/b", "c"]
    faces = load_clip_faces(tmp_path, "a/b", mesh=True)
    assert faces.landmarks.shape == (2, 68, 2) and faces.mesh.dtype == np.float16
    assert load_clip_faces(tmp_path, "c").landmarks is None
    with pytest.raises(FineCLIPERError, match="'e' is not in the face cache"):
        load_clip_faces(tmp_path, "e")


def test_a_damaged_clip_is_named_as_such(tmp_path: Path) -> None:
    folder = finished_clip(tmp_path, "a")
    (folder / "parsing.npz").write_bytes(b"garbage")
    with pytest.raises(FineCLIPERError, match=r"damaged face-cache clip \("):
        load_clip_faces(tmp_path, "a")


def test_only_a_faces_manifest_makes_a_folder_a_cache(tmp_path: Path) -> None:
    assert not is_faces_cache(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "something else"}))
    assert not is_faces_cache(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": CACHE_FORMAT}))
    assert is_faces_cache(tmp_path)
    (tmp_path / "manifest.json").write_text("{ broken")
    with pytest.raises(FineCLIPERError, match=r"manifest\.json: unreadable"):
        is_faces_cache(tmp_path)
