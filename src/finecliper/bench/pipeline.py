"""Data-pipeline throughput per CPU worker for the ``full`` inputs, from the packed cache.

One worker's work per training clip, in a process set up as a training DataLoader worker is
(one torch thread, freed buffers kept for reuse: ``finecliper.data.workers``): read the
16 sampled frames from the pack (JPEG decode, or none for raw frames), their parsing maps and
landmarks and the description, apply the joint random crop and flip (``ClipTransform``), and,
for this figure, render the parsing and landmark images on the CPU (training renders them on
the GPU, in batch). Reported per source: clips/s of wall time, clips per CPU second (the
per-core capacity, which other load on the machine changes less), the same without the
rendering (what a worker delivers when the GPU renders), and the median CPU
milliseconds per clip of reading alone, of the whole sample (reading + transform) and of
rendering. The same work from the unpacked files (``ClipDataset``) is measured for comparison.

Without ``--pipeline-data``, the data is a SynthDFER generated at the requested frame size and
packed both ways, in a temporary folder. Timings are with the files in the page cache.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from finecliper.data.dataset import ClipDataset, collate_clips, synth_middle_locator
from finecliper.data.pack.format import PackSettings
from finecliper.data.pack.plan import PackSources
from finecliper.data.pack.read import PackedClipDataset, PackedClips
from finecliper.data.records import ClipRecord
from finecliper.data.sampling import segment_indices
from finecliper.data.transforms import ClipTransform
from finecliper.data.workers import init_worker, reuse_freed_buffers
from finecliper.errors import FineCLIPERError
from finecliper.face.render import render_landmarks, render_parsing


@dataclass
class WorkerRates:
    clips_per_s: float  # wall time, rendering included
    clips_per_cpu_s: float  # CPU time, rendering included: the all-on-the-CPU capacity
    clips_per_cpu_s_no_render: float  # CPU time of the dataset items alone (GPU rendering)
    sample_ms: float  # median CPU ms of one dataset item
    render_ms: float  # median CPU ms of rendering one item's parsing and landmark images
    middle_fraction: float  # items that had parsing and landmarks


@dataclass
class PipelineResult(WorkerRates):
    source: str  # pack-jpeg, pack-raw or files
    image_size: int
    frames: int
    clips: int  # samples measured
    read_ms: float | None  # CPU ms: frames + middle rows of one clip, decoded (packs only)
    bytes_per_clip: float | None  # pack size / clips (packs only)


@dataclass
class LoaderResult:
    source: str
    workers: int
    batch: int
    clips: int
    clips_per_s: float


@dataclass
class PipelineReport:
    results: list[PipelineResult]
    loader: LoaderResult | None = None


def _pack_dataset(
    root: Path, records: list[ClipRecord], size: int, frames: int
) -> PackedClipDataset:
    transform = ClipTransform(size, train=True)
    return PackedClipDataset(records, pack=root, transform=transform, num_frames=frames, train=True)


def _pack_records(root: Path) -> list[ClipRecord]:
    """Every readable clip of a pack once."""
    index = PackedClips(root).dataset_index()
    records = {r.clip_id: r for split in index.splits.values() for r in split if r.num_frames}
    return list(records.values())


def _render(item: dict) -> bool:
    if item.get("parsing") is None:
        return False
    render_parsing(item["frames"], item["parsing"])
    render_landmarks(item["frames"], item["landmarks"])
    return True


def measure_worker(dataset: Dataset, clips: int) -> WorkerRates:
    """What one worker delivers: ``clips`` dataset items, each rendered on the CPU."""
    _render(dataset[0])  # warm-up: lazily mapped files, first-call allocations
    sample_times, render_times, with_middle = [], [], 0
    wall, cpu = time.perf_counter(), time.process_time()
    for k in range(clips):
        start = time.process_time()
        item = dataset[k % len(dataset)]
        if "error" in item:
            raise FineCLIPERError(f"benchmark clip {k} could not be read: {item['error']}")
        middle = time.process_time()
        with_middle += _render(item)
        sample_times.append(middle - start)
        render_times.append(time.process_time() - middle)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return WorkerRates(
        clips_per_s=clips / wall,
        clips_per_cpu_s=clips / cpu,
        clips_per_cpu_s_no_render=clips / sum(sample_times),
        sample_ms=statistics.median(sample_times) * 1000,
        render_ms=statistics.median(render_times) * 1000,
        middle_fraction=with_middle / clips,
    )


def measure_reads(pack: PackedClips, frames: int, clips: int) -> float:
    """Median CPU ms to read (decode) one clip's sampled frames and middle rows from a pack."""
    generator = torch.Generator().manual_seed(0)
    times = []
    for k in range(clips):
        position = k % len(pack)
        chosen = segment_indices(pack.num_frames(position), frames, train=True, generator=generator)
        start = time.process_time()
        pack.read(position, chosen)
        times.append(time.process_time() - start)
    return statistics.median(times) * 1000


def _pack_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def benchmark_pack(
    root: Path, records: list[ClipRecord], size: int, frames: int, clips: int
) -> PipelineResult:
    """One worker over a pack, training transforms, descriptions from the pack."""
    dataset = _pack_dataset(root, records, size, frames)
    pack = dataset.pack
    rates = measure_worker(dataset, clips)
    return PipelineResult(
        source=f"pack-{pack.frame_format}",
        image_size=size,
        frames=frames,
        clips=clips,
        read_ms=measure_reads(pack, frames, clips),
        bytes_per_clip=_pack_bytes(root) / len(pack),
        **asdict(rates),
    )


def benchmark_files(
    records: list[ClipRecord], descriptions: dict[str, str], size: int, frames: int, clips: int
) -> PipelineResult:
    """The same worker over SynthDFER's own files (frame JPEGs, npy/npz middle data)."""
    dataset = ClipDataset(
        records,
        transform=ClipTransform(size, train=True),
        num_frames=frames,
        train=True,
        middle=synth_middle_locator,
        descriptions=descriptions,
    )
    rates = measure_worker(dataset, clips)
    return PipelineResult(
        source="files",
        image_size=size,
        frames=frames,
        clips=clips,
        read_ms=None,
        bytes_per_clip=None,
        **asdict(rates),
    )


class _Repeated(Dataset):
    """``length`` items cycling over a small dataset, for loader runs longer than it."""

    def __init__(self, dataset: Dataset, length: int) -> None:
        self.dataset = dataset
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        return self.dataset[index % len(self.dataset)]  # type: ignore[arg-type]


def measure_loader(
    dataset: Dataset, workers: int, batch: int, batches: int, source: str
) -> LoaderResult:
    """End-to-end DataLoader clips/s with ``workers`` processes (rendering excluded: GPU work).

    The first batch pays for starting the workers and is not counted.
    """
    loader = DataLoader(
        _Repeated(dataset, batch * (batches + 1)),
        batch_size=batch,
        num_workers=workers,
        collate_fn=collate_clips,
        prefetch_factor=4 if workers else None,
        worker_init_fn=init_worker,
    )
    clips, started = 0, time.perf_counter()
    for count, collated in enumerate(loader):
        if count == 0:
            started = time.perf_counter()
            continue
        clips += len(collated.labels)
    seconds = time.perf_counter() - started
    return LoaderResult(source, workers, batch, clips, clips / seconds if seconds > 0 else 0.0)


@dataclass
class SynthPacks:
    records: list[ClipRecord]
    descriptions: dict[str, str]
    packs: dict[str, Path]  # frame format -> pack folder


def make_synth_packs(folder: Path, size: int, clips: int, frames: int) -> SynthPacks:
    """A SynthDFER at ``size`` px packed as JPEG and as raw frames, under ``folder``."""
    from finecliper.data.pack.write import pack_dataset
    from finecliper.data.synth import generate_synth, read_synth
    from finecliper.text.descriptions import load_descriptions

    root = folder / f"synth{size}"
    generate_synth(root, clips=clips, seed=0, size=size, frames=frames, workers=1, progress=False)
    index = read_synth(root)
    sources = PackSources(synth_middle=True, descriptions=root / "descriptions.jsonl")
    packs = {}
    for frame_format in ("jpeg", "raw"):
        packs[frame_format] = folder / f"pack{size}-{frame_format}"
        settings = PackSettings(frame_format=frame_format)
        pack_dataset(index, packs[frame_format], settings=settings, sources=sources, progress=False)
    records = PackedClips(packs["jpeg"]).dataset_index().records("train", 1)
    train_texts = load_descriptions(root / "descriptions.jsonl", split="train")
    return SynthPacks(records, train_texts, packs)


def _init_worker_process() -> None:
    torch.set_num_threads(1)  # as DataLoader gives its workers
    reuse_freed_buffers()


@contextmanager
def _worker_process() -> Iterator[ProcessPoolExecutor]:
    """One process set up as a training DataLoader worker is, for the per-worker figures."""
    with ProcessPoolExecutor(max_workers=1, initializer=_init_worker_process) as pool:
        yield pool


@contextmanager
def _workspace(folder: Path | None) -> Iterator[Path]:
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="finecliper-bench-") as temporary:
        yield Path(temporary)


def run_pipeline(
    sizes: tuple[int, ...] = (112, 224),
    *,
    synth_clips: int = 24,
    clips: int = 96,
    frames: int = 16,
    packed: Path | None = None,
    loader_workers: int = 0,
    loader_batch: int = 32,
    workdir: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> PipelineReport:
    """Per-worker throughput for each size (SynthDFER) or for a given pack (``packed``, at its
    frame size); with ``loader_workers``, also a DataLoader over the JPEG pack of the largest
    size (or over ``packed``)."""
    report = PipelineReport([])
    with _workspace(workdir) as folder, _worker_process() as worker:
        loader_pack: tuple[Path, list[ClipRecord], int] | None = None
        if packed is not None:
            records = _pack_records(packed)
            size = int(PackedClips(packed).clips["height"].max())
            job = worker.submit(benchmark_pack, packed, records, size, frames, clips)
            report.results.append(job.result())
            loader_pack = (packed, records, size)
        for size in sizes if packed is None else ():
            progress(f"pipeline: SynthDFER at {size} px")
            data = make_synth_packs(folder, size, synth_clips, frames)
            for frame_format in ("jpeg", "raw"):
                pack = data.packs[frame_format]
                job = worker.submit(benchmark_pack, pack, data.records, size, frames, clips)
                report.results.append(job.result())
            job = worker.submit(
                benchmark_files, data.records, data.descriptions, size, frames, clips
            )
            report.results.append(job.result())
            loader_pack = (data.packs["jpeg"], data.records, size)
        if loader_workers and loader_pack is not None:
            root, records, size = loader_pack
            progress(f"pipeline: DataLoader with {loader_workers} workers at {size} px")
            dataset = _pack_dataset(root, records, size, frames)
            report.loader = measure_loader(
                dataset, loader_workers, loader_batch, max(4, clips // loader_batch), root.name
            )
    return report
