"""CLI: ``finecliper demo``, the main job on the embedded default.

It generates SynthDFER, describes every clip with the landmark template backend, trains
FineCLIPER*† on fold 1 with the small CLIP-style backbone that ships inside the package (frozen,
as CLIP is in the real method), evaluates it with the same honest model selection as any run,
writes the full report, and predicts one held-out clip from its video file.

The descriptions come from the template backend, the one ``predict`` uses on new videos, so the
checkpoint sees the same kind of text in training and in use.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from finecliper.argtypes import COUNT, NON_NEGATIVE
from finecliper.io import dumps_json

DEMO_PRESET = "demo"
TEMPLATE_DESCRIPTIONS = "descriptions_template.jsonl"


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the main job on the embedded SynthDFER dataset",
        description="Generate SynthDFER, describe its clips, train FineCLIPER*† on fold 1 with "
        "the bundled backbone, evaluate, write the report and predict one held-out clip. A few "
        "minutes on a 2-core CPU. The recipe is the `demo` preset; overrides apply on top. "
        "A previous demo run in --out is replaced (the generated data is reused).",
    )
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    demo.add_argument("--clips", type=COUNT, default=700, help="SynthDFER clips to generate")
    demo.add_argument("--seed", type=NON_NEGATIVE, default=0, help="SynthDFER seed")
    demo.add_argument("overrides", nargs="*", help="config overrides, e.g. train.epochs=2")
    demo.add_argument("--json", action="store_true", help="print a JSON summary as last line")
    demo.set_defaults(handler=_run_demo)


def run_demo(
    out: Path,
    *,
    clips: int = 700,
    seed: int = 0,
    overrides: list[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the main job into ``out``; returns the summary (also written to demo.json)."""
    from finecliper.config import load_config
    from finecliper.data.synth import generate_synth
    from finecliper.io import write_json
    from finecliper.train.loop import train

    start = time.perf_counter()
    data_dir = out / "synthdfer"
    descriptions = data_dir / TEMPLATE_DESCRIPTIONS
    config = load_config(  # first, so that a bad override fails before any work
        DEMO_PRESET,
        [f"data.root={data_dir}", f"data.descriptions={descriptions}", *(overrides or [])],
    )
    generate_synth(data_dir, clips=clips, seed=seed, progress=progress)
    describe_with_template(data_dir, descriptions, progress=progress)
    run_dir = out / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)  # the demo's own folder: a rerun starts clean
    metrics = train(config, run_dir, progress=progress)
    example = predict_held_out(run_dir, data_dir, config.data.fold)
    summary = {
        "uar": metrics["uar"],
        "war": metrics["war"],
        "seconds": round(time.perf_counter() - start, 1),  # the whole job, prediction included
        "variant": config.model.variant,
        "report_dir": str(run_dir),
        "example": example,
    }
    write_json(out / "demo.json", summary)
    return summary


def describe_with_template(data_dir: Path, out: Path, *, progress: bool = True) -> None:
    """Describe every SynthDFER clip from its landmarks into ``out`` (``finecliper describe
    synth ROOT --backend template``); the clips an earlier run described are kept."""
    from finecliper.data.readers import read_dataset
    from finecliper.errors import FineCLIPERError
    from finecliper.text.backends import BackendOptions, create_backend
    from finecliper.text.describe import DescribeJob, plan_items

    backend = create_backend("template", BackendOptions(landmarks_root=data_dir))
    items = plan_items(read_dataset("synth", data_dir), "train", backend)
    summary = DescribeJob(backend, out, dataset="synth").run(items, progress=progress)
    if summary.errors:
        raise FineCLIPERError(f"{out}: {summary.errors} clips could not be described")


def predict_held_out(run_dir: Path, data_dir: Path, fold: int | None) -> dict[str, Any]:
    """Predict the first test clip of the fold from its frames, as a user would, with the
    checkpoint chosen on the validation split."""
    from finecliper.data.readers import read_dataset
    from finecliper.serve.predictor import Predictor

    index = read_dataset("synth", data_dir, fold=fold)
    record = index.records("test", fold)[0]
    checkpoint = run_dir / "checkpoints" / "best_val.safetensors"
    with Predictor.from_checkpoint(checkpoint, device="cpu") as predictor:
        result = predictor.predict(record.path)
    return {
        "clip_id": record.clip_id,
        "label": index.classes[record.label],
        "top": result.top,
        "probability": round(result.probabilities[result.top], 4),
        "description": result.description,
    }


def _run_demo(args: argparse.Namespace) -> int:
    if "torch" not in sys.modules:
        # Spinning OpenMP threads make 2-core torch several times slower when anything else
        # runs on the machine; passive waiting costs little here.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    summary = run_demo(
        args.out,
        clips=args.clips,
        seed=args.seed,
        overrides=args.overrides,
        progress=not args.json,
    )
    if args.json:
        print(dumps_json({k: v for k, v in summary.items() if k != "example"}))
        return 0
    example = summary["example"]
    print(
        f"\nFineCLIPER*† on SynthDFER fold 1: UAR {summary['uar']:.3f}  "
        f"WAR {summary['war']:.3f}  (chance 0.143) in {summary['seconds']:.0f} s\n"
        f"held-out clip {example['clip_id']} ({example['label']}): predicted "
        f"{example['top']} ({example['probability']:.2f})\n"
        f"report: {Path(summary['report_dir']) / 'index.md'}"
    )
    return 0
