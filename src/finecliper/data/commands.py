"""CLI: ``finecliper data check`` and ``finecliper synth``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from finecliper.argtypes import COUNT, FOLD, NON_NEGATIVE
from finecliper.data.cli_args import add_dataset_arguments, reader_options
from finecliper.io import dumps_json


def register(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="inspect and check datasets")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = data_commands.add_parser(
        "check",
        help="count clips, labels and frames per split and list every problem",
        description="Read a dataset in its official layout and report per split the clip count, "
        "label histogram, frame-count statistics and clips shorter than 16 frames, plus every "
        "problem with its path. Exit 0 when the layout was read (problems listed), 2 when ROOT "
        "is not that dataset's layout.",
    )
    add_dataset_arguments(check, captions=True)
    check.add_argument("--fold", type=FOLD, default=None, help="only this fold (default: all)")
    check.add_argument(
        "--deep",
        action="store_true",
        help="decode every frame (default: each file non-empty, first and last frame decoded)",
    )
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(handler=_run_check)

    synth = commands.add_parser(
        "synth",
        help="generate the SynthDFER dataset",
        description="Render SynthDFER: procedural face videos of the 7 DFEW classes with "
        "ground-truth landmarks, parsing maps and emotion-free movement descriptions, in 5 folds.",
    )
    synth.add_argument("out", type=Path, help="output folder")
    synth.add_argument("--clips", type=COUNT, default=700, help="number of clips (default 700)")
    synth.add_argument("--seed", type=NON_NEGATIVE, default=0)
    synth.add_argument("--size", type=COUNT, default=112, help="frame size in pixels")
    synth.add_argument("--frames", type=COUNT, default=16, help="frames per clip")
    synth.add_argument("--workers", type=COUNT, default=None, help="processes (default: all cores)")
    synth.add_argument("--json", action="store_true", help="print a JSON summary as last line")
    synth.set_defaults(handler=_run_synth)


def _run_check(args: argparse.Namespace) -> int:
    from finecliper.data.check import format_report, summarize
    from finecliper.data.readers import read_dataset

    index = read_dataset(
        args.dataset,
        args.root,
        fold=args.fold,
        **reader_options(args),
        deep=args.deep,
    )
    summary = summarize(index)
    print(dumps_json(summary) if args.json else format_report(summary))
    return 0


def _run_synth(args: argparse.Namespace) -> int:
    from finecliper.data.synth import generate_synth

    start = time.perf_counter()
    result = generate_synth(
        args.out,
        clips=args.clips,
        seed=args.seed,
        size=args.size,
        frames=args.frames,
        workers=args.workers,
        progress=not args.json,
    )
    seconds = time.perf_counter() - start
    summary = {
        "out": str(args.out),
        "clips": result.clips,
        "frames": result.frames,
        "size": args.size,
        "seconds": round(seconds, 2),
    }
    if args.json:
        print(dumps_json(summary))
    else:
        print(
            f"SynthDFER: {result.clips} clips x {result.frames} frames at {args.size}px "
            f"in {seconds:.1f} s -> {args.out}"
        )
    return 0
