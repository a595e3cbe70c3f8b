"""The faces cache's layout (the contract between ``prepare faces`` and its readers)::

    CACHE/manifest.json                  dataset, tools with versions, settings, creation time
    CACHE/clips/<folder>/status.json     written last: the clip is finished (see clip_dir)
    CACHE/clips/<folder>/landmarks.npy   \
    CACHE/clips/<folder>/mesh.npy         > the clip's arrays (finecliper.face.arrays)
    CACHE/clips/<folder>/parsing.npz     /
    CACHE/clips/<folder>/frames/*.jpg    the face crops, for clips that were cropped (videos)

``<folder>`` is :func:`clip_folder_name` of the clip id. A clip with status ``no_face`` or
``failed`` has no arrays.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from finecliper.errors import FineCLIPERError
from finecliper.face.arrays import DamagedArraysError, read_arrays
from finecliper.io import read_text

CACHE_FORMAT = "finecliper-faces"
CACHE_FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
STATUS_FILE = "status.json"


def clip_folder_name(clip_id: str) -> str:
    """A file-system-safe, collision-free folder name for a clip id (ids may contain '/')."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", clip_id).lstrip(".") or "clip"
    if safe != clip_id:
        safe = f"{safe}-{zlib.crc32(clip_id.encode()):08x}"
    return safe


def clip_dir(cache: str | Path, clip_id: str) -> Path:
    return Path(cache) / "clips" / clip_folder_name(clip_id)


def read_status(folder: Path) -> dict[str, Any] | None:
    """A finished clip's status.json, or None when the clip is not (completely) there."""
    try:
        return json.loads(read_text(folder / STATUS_FILE))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise FineCLIPERError(f"{folder / STATUS_FILE}: unreadable ({exc})") from exc


def read_manifest(cache: str | Path) -> dict[str, Any]:
    path = Path(cache) / MANIFEST_FILE
    try:
        return json.loads(read_text(path))
    except FileNotFoundError as exc:
        raise FineCLIPERError(
            f"{path}: no face cache here (run `finecliper prepare faces`)"
        ) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise FineCLIPERError(f"{path}: unreadable ({exc})") from exc


def is_faces_cache(folder: str | Path) -> bool:
    """Whether ``folder`` says, in its manifest, that it is a ``prepare faces`` cache."""
    if not (Path(folder) / MANIFEST_FILE).is_file():
        return False
    manifest = read_manifest(folder)
    return isinstance(manifest, dict) and manifest.get("format") == CACHE_FORMAT


def iter_statuses(cache: str | Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(clip folder, status) of every finished clip, in folder-name order."""
    clips = Path(cache) / "clips"
    if not clips.is_dir():
        return
    for folder in sorted(clips.iterdir()):
        if folder.is_dir() and not folder.name.startswith("."):
            status = read_status(folder)
            if status is not None:
                yield folder, status


@dataclass
class ClipFaces:
    """One cached clip: its status and, unless no face was found, its arrays."""

    folder: Path
    status: dict[str, Any]
    landmarks: np.ndarray | None  # (T, 68, 2) float32
    parsing: np.ndarray | None  # (T, H, W) uint8
    mesh: np.ndarray | None  # (T, N, 3) float16

    @property
    def frames_dir(self) -> Path | None:
        name = self.status.get("frames_dir")
        return None if name is None else self.folder / name


def load_clip_faces(cache: str | Path, clip_id: str, *, mesh: bool = False) -> ClipFaces:
    """A finished clip from the cache; raises FineCLIPERError naming it if it is not there."""
    folder = clip_dir(cache, clip_id)
    status = read_status(folder)
    if status is None:
        raise FineCLIPERError(f"{folder}: clip {clip_id!r} is not in the face cache")
    if status["status"] != "ok":
        return ClipFaces(folder, status, None, None, None)
    try:
        arrays = read_arrays(folder, mesh=mesh)
    except DamagedArraysError as exc:
        raise FineCLIPERError(f"{folder}: damaged face-cache clip ({exc.reason})") from exc
    return ClipFaces(folder, status, arrays.landmarks, arrays.parsing, arrays.mesh)
