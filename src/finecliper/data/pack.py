"""Packed clip cache: a prepared dataset in a few large files, read by memory mapping.

``finecliper pack DATASET ROOT --out PACKED`` reads a dataset (any reader), its middle-level
data (a ``prepare faces`` cache, or SynthDFER's own files) and its descriptions, and writes every
clip into shards of large files. At training time a worker maps them into memory and reads only
the sampled frames of a clip: no per-frame files, no npz archives, no directory listings.

Layout of PACKED::

    settings.json               written first: what a resumed run must match
    shards/NNNNN.bin            blobs: each frame (JPEG bytes, or raw uint8 H x W x 3), each
                                parsing map (zlib of uint8 H x W), each description (UTF-8)
    shards/NNNNN.frames.npy     (F,) FRAME_DTYPE: offset and length of each frame's image and
                                parsing blob in the shard's .bin
    shards/NNNNN.landmarks.npy  float32 (F, 68, 2), NaN rows where a clip has no face data
    shards/NNNNN.json           written after the shard's other files: its clips' entries
    clips.npy                   (N,) CLIP_DTYPE: shard, first frame row, frame count, frame
                                size, label, has_middle, description blobs (train, eval)
    pack.json                   written last (no pack.json: incomplete): format, dataset, classes,
                                clip ids, source paths, splits, problems, shards, settings

Clip ``i`` is the ``i``-th clip id in sorted order; shard ``k`` holds clips ``[k*S, (k+1)*S)``.
Frames: a JPEG file whose size matches the clip's first frame is copied byte for byte; other
images and video frames are encoded as JPEG at ``quality``; ``frame_format="raw"`` stores every
frame as decoded uint8 instead (no decoding when reading, ~15x larger). Every frame is decoded
once while packing, so a corrupt file is found here, not in the middle of training.

Middle-level rows follow the frames: row ``t`` holds the landmarks and parsing map of frame
``t``. A face cache's frames are the cached crops when it made crops, else the source frames it
processed (``frame_files`` / ``source_indices``), so the three always line up. Shorter arrays
repeat their last row, as the unpacked loader does.

Clips keep their place. A clip whose frames cannot be read, or whose parsing maps and landmarks
do not fit its frames, is packed with 0 frames and its error (training leaves it out and lists
it; evaluation reports it skipped), as the unpacked loader fails it. A clip without middle-level
data (not in the face cache, no face found, unreadable files) is packed without it, and the
reason is listed in ``problems``.

Resuming: each shard is written to temporary files that are renamed into place; a shard is
finished once its ``.json`` exists, and a rerun with the same arguments skips it.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import time
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from finecliper import __version__
from finecliper.data.dataset import ClipDataset
from finecliper.data.records import ClipRecord, DatasetIndex, Problem
from finecliper.data.sampling import segment_indices
from finecliper.data.transforms import ClipSample, ClipTransform
from finecliper.data.video import (
    VideoReadError,
    frames_to_tensor,
    image_to_rgb,
    list_frame_files,
    open_video,
)
from finecliper.errors import ConfigError, FineCLIPERError
from finecliper.face.arrays import (
    DamagedArraysError,
    has_landmarks,
    no_face,
    padded_rows,
    read_arrays,
)
from finecliper.face.cache import clip_dir, load_clip_faces, read_status
from finecliper.face.schema import NUM_LANDMARKS
from finecliper.io import atomic_open, write_json

try:  # optional: libjpeg-turbo without PIL's per-image overhead, ~3x faster on small frames
    import simplejpeg
except ImportError:  # PIL decodes the very same pixels
    simplejpeg = None

FORMAT = "finecliper-pack"
FORMAT_VERSION = 1
FrameFormat = Literal["jpeg", "raw"]
FRAME_FORMATS: tuple[FrameFormat, ...] = ("jpeg", "raw")
PARSING_LEVEL = 6  # zlib level: maps are piecewise constant, ~15x smaller; inflating is cheap
_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)

CLIP_DTYPE = np.dtype(
    [
        ("shard", "<i4"),
        ("first", "<i8"),  # first frame row in the shard's frames/landmarks arrays
        ("frames", "<i4"),  # 0: the clip could not be read (see pack.json problems)
        ("height", "<i4"),
        ("width", "<i4"),
        ("label", "<i4"),
        ("middle", "u1"),  # 1: parsing maps and landmarks are stored
        ("text_offset", "<i8", (2,)),  # description for training, for evaluation
        ("text_length", "<i4", (2,)),  # -1: none
    ]
)
FRAME_DTYPE = np.dtype(
    [
        ("image_offset", "<i8"),
        ("image_length", "<i4"),
        ("parsing_offset", "<i8"),
        ("parsing_length", "<i4"),  # -1: no parsing map
    ]
)


@dataclass(frozen=True)
class PackSettings:
    """How frames are stored and how clips are grouped; recorded and checked on resume."""

    frame_format: FrameFormat = "jpeg"
    quality: int = 95  # for frames that have to be encoded
    shard_clips: int = 256

    def __post_init__(self) -> None:
        if self.frame_format not in FRAME_FORMATS:
            raise ConfigError(f"frame format {self.frame_format!r}: expected jpeg or raw")
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"JPEG quality {self.quality}: expected 1..100")
        if self.shard_clips < 1:
            raise ConfigError(f"clips per shard {self.shard_clips}: expected >= 1")


@dataclass(frozen=True)
class PackSources:
    """Where the middle-level data and descriptions come from."""

    faces_cache: Path | None = None
    synth_middle: bool = False  # SynthDFER: landmarks.npy / parsing.npz beside frames/
    descriptions: Path | None = None


@dataclass
class PackSummary:
    out: str
    clips: int = 0
    frames: int = 0
    bytes: int = 0
    shards: int = 0
    packed_shards: int = 0  # written by this run (the others were finished before)
    failed_clips: int = 0
    clips_without_middle: int = 0
    seconds: float = 0.0
    clips_per_second: float = 0.0


# ---------------------------------------------------------------------------------------------
# Reading one clip's source data


@dataclass(frozen=True)
class _Plan:
    """Where one clip's frames come from, and its middle-level arrays (None: missing)."""

    files: list[Path] | None = None
    video: Path | None = None
    video_indices: list[int] | None = None  # None: every frame of the video
    landmarks: np.ndarray | None = None
    parsing: np.ndarray | None = None
    note: str | None = None  # why the middle-level data is missing


def _source_plan(path: Path) -> _Plan:
    if path.is_dir():
        files = list_frame_files(path)
        if not files:
            raise VideoReadError(f"{path}: frame folder holds no *.jpg/*.jpeg/*.png images")
        return _Plan(files=files)
    if path.is_file():
        return _Plan(video=path)
    raise VideoReadError(f"{path}: no such frame folder or video file")


def _synth_plan(record: ClipRecord) -> _Plan:
    plan = _source_plan(Path(record.path))
    folder = Path(record.path).parent
    if not has_landmarks(folder):
        return replace(plan, note="no landmarks.npy beside the frames")
    try:
        arrays = read_arrays(folder)
    except DamagedArraysError as exc:
        return replace(plan, note=f"{folder}: unreadable middle-level files ({exc.reason})")
    return replace(plan, landmarks=arrays.landmarks, parsing=arrays.parsing)


def _cache_plan(record: ClipRecord, cache: Path) -> _Plan:
    try:
        status = read_status(clip_dir(cache, record.clip_id))
        faces = load_clip_faces(cache, record.clip_id) if status else None
    except FineCLIPERError as exc:
        return replace(_source_plan(Path(record.path)), note=str(exc))
    if status is None or faces is None:
        return replace(_source_plan(Path(record.path)), note="not in the faces cache")
    if status["status"] != "ok" or faces.landmarks is None:
        why = f"faces cache status {status['status']}"
        if status.get("error"):
            why += f" ({status['error']})"
        return replace(_source_plan(Path(record.path)), note=why)
    if faces.frames_dir is not None:  # the cache's face crops are the frames its arrays fit
        files = [faces.frames_dir / f"{p:06d}.jpg" for p in range(int(status["frames"]))]
        plan = _Plan(files=files)
    elif status.get("frame_files"):
        plan = _Plan(files=[Path(record.path) / name for name in status["frame_files"]])
    else:
        plan = _Plan(video=Path(record.path), video_indices=list(status["source_indices"]))
    return replace(plan, landmarks=faces.landmarks, parsing=faces.parsing)


def _plan(record: ClipRecord, sources: PackSources) -> _Plan:
    if sources.faces_cache is not None:
        return _cache_plan(record, sources.faces_cache)
    if sources.synth_middle:
        return _synth_plan(record)
    return _source_plan(Path(record.path))


# ---------------------------------------------------------------------------------------------
# Frames as blobs


def _encode(rgb: np.ndarray, settings: PackSettings) -> bytes:
    if settings.frame_format == "raw":
        return np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=settings.quality)
    return buffer.getvalue()


def _file_blobs(files: list[Path], settings: PackSettings) -> tuple[list[bytes], tuple[int, int]]:
    blobs: list[bytes] = []
    size: tuple[int, int] | None = None
    for file in files:
        try:
            data = file.read_bytes()
            with Image.open(io.BytesIO(data)) as image:
                image.load()  # decode once: a corrupt frame is this clip's error, now
                size = size or image.size
                verbatim = settings.frame_format == "jpeg" and image.format == "JPEG"
                if verbatim and image.size == size:
                    blobs.append(data)
                else:
                    blobs.append(_encode(image_to_rgb(image, size), settings))
        except _IMAGE_ERRORS as exc:
            raise VideoReadError(f"{file}: unreadable image ({exc})") from exc
    assert size is not None  # files is never empty (checked by the plan)
    return blobs, size


def _video_blobs(
    path: Path, indices: list[int] | None, settings: PackSettings
) -> tuple[list[bytes], tuple[int, int]]:
    wanted = None if indices is None else set(indices)
    last = None if indices is None else max(indices, default=-1)
    encoded: dict[int, bytes] = {}
    size: tuple[int, int] | None = None
    with open_video(path) as reader:
        for position, frame in enumerate(reader.decoded()):
            if last is not None and position > last:
                break
            if wanted is None or position in wanted:
                image = frame.to_image()
                size = size or image.size
                encoded[position] = _encode(image_to_rgb(image, size), settings)
    order = sorted(encoded) if indices is None else indices
    missing = [i for i in order if i not in encoded]
    if size is None or missing:
        where = f"frame {missing[0]} does not decode" if missing else "no decodable frames"
        raise VideoReadError(f"{path}: {where}")
    return [encoded[i] for i in order], size


def _frame_blobs(plan: _Plan, settings: PackSettings) -> tuple[list[bytes], tuple[int, int]]:
    if plan.files is not None:
        return _file_blobs(plan.files, settings)
    assert plan.video is not None
    return _video_blobs(plan.video, plan.video_indices, settings)


def _aligned_middle(
    plan: _Plan, count: int, size: tuple[int, int], clip: Path
) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """(landmarks (T, 68, 2), parsing (T, H, W), note) for ``count`` frames of ``size``.

    Arrays that do not fit the frames are the clip's error, as they are for the unpacked loader.
    """
    landmarks, parsing = plan.landmarks, plan.parsing
    if landmarks is None or parsing is None:
        return None, None, plan.note
    width, height = size
    if parsing.ndim != 3 or parsing.shape[1:] != (height, width):
        raise VideoReadError(
            f"{clip}: parsing maps {parsing.shape} do not fit its {width}x{height} frames: the "
            "face cache was made from other frames"
        )
    if landmarks.shape[1:] != (NUM_LANDMARKS, 2) or len(landmarks) != len(parsing) or not count:
        raise VideoReadError(
            f"{clip}: {landmarks.shape} landmarks do not fit {len(parsing)} parsing maps"
        )
    rows = padded_rows(np.arange(count), len(landmarks))  # as the unpacked loader pads
    points = np.asarray(landmarks[rows], dtype=np.float32)
    if no_face(points):
        return None, None, "no face in any frame"
    return points, np.ascontiguousarray(parsing[rows], dtype=np.uint8), None


# ---------------------------------------------------------------------------------------------
# Writing shards


class _BlobFile:
    """Appends blobs to an open file and returns where each one went."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.size = 0

    def add(self, data: bytes) -> tuple[int, int]:
        offset = self.size
        self.handle.write(data)
        self.size += len(data)
        return offset, len(data)


@dataclass
class _ShardJob:
    out: Path
    shard: int
    first_position: int
    records: list[ClipRecord]
    texts: list[tuple[str | None, str | None]]  # (for training, for evaluation) per clip
    settings: PackSettings
    sources: PackSources


@dataclass
class _ShardRows:
    frames: list[tuple[int, int, int, int]] = field(default_factory=list)
    landmarks: list[np.ndarray] = field(default_factory=list)


def shard_name(shard: int) -> str:
    return f"{shard:05d}"


def _shard_path(out: Path, shard: int, suffix: str) -> Path:
    return out / "shards" / f"{shard_name(shard)}{suffix}"


def _store_texts(blobs: _BlobFile, texts: tuple[str | None, str | None]) -> list[list[int]]:
    stored = []
    for text in texts:
        stored.append([-1, -1] if text is None else list(blobs.add(text.encode("utf-8"))))
    return stored


def _pack_clip(
    record: ClipRecord,
    texts: tuple[str | None, str | None],
    job: _ShardJob,
    blobs: _BlobFile,
    rows: _ShardRows,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "clip_id": record.clip_id,
        "first": len(rows.frames),
        "frames": 0,
        "size": [0, 0],
        "middle": False,
        "text": _store_texts(blobs, texts),
        "error": None,
        "note": None,
    }
    try:
        plan = _plan(record, job.sources)
        images, size = _frame_blobs(plan, job.settings)
        landmarks, parsing, note = _aligned_middle(plan, len(images), size, Path(record.path))
    except FineCLIPERError as exc:  # this clip's problem, not the job's
        entry["error"] = str(exc)
        return entry
    for t, image in enumerate(images):
        maps = (-1, -1)
        if parsing is not None:
            maps = blobs.add(zlib.compress(parsing[t].tobytes(), PARSING_LEVEL))
        rows.frames.append((*blobs.add(image), *maps))
    if landmarks is None:
        landmarks = np.full((len(images), NUM_LANDMARKS, 2), np.nan, dtype=np.float32)
    rows.landmarks.append(landmarks)
    entry.update(frames=len(images), size=list(size), middle=parsing is not None, note=note)
    return entry


def _write_shard(job: _ShardJob) -> dict[str, Any]:
    """Pack one shard's clips; returns its marker (also written to ``NNNNN.json``)."""
    rows = _ShardRows()
    entries = []
    with atomic_open(_shard_path(job.out, job.shard, ".bin"), "wb") as handle:
        blobs = _BlobFile(handle)
        for record, texts in zip(job.records, job.texts, strict=True):
            entries.append(_pack_clip(record, texts, job, blobs, rows))
    frames = np.array(rows.frames, dtype=np.int64).reshape(-1, 4)
    table = np.zeros(len(frames), dtype=FRAME_DTYPE)
    for column, name in enumerate(FRAME_DTYPE.names or ()):
        table[name] = frames[:, column]
    landmarks = (
        np.concatenate(rows.landmarks)
        if rows.landmarks
        else np.zeros((0, NUM_LANDMARKS, 2), np.float32)
    )
    for suffix, array in ((".frames.npy", table), (".landmarks.npy", landmarks)):
        with atomic_open(_shard_path(job.out, job.shard, suffix), "wb") as handle:
            np.save(handle, array)
    marker = {
        "shard": job.shard,
        "first_position": job.first_position,
        "frames": len(table),
        "bytes": blobs.size,
        "clips": entries,
    }
    write_json(_shard_path(job.out, job.shard, ".json"), marker)
    return marker


# ---------------------------------------------------------------------------------------------
# The pack job


def _unique_records(index: DatasetIndex) -> list[ClipRecord]:
    from finecliper.face.pipeline import unique_records

    return unique_records(index)


def _file_digest(path: Path | None) -> str | None:
    if path is None:
        return None
    if not path.is_file():
        raise FineCLIPERError(f"{path}: descriptions file does not exist")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _settings_record(
    index: DatasetIndex, records: list[ClipRecord], settings: PackSettings, sources: PackSources
) -> dict[str, Any]:
    listing = "\n".join(f"{r.clip_id}\t{r.path}\t{r.label}" for r in records)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dataset": index.dataset,
        "settings": asdict(settings),
        "faces_cache": None if sources.faces_cache is None else str(sources.faces_cache),
        "synth_middle": sources.synth_middle,
        "descriptions_sha256": _file_digest(sources.descriptions),
        "clips_sha256": hashlib.sha256(listing.encode("utf-8")).hexdigest(),
    }


def _prepare_out(out: Path, record: dict[str, Any]) -> None:
    """Refuse a folder holding something else; clean up after an interrupted run."""
    path = out / "settings.json"
    if path.is_file():
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FineCLIPERError(f"{path}: unreadable ({exc})") from exc
        changed = [key for key in record if existing.get(key) != record[key]]
        if changed:
            raise ConfigError(
                f"{out}: holds a pack made with other {', '.join(changed)}; use another --out, "
                "or the same dataset and options"
            )
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FineCLIPERError(f"{out}: exists and is not a pack; choose another --out")
    (out / "shards").mkdir(parents=True, exist_ok=True)
    for leftover in (out / "shards").glob(".*.tmp"):  # atomic_open's temporaries
        leftover.unlink(missing_ok=True)
    (out / "pack.json").unlink(missing_ok=True)  # complete again only when this run ends
    write_json(path, record)


def _descriptions(
    records: list[ClipRecord], path: Path | None
) -> list[tuple[str | None, str | None]]:
    if path is None:
        return [(None, None)] * len(records)
    from finecliper.text.descriptions import load_descriptions

    train = load_descriptions(path, split="train")
    evaluation = load_descriptions(path, split="test")
    return [(train.get(r.clip_id), evaluation.get(r.clip_id)) for r in records]


def _jobs(
    out: Path,
    records: list[ClipRecord],
    settings: PackSettings,
    sources: PackSources,
) -> list[_ShardJob]:
    texts = _descriptions(records, sources.descriptions)
    size = settings.shard_clips
    return [
        _ShardJob(
            out,
            k,
            start,
            records[start : start + size],
            texts[start : start + size],
            settings,
            sources,
        )
        for k, start in enumerate(range(0, len(records), size))
    ]


def _read_marker(out: Path, shard: int) -> dict[str, Any] | None:
    path = _shard_path(out, shard, ".json")
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FineCLIPERError(f"{path}: unreadable ({exc}); delete it to repack the shard") from exc


def _run_jobs(jobs: list[_ShardJob], workers: int) -> Iterator[dict[str, Any]]:
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_write_shard, jobs)
        return
    # spawn: safe next to torch's threads in the parent, and the same on every platform
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context) as pool:
        yield from pool.map(_write_shard, jobs)


def pack_dataset(
    index: DatasetIndex,
    out: str | Path,
    *,
    settings: PackSettings | None = None,
    sources: PackSources | None = None,
    workers: int = 1,
    progress: bool = True,
) -> PackSummary:
    """Pack every clip of ``index`` into ``out`` (layout: module docstring); resumable."""
    out = Path(out)
    settings = settings or PackSettings()
    sources = sources or PackSources()
    if workers < 1:
        raise ConfigError(f"workers {workers}: expected >= 1")
    records = _unique_records(index)
    if not records:
        raise FineCLIPERError(f"{index.dataset}: the dataset lists no clips; nothing to pack")
    _prepare_out(out, _settings_record(index, records, settings, sources))
    jobs = _jobs(out, records, settings, sources)
    markers = {job.shard: _read_marker(out, job.shard) for job in jobs}
    todo = [job for job in jobs if markers[job.shard] is None]
    start = time.perf_counter()
    with tqdm(total=len(records), desc="pack", unit="clip", disable=not progress) as bar:
        bar.update(sum(len(job.records) for job in jobs if markers[job.shard] is not None))
        for marker in _run_jobs(todo, workers):
            markers[marker["shard"]] = marker
            bar.update(len(marker["clips"]))
    seconds = time.perf_counter() - start
    summary = _finish(out, index, records, [markers[job.shard] for job in jobs], settings)
    summary.packed_shards = len(todo)
    summary.seconds = round(seconds, 3)
    packed_clips = sum(len(job.records) for job in todo)
    summary.clips_per_second = round(packed_clips / seconds, 2) if seconds > 0 else 0.0
    return summary


def _clip_table(records: list[ClipRecord], markers: list[dict[str, Any]]) -> np.ndarray:
    table = np.zeros(len(records), dtype=CLIP_DTYPE)
    for marker in markers:
        for offset, entry in enumerate(marker["clips"]):
            row = table[marker["first_position"] + offset]
            row["shard"] = marker["shard"]
            row["first"] = entry["first"]
            row["frames"] = entry["frames"]
            row["width"], row["height"] = entry["size"]
            row["middle"] = entry["middle"]
            row["text_offset"] = [offset for offset, _ in entry["text"]]
            row["text_length"] = [length for _, length in entry["text"]]
    table["label"] = [r.label for r in records]
    return table


def _split_table(index: DatasetIndex, positions: dict[str, int]) -> dict[str, list[list]]:
    """Per split name: [position, fold] of each of its clips, in the index's order."""
    return {
        name: [[positions[r.clip_id], r.fold] for r in split_records]
        for name, split_records in index.splits.items()
    }


def _problems(index: DatasetIndex, markers: list[dict[str, Any]]) -> list[dict[str, str]]:
    found = [{"path": p.path, "problem": p.problem} for p in index.problems]
    for marker in markers:
        for entry in marker["clips"]:
            if entry["error"]:
                found.append({"path": entry["clip_id"], "problem": entry["error"]})
            elif entry["note"] and not entry["middle"]:
                problem = f"no middle-level data: {entry['note']}"
                found.append({"path": entry["clip_id"], "problem": problem})
    return found


def _finish(
    out: Path,
    index: DatasetIndex,
    records: list[ClipRecord],
    markers: list[dict[str, Any]],
    settings: PackSettings,
) -> PackSummary:
    table = _clip_table(records, markers)
    with atomic_open(out / "clips.npy", "wb") as handle:
        np.save(handle, table)
    positions = {r.clip_id: i for i, r in enumerate(records)}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "complete": True,
        "dataset": index.dataset,
        "root": str(index.root),
        "source": index.source,
        "classes": list(index.classes),
        "clip_ids": [r.clip_id for r in records],
        "paths": [str(r.path) for r in records],
        "captions": [r.caption for r in records],
        "splits": _split_table(index, positions),
        "problems": _problems(index, markers),
        "frame_format": settings.frame_format,
        "shards": [{"frames": m["frames"], "bytes": m["bytes"]} for m in markers],
        "settings": json.loads((out / "settings.json").read_text(encoding="utf-8")),
        "finecliper_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(out / "pack.json", meta)
    return PackSummary(
        out=str(out),
        clips=len(records),
        frames=int(table["frames"].sum()),
        bytes=sum(m["bytes"] for m in markers),
        shards=len(markers),
        failed_clips=int((table["frames"] == 0).sum()),
        clips_without_middle=int(((table["frames"] > 0) & (table["middle"] == 0)).sum()),
    )


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass
class PackedClip:
    """Sampled frames (T, H, W, 3) uint8 and, if stored, parsing (T, H, W) and landmarks."""

    frames: np.ndarray
    parsing: np.ndarray | None
    landmarks: np.ndarray | None


@dataclass
class _Shard:
    data: np.ndarray  # the .bin file, memory-mapped uint8
    frames: np.ndarray  # FRAME_DTYPE rows
    landmarks: np.ndarray  # (F, 68, 2) float32


def read_pack_meta(root: str | Path) -> dict[str, Any]:
    """A complete pack's ``pack.json``; clear errors for other folders and unfinished packs."""
    root = Path(root)
    path = root / "pack.json"
    if not path.is_file():
        if (root / "settings.json").is_file():
            raise FineCLIPERError(
                f"{root}: incomplete pack (no pack.json); rerun `finecliper pack` with the same "
                "arguments to finish it"
            )
        raise FineCLIPERError(f"{root}: not a pack (no pack.json); make one with `finecliper pack`")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FineCLIPERError(f"{path}: unreadable ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise FineCLIPERError(f"{path}: not a finecliper pack")
    if meta.get("format_version") != FORMAT_VERSION:
        raise FineCLIPERError(
            f"{path}: pack format version {meta.get('format_version')}, this finecliper reads "
            f"{FORMAT_VERSION}; repack the dataset"
        )
    return meta


# JPEG colour spaces that simplejpeg turns into the RGB PIL gives (CMYK it converts otherwise).
_SIMPLE_COLOURS = frozenset({"YCbCr", "Gray", "RGB"})


def _jpeg_colourspace(blob: np.ndarray | bytes) -> str | None:
    try:
        return simplejpeg.decode_jpeg_header(blob)[2]
    except ValueError:  # not a JPEG simplejpeg can read: PIL will say what is wrong
        return None


def decode_jpeg(blob: np.ndarray | bytes) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of a JPEG, as ``PIL.Image.convert("RGB")`` gives them."""
    if simplejpeg is not None and _jpeg_colourspace(blob) in _SIMPLE_COLOURS:
        return simplejpeg.decode_jpeg(blob, colorspace="RGB")
    with Image.open(io.BytesIO(blob)) as image:
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


class PackedClips:
    """Read access to a pack by clip position or id; shard files are mapped on first use.

    Safe to hand to DataLoader workers (forked or spawned): the maps are opened per process.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.meta = read_pack_meta(self.root)
        try:
            self.clips = np.load(self.root / "clips.npy")
        except (OSError, ValueError) as exc:
            raise FineCLIPERError(f"{self.root / 'clips.npy'}: unreadable ({exc})") from exc
        self.clip_ids: list[str] = self.meta["clip_ids"]
        if self.clips.dtype != CLIP_DTYPE or len(self.clips) != len(self.clip_ids):
            raise FineCLIPERError(f"{self.root / 'clips.npy'}: does not match pack.json")
        self.frame_format: FrameFormat = self.meta["frame_format"]
        self._positions = {clip_id: i for i, clip_id in enumerate(self.clip_ids)}
        self._errors = {p["path"]: p["problem"] for p in self.meta["problems"]}
        self._shards: dict[int, _Shard] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_shards"] = {}  # maps never travel to another process
        return state

    def __len__(self) -> int:
        return len(self.clip_ids)

    def position(self, clip_id: str) -> int:
        try:
            return self._positions[clip_id]
        except KeyError:
            raise VideoReadError(f"{self.root}: clip {clip_id!r} is not in the pack") from None

    def num_frames(self, position: int) -> int:
        return int(self.clips[position]["frames"])

    def _shard(self, shard: int) -> _Shard:
        if shard not in self._shards:
            self._shards[shard] = self._open_shard(shard)
        return self._shards[shard]

    def _open_shard(self, shard: int) -> _Shard:
        expected = self.meta["shards"][shard]
        try:
            bin_path = _shard_path(self.root, shard, ".bin")
            size = bin_path.stat().st_size
            data = np.memmap(bin_path, np.uint8, mode="r") if size else np.zeros(0, np.uint8)
            frames = np.load(_shard_path(self.root, shard, ".frames.npy"), mmap_mode="r")
            landmarks = np.load(_shard_path(self.root, shard, ".landmarks.npy"), mmap_mode="r")
        except (OSError, ValueError) as exc:
            name = shard_name(shard)
            raise FineCLIPERError(f"{self.root}: shard {name} unreadable ({exc})") from exc
        if size != expected["bytes"] or len(frames) != expected["frames"]:
            raise FineCLIPERError(f"{self.root}: shard {shard_name(shard)} is damaged (size)")
        return _Shard(data, frames, landmarks)

    def read(self, position: int, indices: Sequence[int]) -> PackedClip:
        """Frames ``indices`` of clip ``position`` (repeats allowed), with its middle rows."""
        row = self.clips[position]
        count = int(row["frames"])
        clip_id = self.clip_ids[position]
        if count == 0:
            error = self._errors.get(clip_id, "no frames")
            raise VideoReadError(
                f"{self.root}: clip {clip_id!r} was packed without frames: {error}"
            )
        bad = [i for i in indices if not 0 <= i < count]
        if bad:
            raise VideoReadError(
                f"{self.root}: clip {clip_id!r}: frame index {bad[0]} out of range ({count} frames)"
            )
        shard = self._shard(int(row["shard"]))
        rows = [int(row["first"]) + i for i in indices]
        size = (int(row["height"]), int(row["width"]))
        frames = self._frames(shard, rows, size, clip_id)
        if not row["middle"]:
            return PackedClip(frames, None, None)
        parsing = np.stack([self._parsing(shard, r, size, clip_id) for r in rows])
        landmarks = np.asarray(shard.landmarks[rows], dtype=np.float32)
        return PackedClip(frames, parsing, landmarks)

    def _frames(
        self, shard: _Shard, rows: list[int], size: tuple[int, int], clip_id: str
    ) -> np.ndarray:
        out = np.empty((len(rows), *size, 3), dtype=np.uint8)
        first_use: dict[int, int] = {}
        for k, row in enumerate(rows):
            if row in first_use:  # short clips repeat frames: decode each once
                out[k] = out[first_use[row]]
                continue
            first_use[row] = k
            entry = shard.frames[row]
            offset, length = int(entry["image_offset"]), int(entry["image_length"])
            out[k] = self._decode(shard.data[offset : offset + length], size, clip_id)
        return out

    def _decode(self, blob: np.ndarray, size: tuple[int, int], clip_id: str) -> np.ndarray:
        height, width = size
        if self.frame_format == "raw":
            if blob.size != height * width * 3:
                raise VideoReadError(f"{self.root}: clip {clip_id!r}: damaged raw frame")
            return blob.reshape(height, width, 3)
        try:
            pixels = decode_jpeg(blob)
        except _IMAGE_ERRORS as exc:
            raise VideoReadError(f"{self.root}: clip {clip_id!r}: damaged frame ({exc})") from exc
        if pixels.shape != (height, width, 3):
            raise VideoReadError(f"{self.root}: clip {clip_id!r}: frame of the wrong size")
        return pixels

    def _parsing(self, shard: _Shard, row: int, size: tuple[int, int], clip_id: str) -> np.ndarray:
        entry = shard.frames[row]
        offset, length = int(entry["parsing_offset"]), int(entry["parsing_length"])
        try:
            raw = zlib.decompress(shard.data[offset : offset + length])
        except zlib.error as exc:
            raise VideoReadError(f"{self.root}: clip {clip_id!r}: damaged parsing map") from exc
        if len(raw) != size[0] * size[1]:
            raise VideoReadError(f"{self.root}: clip {clip_id!r}: parsing map of the wrong size")
        return np.frombuffer(raw, dtype=np.uint8).reshape(size)

    def description(self, position: int, *, train: bool) -> str | None:
        """The clip's description for a training or an evaluation split (None: none)."""
        row = self.clips[position]
        which = 0 if train else 1
        offset, length = int(row["text_offset"][which]), int(row["text_length"][which])
        if length < 0:
            return None
        data = self._shard(int(row["shard"])).data[offset : offset + length]
        return data.tobytes().decode("utf-8")

    def descriptions(self, *, train: bool) -> dict[str, str]:
        """{clip id: description} of every clip that has one for this kind of split."""
        texts = {}
        for position, clip_id in enumerate(self.clip_ids):
            text = self.description(position, train=train)
            if text is not None:
                texts[clip_id] = text
        return texts

    def dataset_index(self) -> DatasetIndex:
        """The packed dataset's index, with frame counts from the pack (0: unreadable clip)."""
        meta = self.meta
        labels = self.clips["label"].tolist()
        counts = self.clips["frames"].tolist()
        splits: dict[str, list[ClipRecord]] = {}
        for name, members in meta["splits"].items():
            splits[name] = [
                ClipRecord(
                    clip_id=self.clip_ids[position],
                    path=Path(meta["paths"][position]),
                    label=labels[position],
                    split=name.rpartition("/")[2],
                    num_frames=counts[position],
                    fold=fold,
                    caption=meta["captions"][position],
                )
                for position, fold in members
            ]
        problems = [Problem(p["path"], p["problem"]) for p in meta["problems"]]
        return DatasetIndex(
            dataset=meta["dataset"],
            root=Path(meta["root"]),
            classes=tuple(meta["classes"]),
            splits=splits,
            problems=problems,
            source=f"{meta['source']} (packed: {self.root})",
        )


# ---------------------------------------------------------------------------------------------
# Training samples


class PackedClipDataset(ClipDataset):
    """:class:`ClipDataset` reading clips from a pack: the same samples, from mapped files.

    For the same records, seed and epoch it yields exactly what ``ClipDataset`` yields from the
    unpacked dataset (same frame choice, crop and flip). ``descriptions=None`` takes them from
    the pack (the training or the evaluation text, by ``train``).
    """

    def __init__(
        self,
        records: Sequence[ClipRecord],
        *,
        pack: PackedClips | str | Path,
        transform: ClipTransform,
        num_frames: int = 16,
        train: bool,
        descriptions: dict[str, str] | None = None,
        seed: int = 0,
    ) -> None:
        self.pack = pack if isinstance(pack, PackedClips) else PackedClips(pack)
        if descriptions is None:
            descriptions = self.pack.descriptions(train=train)
        super().__init__(
            records,
            transform=transform,
            num_frames=num_frames,
            train=train,
            descriptions=descriptions,
            seed=seed,
        )

    def _load(self, index: int) -> dict:
        record = self.records[index]
        position = self.pack.position(record.clip_id)
        # The generator is drawn from exactly as ClipDataset draws: sampling, then transform.
        generator = torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) & 0xFFFFFFFF)
        total = self.pack.num_frames(position)
        if total == 0:
            self.pack.read(position, [0])  # raises the clip's packing error
        chosen = segment_indices(total, self.num_frames, train=self.train, generator=generator)
        clip = self.pack.read(position, chosen)
        parsing = None if clip.parsing is None else torch.from_numpy(clip.parsing)
        landmarks = None if clip.landmarks is None else torch.from_numpy(clip.landmarks)
        if clip.landmarks is not None and no_face(clip.landmarks):
            parsing = landmarks = None  # no face in any sampled frame: the modalities are missing
        sample = self.transform(
            ClipSample(frames_to_tensor(clip.frames), parsing, landmarks), generator
        )
        return {
            "index": index,
            "label": record.label,
            "frames": sample.frames,
            "parsing": sample.parsing,
            "landmarks": sample.landmarks,
            "description": self.descriptions.get(record.clip_id),
        }
