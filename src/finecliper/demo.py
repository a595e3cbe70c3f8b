"""CLI: ``finecliper demo``, the main job on the embedded default.

It generates SynthDFER, trains FineCLIPER*† on fold 1 with the small CLIP-style backbone that
ships inside the package (frozen, as CLIP is in the real method), evaluates it with the same
honest model selection as any run, writes the full report, and predicts one held-out clip.

The fine-grained descriptions come from the landmark template backend (the one ``predict``
uses on new videos), not from SynthDFER's own descriptions, so the checkpoint sees the same
kind of text in training and in use.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

DEMO_OVERRIDES = [
    "model.backbone=finecliper/demo-backbone",
    "model.variant=full",
]


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the main job on the embedded SynthDFER dataset",
        description="Generate SynthDFER, train FineCLIPER*† on it with the bundled backbone, "
        "evaluate, write the report and predict one held-out clip. A few minutes on a 2-core "
        "CPU. Previous demo results in --out are replaced.",
    )
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    demo.add_argument("--clips", type=int, default=700, help="SynthDFER clips to generate")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("overrides", nargs="*", help="config overrides, e.g. train.epochs=4")
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
    from finecliper.config import load_config
    from finecliper.data.synth import generate_synth
    from finecliper.train.loop import train

    start = time.perf_counter()
    data_dir = out / "synthdfer"
    generate_synth(data_dir, clips=clips, seed=seed, progress=progress)
    config = load_config("synth", [f"data.root={data_dir}", *DEMO_OVERRIDES, *(overrides or [])])
    run_dir = out / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)  # the demo's own folder: a rerun starts clean
    metrics = train(config, run_dir, progress=progress)
    example = _predict_held_out(run_dir, data_dir, config)
    return {
        "uar": metrics["uar"],
        "war": metrics["war"],
        "seconds": round(time.perf_counter() - start, 1),
        "variant": config.model.variant,
        "report_dir": str(run_dir),
        "example": example,
    }


def write_template_descriptions(data_dir: Path, path: Path) -> Path:
    """Describe every SynthDFER clip's movements from its landmarks, as ``predict`` does."""
    import numpy as np

    from finecliper.data.readers import read_dataset
    from finecliper.io import atomic_open
    from finecliper.text.backends.template import describe_landmarks

    index = read_dataset("synth", data_dir, fold=1)
    records = {r.clip_id: r for split in index.splits.values() for r in split}
    with atomic_open(path, "w", encoding="utf-8") as handle:
        for clip_id, record in sorted(records.items()):
            points = np.load(record.path.parent / "landmarks.npy")
            text = describe_landmarks(points[~np.isnan(points).any(axis=(1, 2))])
            handle.write(json.dumps({"clip_id": clip_id, "text": text}) + "\n")
    return path


def _predict_held_out(run_dir: Path, data_dir: Path, config) -> dict[str, Any]:
    """Predict the first test clip of fold 1 from its checkpoint, as a user would."""
    from finecliper.data.readers import read_dataset
    from finecliper.serve.predictor import Predictor

    index = read_dataset("synth", data_dir, fold=config.data.fold)
    record = index.records("test", config.data.fold)[0]
    checkpoint = run_dir / "checkpoints" / "best_val.safetensors"
    with Predictor.from_checkpoint(checkpoint) as predictor:
        result = predictor.predict(record.path)
    return {
        "clip_id": record.clip_id,
        "label": index.classes[record.label],
        "top": result.top,
        "probability": result.probabilities[result.top],
    }


def _run_demo(args: argparse.Namespace) -> int:
    summary = run_demo(
        args.out,
        clips=args.clips,
        seed=args.seed,
        overrides=args.overrides,
        progress=not args.json,
    )
    if args.json:
        print(json.dumps({k: v for k, v in summary.items() if k != "example"}))
    else:
        example = summary["example"]
        print(
            f"\nFineCLIPER*† on SynthDFER fold 1: UAR {summary['uar']:.3f}  "
            f"WAR {summary['war']:.3f}  (chance 0.143) in {summary['seconds']:.0f} s\n"
            f"held-out clip {example['clip_id']} ({example['label']}): predicted "
            f"{example['top']} ({example['probability']:.2f})\n"
            f"report: {Path(summary['report_dir']) / 'index.md'}"
        )
    return 0
