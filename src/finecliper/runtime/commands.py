"""CLI: ``finecliper export`` (a checkpoint to a model folder in the Hugging Face Hub layout)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export",
        help="write a checkpoint as a model folder (Hugging Face Hub layout)",
        description="Write OUT_DIR/model.safetensors (the checkpoint), config.json (resolved "
        "config, classes, variant, backbone identity, metrics) and README.md (a model card with "
        "the metrics and selection rule of the run's metrics.json). Upload the folder as a Hub "
        "model repository, or use it with predict/eval --model.",
    )
    export.add_argument("checkpoint", type=Path, help="a checkpoint of `finecliper train`")
    export.add_argument("out_dir", type=Path, help="the model folder to write")
    export.add_argument(
        "--metrics",
        type=Path,
        default=None,
        help="the run's metrics.json (default: RUN/metrics.json for RUN/checkpoints/X)",
    )
    export.add_argument("--json", action="store_true", help="print a JSON summary")
    export.set_defaults(handler=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from finecliper.runtime.hub import export_model

    metrics = export_model(args.checkpoint, args.out_dir, args.metrics)
    metrics_text = str(metrics) if metrics is not None else None
    summary = {"out": str(args.out_dir), "metrics_file": metrics_text}
    text = f"-> {args.out_dir} (metrics: {metrics_text or 'none found: the card says so'})"
    print(json.dumps(summary) if args.json else text)
    return 0
