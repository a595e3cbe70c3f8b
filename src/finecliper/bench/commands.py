"""CLI: ``finecliper pack`` (the packed clip cache) and ``finecliper bench``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from finecliper.argtypes import COUNT, NON_NEGATIVE, int_range
from finecliper.data.cli_args import add_dataset_arguments, reader_options
from finecliper.io import dumps_json

if TYPE_CHECKING:
    from finecliper.bench.suite import BenchOptions

VARIANTS = ("base", "mid", "high", "full")


def register(commands: argparse._SubParsersAction) -> None:
    _register_pack(commands)
    _register_bench(commands)


def _register_pack(commands: argparse._SubParsersAction) -> None:
    pack = commands.add_parser(
        "pack",
        help="pack a prepared dataset into a few large memory-mapped files",
        description="Write every clip of a dataset (frames, parsing maps and landmarks, "
        "descriptions) into shards of large files that training reads by memory mapping, "
        "without per-frame files. Resumable: rerun with the same arguments to finish.",
    )
    add_dataset_arguments(pack, captions=True)
    pack.add_argument("--out", type=Path, required=True, help="pack folder")
    pack.add_argument(
        "--faces-cache", type=Path, default=None, help="output of `finecliper prepare faces`"
    )
    pack.add_argument(
        "--descriptions",
        type=Path,
        default=None,
        help="descriptions JSONL (synth default: ROOT/descriptions.jsonl)",
    )
    pack.add_argument(
        "--frame-format",
        choices=("jpeg", "raw"),
        default="jpeg",
        help="jpeg: JPEG frames copied as they are, others encoded (default); raw: decoded "
        "uint8, nothing to decode in training, about 15x larger",
    )
    pack.add_argument(
        "--quality", type=int_range(1, 100), default=95, help="JPEG quality of encoded frames"
    )
    pack.add_argument("--shard-clips", type=COUNT, default=256, help="clips per shard")
    pack.add_argument("--workers", type=COUNT, default=1, help="processes (default 1)")
    pack.add_argument("--json", action="store_true", help="print a JSON summary as last line")
    pack.set_defaults(handler=_run_pack)


def _csv(kind: type, choices: tuple[str, ...] | None = None):
    def parse(text: str) -> tuple:
        values = tuple(kind(part) for part in text.split(",") if part.strip())
        bad = [v for v in values if choices is not None and v not in choices]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {choices}")
        return values

    return parse


def _register_bench(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser(
        "bench",
        help="throughput, memory and latency benchmarks (random weights, no download)",
        description="Model steps (training and inference clips/s, peak memory, against the "
        "naive fp32 / eager-attention mode), data-pipeline clips/s per CPU worker from the "
        "packed cache, and predict latency against the bare CLIP forward, each checked against "
        "the project's targets. Defaults: on cuda the step section, on cpu pipeline and latency.",
    )
    bench.add_argument(
        "--device", choices=("cpu", "cuda"), default=None, help="default: cuda if present"
    )
    bench.add_argument(
        "--variant", action="append", choices=VARIANTS, help="repeatable (default base, full)"
    )
    bench.add_argument(
        "--only",
        type=_csv(str, ("step", "pipeline", "latency", "memory")),
        default=None,
        help="sections",
    )
    bench.add_argument("--backbone", default="ViT-B/16", help="CLIP architecture, or 'tiny'")
    bench.add_argument("--image-size", type=COUNT, default=224)
    bench.add_argument("--frames", type=COUNT, default=16)
    bench.add_argument("--batch", type=COUNT, default=None, help="clips per step (cuda 32, cpu 2)")
    bench.add_argument("--steps", type=COUNT, default=None, help="timed steps (cuda 10, cpu 2)")
    bench.add_argument(
        "--warmup", type=NON_NEGATIVE, default=None, help="untimed steps (cuda 3, cpu 1)"
    )
    bench.add_argument("--modes", type=_csv(str, ("naive", "bf16", "compiled")), default=None)
    bench.add_argument("--checkpointing", choices=("off", "on", "both"), default="off")
    bench.add_argument("--phases", type=_csv(str, ("train", "infer")), default=("train", "infer"))
    bench.add_argument("--pipeline-sizes", type=_csv(int), default=(112, 224))
    bench.add_argument("--pipeline-clips", type=COUNT, default=96, help="samples per measurement")
    bench.add_argument("--synth-clips", type=COUNT, default=24, help="SynthDFER clips generated")
    bench.add_argument("--pipeline-data", type=Path, default=None, help="measure this pack instead")
    bench.add_argument(
        "--loader-workers", type=NON_NEGATIVE, default=0, help="also time a DataLoader"
    )
    bench.add_argument(
        "--cpu-threads", type=COUNT, default=None, help="torch threads of latency and memory"
    )
    bench.add_argument(
        "--project-batch", type=COUNT, default=32, help="batch the memory section projects to"
    )
    bench.add_argument("--repeats", type=COUNT, default=3, help="latency repeats")
    bench.add_argument(
        "--out", type=Path, default=None, help="JSON file kept up to date after every case"
    )
    bench.add_argument("--json", action="store_true", help="print one JSON object as last line")
    bench.set_defaults(handler=_run_bench)


def _run_pack(args: argparse.Namespace) -> int:
    from finecliper.data.pack.format import PackSettings
    from finecliper.data.pack.plan import PackSources
    from finecliper.data.pack.write import pack_dataset
    from finecliper.data.readers import read_dataset

    index = read_dataset(
        args.dataset,
        args.root,
        **reader_options(args),
    )
    descriptions = args.descriptions
    if descriptions is None and args.dataset == "synth":
        default = args.root / "descriptions.jsonl"
        descriptions = default if default.is_file() else None
    sources = PackSources(
        faces_cache=args.faces_cache,
        synth_middle=args.dataset == "synth" and args.faces_cache is None,
        descriptions=descriptions,
    )
    settings = PackSettings(args.frame_format, args.quality, args.shard_clips)
    summary = pack_dataset(
        index,
        args.out,
        settings=settings,
        sources=sources,
        workers=args.workers,
        progress=not args.json,
    )
    if args.json:
        print(dumps_json(vars(summary)))
    else:
        print(
            f"packed {summary.clips} clips ({summary.frames} frames, {summary.bytes / 2**20:.1f} "
            f"MiB, {summary.failed_clips} unreadable, {summary.clips_without_middle} without "
            f"middle-level data) -> {summary.out}"
        )
    return 0


def _options(args: argparse.Namespace) -> BenchOptions:
    from finecliper.bench.suite import BenchOptions
    from finecliper.runtime.device import resolve_device

    device = args.device or resolve_device("auto").type
    cuda = device == "cuda"
    checkpointing = {"off": (False,), "on": (True,), "both": (False, True)}[args.checkpointing]
    return BenchOptions(
        device=device,
        variants=tuple(args.variant or ("base", "full")),
        sections=args.only or (("step",) if cuda else ("pipeline", "latency")),
        backbone=args.backbone,
        image_size=args.image_size,
        frames=args.frames,
        batch=args.batch or (32 if cuda else 2),
        steps=args.steps or (10 if cuda else 2),
        warmup=args.warmup if args.warmup is not None else (3 if cuda else 1),
        modes=args.modes or (("naive", "bf16", "compiled") if cuda else ("naive", "bf16")),
        checkpointing=checkpointing,
        phases=args.phases,
        pipeline_sizes=args.pipeline_sizes,
        pipeline_clips=args.pipeline_clips,
        synth_clips=args.synth_clips,
        pipeline_data=args.pipeline_data,
        loader_workers=args.loader_workers,
        cpu_threads=args.cpu_threads,
        project_batch=args.project_batch,
        repeats=args.repeats,
    )


def _run_bench(args: argparse.Namespace) -> int:
    from finecliper.bench.suite import format_report, run_suite

    def note(message: str) -> None:
        print(f"[bench] {message}", file=sys.stderr, flush=True)

    report = run_suite(_options(args), note, args.out)
    print(dumps_json(report) if args.json else format_report(report))
    return 0
