"""CLI: ``finecliper demo``, the main job on the embedded default (SynthDFER).

Today it runs, on a freshly generated SynthDFER, the generation, the dataset check with the
same reader as real data, and the model's parameter budget. Training and evaluation join it once
the small CLIP-style backbone it needs ships inside the package (`finecliper train` itself works
on SynthDFER with any backbone).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the main job on the embedded SynthDFER dataset",
        description="Generate SynthDFER, check it with the dataset reader, and report the "
        "FineCLIPER*† parameter budget. Runs on a 2-core CPU in about a minute.",
    )
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    demo.add_argument("--clips", type=int, default=700, help="SynthDFER clips to generate")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--json", action="store_true", help="print a JSON summary as last line")
    demo.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from finecliper.data.check import format_report, summarize
    from finecliper.data.readers import read_dataset
    from finecliper.data.synth import generate_synth
    from finecliper.io import write_json
    from finecliper.model.summary import format_summary, summarize_parameters

    start = time.perf_counter()
    data_dir = args.out / "synthdfer"
    result = generate_synth(data_dir, clips=args.clips, seed=args.seed, progress=not args.json)
    generated = time.perf_counter() - start
    check = summarize(read_dataset("synth", data_dir, fold=1))
    params = summarize_parameters("full", "openai/clip-vit-base-patch16")
    summary = {
        "clips": result.clips,
        "generate_seconds": round(generated, 2),
        "problems": len(check["problems"]),
        "tunable_params": params["tunable_params"],
        "seconds": round(time.perf_counter() - start, 2),
        "report_dir": str(args.out),
    }
    write_json(args.out / "demo.json", {"check": check, "model": params, **summary})
    if args.json:
        print(json.dumps(summary))
        return 0
    print(format_report(check))
    print(format_summary(params))
    print(f"SynthDFER: {result.clips} clips generated in {generated:.1f} s -> {data_dir}")
    print(f"report: {args.out / 'demo.json'}")
    return 0
