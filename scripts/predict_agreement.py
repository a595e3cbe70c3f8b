"""Does `finecliper predict` agree with the demo? The bundled model on fresh SynthDFER clips.

Generates SynthDFER with a seed used neither by the demo (0) nor by the backbone's pre-training
(1234), runs ``finecliper predict --json`` on every clip's frame folder, exactly as a user would
(MediaPipe faces, template description, sliding windows), and compares its UAR and WAR with the
demo test UAR recorded in the model's config.json. Clips that ``predict`` cannot read count as
wrong. Exits 1 when the gap exceeds ``--max-gap`` points.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/predict_agreement.py --clips 140 --seed 11
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from finecliper.data.readers import read_dataset
from finecliper.data.synth import generate_synth
from finecliper.face.pipeline import unique_records
from finecliper.serve.predictor import demo_model_path
from finecliper.train.metrics import classification_report

USED_SEEDS = (0, 1234)  # the demo's data and the backbone's pre-training data


def run_predict(model: Path, folders: Sequence[Path]) -> dict[str, str | None]:
    """Top class per frame folder (None: not predicted), from `finecliper predict --json`."""
    command = [sys.executable, "-m", "finecliper", "predict", "--model", str(model), "--json"]
    done = subprocess.run(
        [*command, *map(str, folders)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        check=False,
    )
    tops: dict[str, str | None] = {str(folder): None for folder in folders}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
            tops[result["video"]] = result.get("top")
    if done.returncode not in (0, 1) or not any(tops.values()):
        raise SystemExit(f"finecliper predict failed:\n{done.stderr[-2000:]}")
    return tops


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=demo_model_path(), help="model folder")
    parser.add_argument("--clips", type=int, default=140)
    parser.add_argument("--seed", type=int, default=11, help="a seed no training used")
    parser.add_argument("--work", type=Path, default=Path("runs/predict_agreement"))
    parser.add_argument("--max-gap", type=float, default=5.0, help="allowed UAR gap, points")
    args = parser.parse_args(argv)
    if args.seed in USED_SEEDS:
        parser.error(f"seed {args.seed} was used in training; choose another")
    start = time.perf_counter()
    root = args.work / f"synth_seed{args.seed}_n{args.clips}"
    generate_synth(root, clips=args.clips, seed=args.seed, progress=False)
    index = read_dataset("synth", root)
    records = sorted(unique_records(index), key=lambda r: r.clip_id)
    tops = run_predict(args.model, [r.path for r in records])
    classes = list(index.classes)
    read = [(r.label, tops[str(r.path)]) for r in records if tops[str(r.path)] is not None]
    report = classification_report(
        [label for label, _ in read],
        [classes.index(top) for _, top in read],
        classes,
        unreadable=[r.label for r in records if tops[str(r.path)] is None],
    )
    demo = json.loads((args.model / "config.json").read_text(encoding="utf-8"))["metrics"]
    gap = 100 * abs(report.uar - demo["uar"])
    summary = {
        "model": str(args.model),
        "data": f"SynthDFER seed {args.seed}, {len(records)} clips",
        "predict_uar": round(report.uar, 4),
        "predict_war": round(report.war, 4),
        "per_class_recall": {k: round(v, 3) for k, v in report.per_class_recall.items() if v},
        "not_predicted": len(records) - len(read),
        "demo_test_uar": round(demo["uar"], 4),
        "gap_points": round(gap, 2),
        "max_gap_points": args.max_gap,
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(summary, indent=2))
    return 0 if gap <= args.max_gap else 1


if __name__ == "__main__":
    sys.exit(main())
