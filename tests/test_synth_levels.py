"""scripts/synth_levels.py: the text-only probe, the weights it reads and issue #13's checks."""

from __future__ import annotations

import copy
import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from finecliper.data.synth import generate_synth
from finecliper.errors import FineCLIPERError

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "synth_levels.py"


@pytest.fixture(scope="module")
def levels():
    spec = importlib.util.spec_from_file_location("synth_levels", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "synth"
    generate_synth(out, clips=70, seed=0, size=32, frames=8, workers=1, progress=False)
    return out


def _write_descriptions(path: Path, synth: Path, text_of) -> Path:
    with open(synth / "manifest.csv", encoding="utf-8") as handle:
        rows = {Path(r["path"]).parent.name: r["label"] for r in csv.DictReader(handle)}
    lines = [
        json.dumps({"clip_id": clip, "text": text_of(clip, label)}) for clip, label in rows.items()
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_text_probe_reads_labels_only_when_the_text_holds_them(levels, synth, tmp_path):
    leaky = _write_descriptions(
        tmp_path / "leaky.jsonl", synth, lambda clip, label: f"The face moves. It looks {label}."
    )
    blind = _write_descriptions(
        tmp_path / "blind.jsonl", synth, lambda clip, label: "The face moves. The brows rise."
    )
    read = levels.text_probe(synth, leaky, [1, 2])
    assert read["folds"] == [100.0, 100.0] and read["war_folds"] == [100.0, 100.0]
    blank = levels.text_probe(synth, blind, [1])
    assert blank["folds"][0] < 40  # one text for every clip: no better than a guess


def test_mean_weights_average_every_test_clip_of_every_run(levels, tmp_path):
    for name, text_weight in (("a", 0.9), ("b", 0.5)):
        run = tmp_path / name
        run.mkdir()
        rest = (1 - text_weight) / 3
        weights = f"{rest},{rest},{rest},{text_weight}"
        (run / "predictions.csv").write_text(
            "clip_id,label,prediction,correct,p_A,p_B,w_video,w_parsing,w_landmark,w_text\n"
            f"x,A,A,1,0.6,0.4,{weights}\ny,B,A,0,0.7,0.3,{weights}\n"
        )
    weights = levels.mean_weights([tmp_path / "a", tmp_path / "b"])
    assert weights["text"] == pytest.approx(0.7)
    assert weights["video"] == pytest.approx(0.1, abs=1e-3)


def _result(levels) -> dict:
    def variant(folds):
        return levels._summary({"folds": folds, "war_folds": folds})

    result = {
        "folds": [1, 2],
        "variants": {
            "base": variant([61.0, 62.0]),
            "mid": variant([65.0, 66.0]),
            "high": variant([75.0, 76.0]),
            "full": variant([82.0, 83.0]),
        },
        "text_probe": variant([70.0, 71.0]),
        "sweep": {"fold": 1, "fixed": {"0.1": 80.0, "0.5": 81.0}, "adaptive": 82.0},
        "full_test_weights": {"video": 0.3, "parsing": 0.1, "landmark": 0.1, "text": 0.5},
    }
    result["checks"] = levels.checks(result)
    return result


def test_checks_pass_on_the_issue_targets_and_name_each_failure(levels):
    result = _result(levels)
    assert all(check["passed"] for check in result["checks"])
    worse = copy.deepcopy(result)
    worse["full_test_weights"]["text"] = 0.85
    worse["variants"]["mid"] = levels._summary({"folds": [62.0, 63.0], "war_folds": [62, 63]})
    failed = {c["check"] for c in levels.checks(worse) if not c["passed"]}
    assert failed == {"mid >= base + 3", "mean text weight of full <= 0.80"}
    table = levels.markdown(worse | {"checks": levels.checks(worse)})
    assert "| `full` | 82.00 | 83.00 | 82.50 ± 0.71 |" in table
    assert "| mean text weight of full <= 0.80 | NO | 0.85 |" in table


def _predictions(run: Path, rows: list[tuple[str, str, float]]) -> None:
    """A predictions.csv over two classes: (clip, label, p_A) per clip."""
    run.mkdir(parents=True)
    lines = ["clip_id,label,prediction,correct,p_A,p_B"]
    lines += [f"{clip},{label},A,1,{p},{1 - p}" for clip, label, p in rows]
    (run / "predictions.csv").write_text("\n".join(lines) + "\n")


def test_late_ensemble_adds_the_second_runs_log_probabilities(levels, tmp_path):
    # the first run is right on x and y, barely wrong on z; the second is sure of z only
    _predictions(tmp_path / "high" / "fold1", [("x", "A", 0.9), ("y", "B", 0.2), ("z", "A", 0.45)])
    _predictions(tmp_path / "base" / "fold1", [("x", "A", 0.4), ("y", "B", 0.6), ("z", "A", 0.9)])
    alone = levels.late_ensemble(tmp_path / "high", tmp_path / "base", 0.0, [1])
    combined = levels.late_ensemble(tmp_path / "high", tmp_path / "base", 1.0, [1])
    assert alone == {"folds": [75.0], "war_folds": [66.67]}
    assert combined == {"folds": [100.0], "war_folds": [100.0]}
    _predictions(tmp_path / "other" / "fold1", [("w", "A", 0.5), ("y", "B", 0.6), ("z", "A", 0.9)])
    with pytest.raises(FineCLIPERError, match="differ in test clips"):
        levels.late_ensemble(tmp_path / "high", tmp_path / "other", 1.0, [1])
