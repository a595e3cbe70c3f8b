"""The middle-level arrays of one clip on disk: the only module that reads or writes them.

A clip folder (a ``prepare faces`` cache clip, or a SynthDFER clip beside its ``frames``) holds::

    landmarks.npy   (T, 68, 2) float32 iBUG points in frame pixels; a NaN row: no face
    mesh.npy        (T, 478 or 468, 3) float16 MediaPipe mesh, same pixels (face cache only)
    parsing.npz     key "maps": (T, H, W) uint8 finecliper.face.schema ids

Row ``t`` belongs to the clip's ``t``-th stored frame. A reader asking for frames past the last
row gets the last row again (:func:`padded_rows`), and a clip whose rows are all NaN has no face:
its parsing and landmark modalities are missing (:func:`no_face`).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from finecliper.errors import FineCLIPERError
from finecliper.io import atomic_open

LANDMARKS_FILE = "landmarks.npy"
MESH_FILE = "mesh.npy"
PARSING_FILE = "parsing.npz"
PARSING_KEY = "maps"
# What numpy raises for a missing, truncated or foreign file.
_READ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


class DamagedArraysError(FineCLIPERError):
    """A clip's arrays exist but cannot be read; ``reason`` is what numpy said."""

    def __init__(self, folder: Path, reason: str) -> None:
        super().__init__(f"{folder}: damaged middle-level arrays ({reason})")
        self.folder = folder
        self.reason = reason


@dataclass
class ClipArrays:
    """A clip's landmarks (T, 68, 2), parsing maps (T, H, W) and, if asked for, its mesh."""

    landmarks: np.ndarray
    parsing: np.ndarray
    mesh: np.ndarray | None = None


def has_landmarks(folder: Path) -> bool:
    return (folder / LANDMARKS_FILE).is_file()


def has_mesh(folder: Path) -> bool:
    return (folder / MESH_FILE).is_file()


def read_landmarks(folder: Path, *, mmap: bool = False) -> np.ndarray:
    """(T, 68, 2) landmarks as stored; ``mmap`` maps the file instead of reading it."""
    try:
        return np.load(folder / LANDMARKS_FILE, mmap_mode="r" if mmap else None)
    except _READ_ERRORS as exc:
        raise DamagedArraysError(folder, str(exc)) from exc


def read_mesh(folder: Path) -> np.ndarray:
    try:
        return np.load(folder / MESH_FILE)
    except _READ_ERRORS as exc:
        raise DamagedArraysError(folder, str(exc)) from exc


def read_parsing(folder: Path) -> np.ndarray:
    try:
        with np.load(folder / PARSING_FILE) as archive:
            return archive[PARSING_KEY]
    except _READ_ERRORS as exc:
        raise DamagedArraysError(folder, str(exc)) from exc


def read_arrays(folder: Path, *, mesh: bool = False, mmap: bool = False) -> ClipArrays:
    """Landmarks and parsing maps (and the mesh with ``mesh``); raises DamagedArraysError."""
    landmarks = read_landmarks(folder, mmap=mmap)
    parsing = read_parsing(folder)
    return ClipArrays(landmarks, parsing, read_mesh(folder) if mesh else None)


def write_arrays(
    folder: Path,
    landmarks: np.ndarray,
    parsing: np.ndarray,
    mesh: np.ndarray | None = None,
) -> None:
    """Write a clip's arrays, each atomically; the same arrays always give the same bytes."""
    with atomic_open(folder / LANDMARKS_FILE, "wb") as handle:
        np.save(handle, np.asarray(landmarks, dtype=np.float32))
    if mesh is not None:
        with atomic_open(folder / MESH_FILE, "wb") as handle:
            np.save(handle, np.asarray(mesh, dtype=np.float16))
    with atomic_open(folder / PARSING_FILE, "wb") as handle:
        handle.write(_npz_bytes({PARSING_KEY: np.asarray(parsing, dtype=np.uint8)}))


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """What np.savez_compressed writes, but with fixed zip timestamps (reproducible files)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, member.getvalue(), compresslevel=6)
    return buffer.getvalue()


def padded_rows(positions: Sequence[int] | np.ndarray, rows: int) -> np.ndarray:
    """Array rows for frame ``positions``: frames past the last row reuse the last row."""
    return np.minimum(np.asarray(positions), rows - 1)


def source_frames(positions: Sequence[int], source_indices: Sequence[int] | None) -> list[int]:
    """The source frame of each array row in ``positions`` (None: row i is frame i)."""
    if source_indices is None:
        return list(positions)
    return [source_indices[p] for p in positions]


def no_face(landmarks: np.ndarray) -> bool:
    """All rows NaN: no face in any of these frames, the middle-level modalities are missing."""
    return bool(np.isnan(landmarks).all())
