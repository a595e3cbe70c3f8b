"""Writing a pack: frames and parsing maps encoded as blobs, shards of clips, the resumable job."""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image
from tqdm import tqdm

from finecliper import __version__
from finecliper.data.pack.format import (
    CLIP_DTYPE,
    FORMAT,
    FORMAT_VERSION,
    FRAME_DTYPE,
    IMAGE_ERRORS,
    PARSING_LEVEL,
    PackSettings,
    shard_path,
)
from finecliper.data.pack.plan import ClipPlan, PackSources, plan_clip
from finecliper.data.records import ClipRecord, DatasetIndex
from finecliper.data.video import VideoReadError, image_to_rgb, open_video
from finecliper.errors import ConfigError, FineCLIPERError
from finecliper.face.arrays import no_face, padded_rows
from finecliper.face.schema import NUM_LANDMARKS
from finecliper.io import atomic_open, read_text, write_json


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
        except IMAGE_ERRORS as exc:
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


def _frame_blobs(plan: ClipPlan, settings: PackSettings) -> tuple[list[bytes], tuple[int, int]]:
    if plan.files is not None:
        return _file_blobs(plan.files, settings)
    assert plan.video is not None
    return _video_blobs(plan.video, plan.video_indices, settings)


def _aligned_middle(
    plan: ClipPlan, count: int, size: tuple[int, int], clip: Path
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
        plan = plan_clip(record, job.sources)
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
    with atomic_open(shard_path(job.out, job.shard, ".bin"), "wb") as handle:
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
        with atomic_open(shard_path(job.out, job.shard, suffix), "wb") as handle:
            np.save(handle, array)
    marker = {
        "shard": job.shard,
        "first_position": job.first_position,
        "frames": len(table),
        "bytes": blobs.size,
        "clips": entries,
    }
    write_json(shard_path(job.out, job.shard, ".json"), marker)
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
            existing = json.loads(read_text(path))
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
    path = shard_path(out, shard, ".json")
    if not path.is_file():
        return None
    try:
        return json.loads(read_text(path))
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
        "settings": json.loads(read_text(out / "settings.json")),
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
