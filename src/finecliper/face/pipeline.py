"""``prepare faces``: landmarks and parsing maps for every clip of a dataset, into a cache folder.

The cache's layout is in :mod:`finecliper.face.cache`, one clip's extraction in
:mod:`finecliper.face.extract`. This module runs the job: the clips of a shard, in worker
processes, skipping the clips an earlier run finished, so a rerun gives the same files as an
uninterrupted run. ``--shard I/N`` takes the clips whose CRC32 of the clip id is I modulo N;
shards made on different machines are joined by :func:`merge_caches`.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import shutil
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from finecliper import __version__
from finecliper.data.records import ClipRecord, DatasetIndex
from finecliper.errors import ConfigError, FineCLIPERError
from finecliper.face.analysis import FacesSettings, FaceTools
from finecliper.face.cache import (
    CACHE_FORMAT,
    CACHE_FORMAT_VERSION,
    clip_dir,
    iter_statuses,
    read_manifest,
    read_status,
)
from finecliper.face.extract import ClipResult, process_clip
from finecliper.io import write_json

# ---------------------------------------------------------------------------------------------
# A whole dataset


def shard_of(clip_id: str, count: int) -> int:
    """Stable shard number of a clip: the same on every machine and Python run."""
    return zlib.crc32(clip_id.encode("utf-8")) % count


def unique_records(index: DatasetIndex) -> list[ClipRecord]:
    """Every clip once (folded datasets list each clip in several splits), by clip id."""
    seen: dict[str, ClipRecord] = {}
    for records in index.splits.values():
        for record in records:
            other = seen.setdefault(record.clip_id, record)
            if Path(other.path) != Path(record.path):
                raise FineCLIPERError(
                    f"{index.dataset}: clip id {record.clip_id!r} names two paths: "
                    f"{other.path} and {record.path}"
                )
    return [seen[k] for k in sorted(seen)]


COMPARED_MANIFEST_KEYS = ("format", "format_version", "dataset", "settings", "tools")


def _check_same_making(kept: dict[str, Any], other: dict[str, Any], where: Path) -> None:
    """Refuse to mix clips made with other tools, settings or dataset into one cache."""
    for key in COMPARED_MANIFEST_KEYS:
        if kept.get(key) != other.get(key):
            raise ConfigError(
                f"{where}: made with other {key} ({kept.get(key)!r}; here: {other.get(key)!r}); "
                "use another --out, or the same options"
            )


def _manifest_to_keep(cache: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The cache's existing manifest when this run matches it, else this run's."""
    if not (cache / "manifest.json").exists():
        return manifest
    existing = read_manifest(cache)
    _check_same_making(existing, manifest, cache / "manifest.json")
    return existing


@dataclass
class FacesSummary:
    """What a run did. Counts ``ok``/``no_face``/``failed`` cover every clip of the shard."""

    clips: int = 0
    ok: int = 0
    no_face: int = 0
    failed: int = 0
    processed: int = 0
    skipped: int = 0  # finished by an earlier run
    frames: int = 0  # frames processed by this run
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    frames_per_second: float = 0.0
    frames_per_cpu_second: float = 0.0  # throughput per core
    workers: int = 1
    shard: str = "0/1"
    failures: list[dict[str, str]] = field(default_factory=list)

    def count(self, status: str) -> None:
        setattr(self, status, getattr(self, status) + 1)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def settings_dict(settings: FacesSettings) -> dict[str, Any]:
    """The settings as recorded in the manifest. The weights file is named without its folder:
    the parser's description holds its checksum, so a moved copy still matches."""
    values = {f.name: getattr(settings, f.name) for f in fields(settings)}
    if settings.parser_weights is not None:
        values["parser_weights"] = Path(settings.parser_weights).name
    return values


_WORKER: dict[str, Any] = {}


def _worker_start(settings: FacesSettings, cache: Path) -> None:
    import torch

    torch.set_num_threads(1)  # K workers on K cores; a learned parser must not oversubscribe
    _WORKER.update(tools=FaceTools(settings), settings=settings, cache=cache)


def _worker_run(record: ClipRecord) -> ClipResult:
    return process_clip(record, _WORKER["cache"], _WORKER["tools"], _WORKER["settings"])


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_faces(
    records: Iterable[ClipRecord],
    cache: str | Path,
    settings: FacesSettings,
    *,
    dataset: str,
    shard: tuple[int, int] = (0, 1),
    workers: int = 1,
    retry_failed: bool = False,
    progress: bool = True,
) -> FacesSummary:
    """Extract every clip of ``records`` in shard ``shard`` that the cache does not hold yet."""
    cache = Path(cache)
    index, count = shard
    if not 0 <= index < count:
        raise ConfigError(f"shard {index}/{count}: expected I/N with 0 <= I < N")
    if workers < 1:
        raise ConfigError(f"workers {workers}: expected >= 1")
    mine = [r for r in records if shard_of(r.clip_id, count) == index]
    summary = FacesSummary(clips=len(mine), workers=workers, shard=f"{index}/{count}")
    tools = FaceTools(settings)
    try:
        manifest = {
            "format": CACHE_FORMAT,
            "format_version": CACHE_FORMAT_VERSION,
            "dataset": dataset,
            "settings": settings_dict(settings),
            "tools": tools.describe(),
            "libraries": _library_versions(),
            "finecliper_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_json(cache / "manifest.json", _manifest_to_keep(cache, manifest))
        todo = _pending(mine, cache, summary, retry_failed)
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        results = _run_pending(todo, cache, settings, tools, workers)
        for result in tqdm(
            results, total=len(todo), desc="faces", unit="clip", disable=not progress
        ):
            _add_result(summary, result)
        summary.seconds = round(time.perf_counter() - start, 3)
        summary.cpu_seconds = round(_cpu_seconds() - cpu_start, 3)
    finally:
        tools.close()
    if summary.frames:
        summary.frames_per_second = round(summary.frames / max(summary.seconds, 1e-9), 2)
        summary.frames_per_cpu_second = round(summary.frames / max(summary.cpu_seconds, 1e-9), 2)
    return summary


def _library_versions() -> dict[str, str]:
    """Decoding and encoding libraries, for the record (not checked on resume)."""
    import av
    import PIL

    return {"av": av.__version__, "pillow": PIL.__version__, "numpy": np.__version__}


def _pending(
    records: list[ClipRecord], cache: Path, summary: FacesSummary, retry_failed: bool
) -> list[ClipRecord]:
    todo = []
    for record in records:
        status = read_status(clip_dir(cache, record.clip_id))
        if status is None or (retry_failed and status["status"] == "failed"):
            todo.append(record)
            continue
        summary.skipped += 1
        summary.count(status["status"])
        if status["status"] == "failed":
            summary.failures.append({"clip_id": record.clip_id, "error": status.get("error", "")})
    return todo


def _run_pending(
    todo: list[ClipRecord], cache: Path, settings: FacesSettings, tools: FaceTools, workers: int
) -> Iterator[ClipResult]:
    if workers == 1 or len(todo) <= 1:
        for record in todo:
            yield process_clip(record, cache, tools, settings)
        return
    # spawn: MediaPipe graphs must be created in the process that uses them.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, context, _worker_start, (settings, cache))
    try:
        futures = [pool.submit(_worker_run, record) for record in todo]
        for future in as_completed(futures):
            yield future.result()
    except BrokenProcessPool as exc:
        raise FineCLIPERError(
            "a worker process died (a crash inside a native library?); finished clips are "
            "kept: rerun to resume, with --workers 1 to see which clip it was"
        ) from exc
    finally:  # on an interrupt, drop the queued clips instead of finishing them all
        pool.shutdown(wait=True, cancel_futures=True)


def _add_result(summary: FacesSummary, result: ClipResult) -> None:
    summary.processed += 1
    summary.frames += result.frames
    summary.count(result.status)
    if result.error is not None:
        summary.failures.append({"clip_id": result.clip_id, "error": result.error})


# ---------------------------------------------------------------------------------------------
# Joining shards


@dataclass
class MergeSummary:
    copied: int = 0
    already_there: int = 0
    sources: int = 0


def merge_caches(out: str | Path, sources: Sequence[str | Path]) -> MergeSummary:
    """Copy the finished clips of shard caches into ``out`` (which may be one of them)."""
    out = Path(out)
    summary = MergeSummary(sources=len(sources))
    manifests = [read_manifest(s) for s in sources]
    target = manifests[0]
    if (out / "manifest.json").exists():
        target = read_manifest(out)
    for source, manifest in zip(sources, manifests, strict=True):
        _check_same_making(target, manifest, Path(source) / "manifest.json")
    write_json(out / "manifest.json", target)
    for source in sources:
        if Path(source).resolve() == out.resolve():
            continue
        for folder, _ in iter_statuses(source):
            summary_key = _copy_clip(folder, out / "clips" / folder.name)
            setattr(summary, summary_key, getattr(summary, summary_key) + 1)
    return summary


def _copy_clip(folder: Path, final: Path) -> str:
    if read_status(final) is not None:
        return "already_there"
    work = final.with_name(f".{final.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(folder, work)
    if final.exists():
        shutil.rmtree(final)
    os.replace(work, final)
    return "copied"
