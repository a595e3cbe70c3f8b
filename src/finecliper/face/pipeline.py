"""``prepare faces``: landmarks and parsing maps for every clip of a dataset, into a cache folder.

Cache layout (the shared contract with the training loader)::

    CACHE/manifest.json                  dataset, tools with versions, settings, creation time
    CACHE/clips/<folder>/status.json     written last: the clip is finished (see clip_dir)
    CACHE/clips/<folder>/landmarks.npy   (T, 68, 2) float32 iBUG points, stored-frame pixels
    CACHE/clips/<folder>/mesh.npy        (T, 478 or 468, 3) float16 MediaPipe mesh, same pixels
    CACHE/clips/<folder>/parsing.npz     key "maps": (T, H, W) uint8 PARSING_CLASSES ids
    CACHE/clips/<folder>/frames/*.jpg    the face crops, for clips that were cropped (videos)

T counts every frame of the clip (or ``max_frames`` of them, spread uniformly; ``source_indices``
in status.json says which). A frame where no face was found, or that could not be read, reuses
the nearest frame's result and says so (``found``, ``reused_from``, ``frame_errors``). A clip with
no face in any frame gets status ``no_face`` and no landmark or parsing files: its middle-level
modalities are missing. A clip that cannot be read at all gets status ``failed`` with the error.

Each clip is written in a hidden ``.partial`` folder and renamed into place once status.json is
in it, so a killed run leaves no half clip; a rerun skips finished clips and gives the same files
as an uninterrupted run. ``--shard I/N`` takes the clips whose CRC32 of the clip id is I modulo N;
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
from typing import Any, Literal

import numpy as np
from PIL import Image
from tqdm import tqdm

from finecliper import __version__
from finecliper.data.records import ClipRecord, DatasetIndex
from finecliper.data.video import (
    ImageReadError,
    VideoInfo,
    VideoReadError,
    list_frame_files,
    load_frame_image,
    open_video,
)
from finecliper.errors import ConfigError, FineCLIPERError
from finecliper.face.arrays import write_arrays
from finecliper.face.cache import (
    CACHE_FORMAT,
    CACHE_FORMAT_VERSION,
    clip_dir,
    iter_statuses,
    read_manifest,
    read_status,
)
from finecliper.face.detect import FaceBox, FaceDetector
from finecliper.face.landmarks import MeshLandmarker, mesh_to_68
from finecliper.face.parsing import make_parser
from finecliper.face.track import (
    CropBox,
    centre_crop_box,
    crop_boxes,
    crop_square,
    follow_main_face,
)
from finecliper.io import write_json

CropMode = Literal["auto", "always", "never"]


@dataclass(frozen=True)
class FacesSettings:
    """Everything that changes the cache's content; recorded in the manifest and checked on
    resume, so one cache never mixes clips made with different settings."""

    # auto: crop videos, keep frame folders (already face crops) as they are
    crop: CropMode = "auto"
    crop_size: int = 224
    margin: float = 0.25  # crop side = face box side x (1 + 2 margin)
    smooth: int = 5  # frames over which the crop box is averaged
    max_frames: int | None = None  # subsample longer clips uniformly to this many frames
    parser: str = "mesh"
    parser_weights: str | None = None
    refine_landmarks: bool = True  # 478 points (with irises) instead of 468
    min_confidence: float = 0.5
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        if self.crop not in ("auto", "always", "never"):
            raise ConfigError(f"crop mode {self.crop!r}: expected auto, always or never")
        if not 16 <= self.crop_size <= 2048:
            raise ConfigError(f"crop size {self.crop_size}: expected 16..2048 pixels")
        if not 0 <= self.margin <= 2:
            raise ConfigError(f"crop margin {self.margin}: expected 0..2")
        if self.smooth < 1:
            raise ConfigError(f"smoothing window {self.smooth}: expected >= 1 frame")
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError(f"max frames {self.max_frames}: expected >= 1")
        if not 0 < self.min_confidence < 1:
            raise ConfigError(f"min confidence {self.min_confidence}: expected 0..1")

    def crops(self, path: Path) -> bool:
        return self.crop == "always" or (self.crop == "auto" and not path.is_dir())


class FaceTools:
    """The models one process needs: face mesh, face detector and parser."""

    def __init__(self, settings: FacesSettings) -> None:
        self.landmarker = MeshLandmarker(
            refine_landmarks=settings.refine_landmarks,
            min_detection_confidence=settings.min_confidence,
        )
        self.detector = FaceDetector(min_confidence=settings.min_confidence)
        self.parser = make_parser(settings.parser, settings.parser_weights)

    def describe(self) -> dict[str, Any]:
        return {
            "landmarks": self.landmarker.describe(),
            "detector": self.detector.describe(),
            "parser": {"name": self.parser.name, **self.parser.describe()},
        }

    def close(self) -> None:
        self.landmarker.close()
        self.detector.close()


# ---------------------------------------------------------------------------------------------
# Reading a clip's frames


@dataclass
class FrameSource:
    """The frames of one clip to process: which source frames, and how to read them again."""

    path: Path
    indices: list[int]  # selected source frame indices, increasing
    total: int  # frames in the source
    files: list[Path] | None  # for frame folders, in natural order
    problem: str | None = None  # why a video stopped decoding before its end, if it did


def uniform_indices(total: int, max_frames: int | None) -> list[int]:
    if max_frames is None or total <= max_frames:
        return list(range(total))
    return sorted({round(float(i)) for i in np.linspace(0, total - 1, max_frames)})


def open_source(path: Path, max_frames: int | None) -> FrameSource:
    if path.is_dir():
        files = list_frame_files(path)
        if not files:
            raise VideoReadError(f"{path}: frame folder holds no *.jpg/*.jpeg/*.png images")
        return FrameSource(path, uniform_indices(len(files), max_frames), len(files), files)
    total, problem = _count_decodable(path)
    return FrameSource(path, uniform_indices(total, max_frames), total, None, problem)


def _count_decodable(path: Path) -> tuple[int, str | None]:
    """Frames that decode, and why decoding stopped early (None when the file looks whole).

    Decoding is the only exact count (container headers can be wrong). A file that breaks
    midway keeps the frames before the break; the break is recorded in the clip's status, also
    when the decoder ends quietly well short of the frame count its header promises.
    """
    count, problem = 0, None
    with open_video(path) as reader:
        try:
            for _ in reader.decoded():
                count += 1
        except VideoReadError as exc:
            problem = str(exc)
        promised = _promised_frames(reader.info)
    if count == 0:
        raise VideoReadError(problem or f"{path}: video holds no decodable frames")
    if problem is None and promised is not None and count + 2 < promised:
        problem = f"{path}: only {count} of the {promised} frames its header announces decode"
    return count, problem


def _promised_frames(info: VideoInfo) -> int | None:
    if info.num_frames:
        return info.num_frames
    if info.duration_s and info.fps:
        return round(info.duration_s * info.fps)
    return None


def read_selected(source: FrameSource) -> Iterator[tuple[np.ndarray | None, str | None]]:
    """(image or None, error or None) for each selected frame, in order."""
    if source.files is not None:
        size = None
        for index in source.indices:
            try:
                image = load_frame_image(source.files[index], size)
            except ImageReadError as exc:  # this frame reuses its neighbour's results
                yield None, f"{exc.file.name}: unreadable image ({exc.reason})"
                continue
            size = size or (image.shape[1], image.shape[0])
            yield image, None
        return
    wanted = iter(source.indices)
    target = next(wanted, None)
    with open_video(source.path) as reader:
        try:
            for index, frame in enumerate(reader.decoded()):
                if index == target:
                    yield frame.to_ndarray(format="rgb24"), None
                    target = next(wanted, None)
                    if target is None:
                        return
        except VideoReadError as exc:
            error = str(exc)
        else:
            error = f"{source.path}: video ended before frame {target}"
    # Frames after a decoding failure are unreadable; each is reported as such.
    while target is not None:
        yield None, error
        target = next(wanted, None)


# ---------------------------------------------------------------------------------------------
# One clip


def nearest_sources(found: Sequence[bool]) -> list[int]:
    """For each position, the nearest position with ``found`` True (the earlier on a tie)."""
    hits = np.flatnonzero(np.asarray(found, dtype=bool))
    positions = np.arange(len(found))
    after = np.clip(np.searchsorted(hits, positions), 0, len(hits) - 1)
    before = np.clip(after - 1, 0, len(hits) - 1)
    use_before = np.abs(positions - hits[before]) <= np.abs(hits[after] - positions)
    return np.where(use_before, hits[before], hits[after]).tolist()


def _track_crops(source: FrameSource, tools: FaceTools, settings: FacesSettings) -> dict[str, Any]:
    """Pass 1 for cropped clips: detect faces in every selected frame and follow the main one."""
    detections: list[list[FaceBox]] = []
    frame_size = None
    for image, _ in read_selected(source):
        detections.append([] if image is None else tools.detector(image))
        if image is not None and frame_size is None:
            frame_size = (image.shape[1], image.shape[0])
    followed = follow_main_face(detections)
    boxes = crop_boxes(followed, margin=settings.margin, smooth=settings.smooth)
    fallback = None
    if boxes is None:
        if frame_size is None:
            raise VideoReadError(f"{source.path}: no frame of the clip could be read")
        fallback = "centre"
        boxes = [centre_crop_box(*frame_size)] * len(detections)
    return {
        "boxes": boxes,
        "detected": [b is not None for b in followed],
        "fallback": fallback,
        "source_size": list(frame_size) if frame_size else None,
    }


@dataclass
class FrameResults:
    """Pass 2 over a clip: per selected frame, its mesh (None: no face or unreadable)."""

    meshes: list[np.ndarray | None] = field(default_factory=list)
    maps: dict[int, np.ndarray] = field(default_factory=dict)  # position -> parsing map
    readable: list[bool] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    frame_size: tuple[int, int] | None = None  # (width, height) of the stored frames


def _landmark_frames(
    source: FrameSource,
    boxes: list[CropBox] | None,
    work: Path,
    tools: FaceTools,
    settings: FacesSettings,
) -> FrameResults:
    """Crop (and store) each frame if ``boxes`` are given, then run the mesh and the parser."""
    results = FrameResults()
    for position, (image, error) in enumerate(read_selected(source)):
        results.readable.append(image is not None)
        if image is None:
            results.errors.append({"frame": position, "error": error})
            results.meshes.append(None)
            continue
        if boxes is not None:
            image = crop_square(image, boxes[position], settings.crop_size)
            _save_jpeg(work / "frames" / f"{position:06d}.jpg", image, settings.jpeg_quality)
        results.frame_size = results.frame_size or (image.shape[1], image.shape[0])
        mesh = tools.landmarker(image)
        results.meshes.append(mesh)
        if mesh is not None:
            results.maps[position] = tools.parser(image, mesh)
    if results.frame_size is None:
        count = len(results.readable)
        raise VideoReadError(f"{source.path}: none of its {count} frames could be read")
    return results


def _extract(record: ClipRecord, work: Path, tools: FaceTools, settings: FacesSettings) -> dict:
    """Process one clip into ``work``; returns its status (arrays written unless no face)."""
    source = open_source(Path(record.path), settings.max_frames)
    cropping = settings.crops(Path(record.path))
    track = _track_crops(source, tools, settings) if cropping else None
    if track is not None:
        (work / "frames").mkdir()
    results = _landmark_frames(source, track["boxes"] if track else None, work, tools, settings)
    if track is not None:
        _fill_unreadable_frames(work / "frames", results.readable)
    found = [m is not None for m in results.meshes]
    status = {
        "clip_id": record.clip_id,
        "path": str(record.path),
        "status": "ok" if any(found) else "no_face",
        "frames": len(found),
        "source_frames": source.total,
        "source_indices": source.indices,
        "frame_size": list(results.frame_size),
        "frames_dir": "frames" if cropping else None,
        "frame_files": [source.files[i].name for i in source.indices] if source.files else None,
        "found": found,
        "reused_from": nearest_sources(found) if any(found) else None,
        "frame_errors": results.errors,
        "source_problem": source.problem,
        "crop": None,
    }
    if track is not None:
        status["crop"] = {
            "boxes": [b.as_list() for b in track["boxes"]],
            "detected": track["detected"],
            "fallback": track["fallback"],
            "source_size": track["source_size"],
            "size": settings.crop_size,
        }
    if any(found):
        _write_reused_arrays(work, results, status["reused_from"])
    return status


def _write_reused_arrays(work: Path, results: FrameResults, sources: list[int]) -> None:
    """The clip's arrays, each frame without a face taking its nearest found frame's rows."""
    mesh = np.stack([results.meshes[s] for s in sources])  # type: ignore[misc]
    parsing = np.stack([results.maps[s] for s in sources])
    write_arrays(work, mesh_to_68(mesh), parsing, mesh)


def _save_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    Image.fromarray(image).save(path, format="JPEG", quality=quality)


def _fill_unreadable_frames(frames: Path, readable: list[bool]) -> None:
    """An unreadable source frame's crop is a copy of the nearest readable frame's crop."""
    for position, source in enumerate(nearest_sources(readable)):
        if source != position:
            shutil.copyfile(frames / f"{source:06d}.jpg", frames / f"{position:06d}.jpg")


@dataclass
class ClipResult:
    clip_id: str
    status: str
    frames: int
    error: str | None = None


def process_clip(
    record: ClipRecord, cache: Path, tools: FaceTools, settings: FacesSettings
) -> ClipResult:
    """Extract one clip into its cache folder; never raises for a bad clip (records it)."""
    final = clip_dir(cache, record.clip_id)
    work = final.with_name(f".{final.name}.partial")
    shutil.rmtree(work, ignore_errors=True)  # left by a killed run
    work.mkdir(parents=True)
    try:
        status = _extract(record, work, tools, settings)
    except Exception as exc:  # any failure of one clip is recorded, the job goes on
        shutil.rmtree(work)
        work.mkdir()
        status = {
            "clip_id": record.clip_id,
            "path": str(record.path),
            "status": "failed",
            "frames": 0,
            "error": str(exc)
            if isinstance(exc, FineCLIPERError)
            else f"{type(exc).__name__}: {exc}",
        }
    write_json(work / "status.json", status)
    if final.exists():
        shutil.rmtree(final)  # an unfinished folder, or a failed clip being retried
    os.replace(work, final)
    return ClipResult(record.clip_id, status["status"], status["frames"], status.get("error"))


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
