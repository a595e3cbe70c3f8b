"""What each semantic level adds on the demo's data: the README's SynthDFER table.

Takes a finished ``finecliper demo --out DEMO`` and, with the recipe of its run (DEMO/run's
config: the demo's data, faces cache and measured descriptions), trains every variant on
every fold (``cv``, resumable: rerun after a crash and finished folds are kept; each fold's
epoch chosen on validation), runs the
fixed-weight sweep on fold 1, reads the mean adaptive weights of ``full`` on its test clips,
and fits a text-only probe on the demo's own descriptions: TF-IDF over word 1-2 grams +
logistic regression, C chosen by 5-fold cross-validation on each fold's training clips.
As a reference for the fusion it also combines the test predictions of the separately trained
``high`` and ``base`` runs after the fact (log p_high + a log p_base for a few fixed a): what
the frames add to the text when both are already trained, which ``full`` should reach.

Writes OUT/levels.json and OUT/levels.md (the tables, and issue #13's checks, each passed or
failed with its numbers); exits 1 when a check fails. About 40 minutes on 2 CPU cores.

    python scripts/synth_levels.py runs/demo --out runs/levels
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from finecliper.config import load_config
from finecliper.data.synth import read_synth
from finecliper.errors import FineCLIPERError
from finecliper.io import write_json, write_text
from finecliper.text.descriptions import load_descriptions
from finecliper.train.report.predictions_csv import read_predictions_csv
from finecliper.train.runs import cross_validate, fixed_weight_sweep

VARIANTS = ("base", "mid", "high", "full")
VIDEO_WEIGHTS = (0.1, 0.3, 0.5, 0.7, 0.9)
PROBE_CS = (1.0, 3.0, 10.0, 30.0, 100.0)
ENSEMBLE_BASE_WEIGHTS = (0.25, 0.5, 1.0)
MODALITIES = ("video", "parsing", "landmark", "text")


def run_levels(demo: Path, out: Path, folds: list[int]) -> dict:
    config_file = demo / "run" / "config.yaml"
    if not config_file.is_file():
        raise FineCLIPERError(f"{config_file}: not found; give a finished `finecliper demo --out`")
    variants = {}
    for variant in VARIANTS:
        config = load_config(str(config_file), [f"model.variant={variant}"])
        result = cross_validate(config, out / variant, folds=folds, progress=True)
        variants[variant] = {
            "folds": [round(100 * f["best_val"]["uar"], 2) for f in result["folds"]],
            "war_folds": [round(100 * f["best_val"]["war"], 2) for f in result["folds"]],
        }
    full = load_config(str(config_file), ["model.variant=full", f"data.fold={folds[0]}"])
    sweep = fixed_weight_sweep(full, out / "sweep", list(VIDEO_WEIGHTS), progress=True)
    config = load_config(str(config_file), [])
    result = {
        "demo": str(demo),
        "folds": folds,
        "variants": {name: _summary(v) for name, v in variants.items()},
        "text_probe": _summary(text_probe(config.data.root, config.data.descriptions, folds)),
        "sweep": {
            "fold": folds[0],
            "fixed": {str(p["video_weight"]): round(100 * p["uar"], 2) for p in sweep["points"]},
            "adaptive": round(100 * sweep["adaptive"]["uar"], 2),
        },
        "full_test_weights": mean_weights([out / "full" / f"fold{f}" for f in folds]),
        "late_ensemble": {
            str(a): _summary(late_ensemble(out / "high", out / "base", a, folds))
            for a in ENSEMBLE_BASE_WEIGHTS
        },
    }
    result["checks"] = checks(result)
    write_json(out / "levels.json", result)
    write_text(out / "levels.md", markdown(result))
    return result


def _summary(entry: dict) -> dict:
    values = np.asarray(entry["folds"], dtype=float)
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0  # as `finecliper cv` reports
    return {**entry, "mean": round(float(values.mean()), 2), "std": round(std, 2)}


def text_probe(root: Path, descriptions: Path, folds: list[int]) -> dict:
    """UAR and WAR (percent) of TF-IDF + logistic regression on each fold's test clips."""
    texts = load_descriptions(descriptions)  # the texts the model reads
    uars, wars = [], []
    for fold in folds:
        index = read_synth(root, fold=fold)
        train, test = index.records("train", fold), index.records("test", fold)
        model = _fit_probe([texts[r.clip_id] for r in train], [r.label for r in train])
        predicted = model.predict([texts[r.clip_id] for r in test])
        truth = np.asarray([r.label for r in test])
        recalls = [np.mean(predicted[truth == c] == c) for c in np.unique(truth)]
        uars.append(round(100 * float(np.mean(recalls)), 2))
        wars.append(round(100 * float(np.mean(predicted == truth)), 2))
    return {"folds": uars, "war_folds": wars}


def _fit_probe(texts: list[str], labels: list) -> object:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    pipeline = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        LogisticRegression(max_iter=3000),
    )
    grid = {"logisticregression__C": list(PROBE_CS)}
    return GridSearchCV(pipeline, grid, cv=5, scoring="balanced_accuracy").fit(texts, labels)


def mean_weights(run_dirs: Sequence[Path]) -> dict[str, float]:
    """Mean adaptive modality weight over the test clips of the given runs."""
    columns: dict[str, list[float]] = {m: [] for m in MODALITIES}
    for run_dir in run_dirs:
        table = read_predictions_csv(run_dir / "predictions.csv")
        if table.weights is None:
            raise FineCLIPERError(f"{run_dir / 'predictions.csv'}: no modality weights")
        for i, modality in enumerate(table.modalities):
            columns[modality].extend(table.weights[:, i].tolist())
    return {m: round(float(np.mean(v)), 3) for m, v in columns.items()}


def late_ensemble(first: Path, second: Path, weight: float, folds: list[int]) -> dict:
    """UAR and WAR (percent) per fold of log p_first + weight * log p_second on the test clips
    of two cross-validation folders (the same clips in each)."""
    uars, wars = [], []
    for fold in folds:
        one = read_predictions_csv(first / f"fold{fold}" / "predictions.csv")
        two = read_predictions_csv(second / f"fold{fold}" / "predictions.csv")
        if one.clip_ids != two.clip_ids or one.classes != two.classes:
            raise FineCLIPERError(f"fold {fold}: {first} and {second} differ in test clips")
        scores = np.log(one.probabilities + 1e-9) + weight * np.log(two.probabilities + 1e-9)
        predicted, labels = scores.argmax(axis=1), one.labels
        recalls = [np.mean(predicted[labels == c] == c) for c in np.unique(labels)]
        uars.append(round(100 * float(np.mean(recalls)), 2))
        wars.append(round(100 * float(np.mean(predicted == labels)), 2))
    return {"folds": uars, "war_folds": wars}


def checks(result: dict) -> list[dict]:
    """Issue #13's item 3, each with the numbers it compares."""
    mean = {name: v["mean"] for name, v in result["variants"].items()}
    full = result["variants"]["full"]
    sweep = result["sweep"]
    rows = [
        ("base >= 60 (mean)", mean["base"] >= 60, f"{mean['base']}"),
        ("mid >= base + 3", mean["mid"] >= mean["base"] + 3, f"{mean['mid']} vs {mean['base']}"),
        (
            "high >= base + 10",
            mean["high"] >= mean["base"] + 10,
            f"{mean['high']} vs {mean['base']}",
        ),
        (
            "full >= 80 UAR and WAR, first fold and mean",
            min(full["folds"][0], full["war_folds"][0], mean["full"], np.mean(full["war_folds"]))
            >= 80,
            f"fold {result['folds'][0]} {full['folds'][0]}, mean {mean['full']}",
        ),
        (
            "full >= mid and high (means)",
            mean["full"] >= max(mean["mid"], mean["high"]),
            f"{mean['full']} vs {mean['mid']}, {mean['high']}",
        ),
        (
            "adaptive >= best fixed video weight",
            sweep["adaptive"] >= max(sweep["fixed"].values()),
            f"{sweep['adaptive']} vs {max(sweep['fixed'].values())}",
        ),
        (
            "mean text weight of full <= 0.80",
            result["full_test_weights"]["text"] <= 0.80,
            f"{result['full_test_weights']['text']}",
        ),
        (
            "full ahead of the text probe (means)",
            mean["full"] > result["text_probe"]["mean"],
            f"{mean['full']} vs {result['text_probe']['mean']}",
        ),
    ]
    return [{"check": name, "passed": bool(ok), "numbers": text} for name, ok, text in rows]


def markdown(result: dict) -> str:
    folds = result["folds"]
    head = " | ".join(f"fold {f}" for f in folds)
    lines = [
        f"| variant | {head} | mean ± std |",
        "|---|" + "---|" * (len(folds) + 1),
    ]
    rows = {**{f"`{k}`": v for k, v in result["variants"].items()}}
    rows["text-only probe (TF-IDF + LR)"] = result["text_probe"]
    for weight, entry in result.get("late_ensemble", {}).items():
        rows[f"`high` + {weight} x `base`, combined after training"] = entry
    for name, entry in rows.items():
        cells = " | ".join(f"{v:.2f}" for v in entry["folds"])
        lines.append(f"| {name} | {cells} | {entry['mean']:.2f} ± {entry['std']:.2f} |")
    sweep = result["sweep"]
    lines += [
        "",
        f"Fixed video weight, fold {sweep['fold']}: "
        + ", ".join(f"{w}: {v:.2f}" for w, v in sweep["fixed"].items())
        + f"; adaptive: {sweep['adaptive']:.2f}.",
        "",
        "Mean adaptive weights of `full` on the test clips: "
        + ", ".join(f"{m} {w:.3f}" for m, w in result["full_test_weights"].items())
        + ".",
        "",
        "| check | passed | numbers |",
        "|---|---|---|",
    ]
    for check in result["checks"]:
        lines.append(
            f"| {check['check']} | {'yes' if check['passed'] else 'NO'} | {check['numbers']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("demo", type=Path, help="a finished `finecliper demo --out` folder")
    parser.add_argument("--out", type=Path, required=True, help="where the runs and tables go")
    parser.add_argument("--folds", default="1,2,3,4,5", help="comma-separated folds")
    args = parser.parse_args(argv)
    try:
        result = run_levels(args.demo, args.out, [int(f) for f in args.folds.split(",")])
    except FineCLIPERError as exc:
        print(f"synth_levels: error: {exc}", file=sys.stderr)
        return 2
    print((args.out / "levels.md").read_text(encoding="utf-8"))
    return 0 if all(check["passed"] for check in result["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
