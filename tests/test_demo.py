"""The main job (`finecliper demo`) end to end at a small size, and its recipe.

The full-size demo's accuracy (UAR and WAR >= 0.80 on 700 clips) is checked by
tests/test_demo_accuracy.py; here a 70-clip, one-epoch run checks every output.
"""

from __future__ import annotations

import csv
import json

import pytest

from finecliper.cli import main
from finecliper.config import load_config
from finecliper.data.readers import read_dataset
from finecliper.text.descriptions import load_descriptions

JSON_KEYS = {"uar", "war", "seconds", "variant", "report_dir"}
PLOTS = ("confusion.png", "training_curves.png", "per_class_recall.png", "modality_weights.png")


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    argv = ["demo", "--out", str(out), "--clips", "70", "--seed", "3", "train.epochs=1", "--json"]
    return out, argv


def test_demo_prints_its_json_and_writes_the_report(small_demo, capsys):
    out, argv = small_demo
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(summary) == JSON_KEYS
    assert summary["variant"] == "full"
    assert 0.0 <= summary["war"] <= 1.0 and 0.0 <= summary["uar"] <= 1.0
    report = out / "run"
    assert summary["report_dir"] == str(report)
    assert all((report / name).stat().st_size > 1000 for name in PLOTS)
    assert "confusion.png" in (report / "index.md").read_text()
    metrics = json.loads((report / "metrics.json").read_text())
    test_ids = {r.clip_id for r in read_dataset("synth", out / "synthdfer").records("test", 1)}
    assert metrics["test_clips"] == metrics["evaluated_clips"] == len(test_ids)
    assert metrics["uar"] == summary["uar"] and metrics["modalities"][-1] == "text"
    with open(report / "predictions.csv", newline="") as handle:
        assert {row["clip_id"] for row in csv.DictReader(handle)} == test_ids


def test_demo_trains_on_template_descriptions_and_predicts_a_held_out_clip(small_demo):
    out, _ = small_demo
    demo = json.loads((out / "demo.json").read_text())
    example = demo["example"]
    index = read_dataset("synth", out / "synthdfer", fold=1)
    test_clip = index.records("test", 1)[0]
    assert example["clip_id"] == test_clip.clip_id
    assert example["label"] == index.classes[test_clip.label]
    assert example["top"] in index.classes and 0.0 < example["probability"] <= 1.0
    assert example["description"]  # the template backend described the predicted video
    config = load_config(out / "run" / "config.yaml")
    assert config.model.backbone == "finecliper/demo-backbone"
    # Every clip described, none with its label shown, so all are usable for testing.
    assert len(load_descriptions(config.data.descriptions, split="test")) == 70
    with open(config.data.descriptions, encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle]
    assert {line["backend"] for line in lines} == {"template"}
    assert not any(line["label_shown"] for line in lines)


def test_rerun_replaces_the_run_and_reuses_the_data(small_demo, capsys):
    out, argv = small_demo
    (out / "run" / "stale.txt").write_text("from an earlier run")
    first_frame = next((out / "synthdfer" / "clips").glob("*/frames/*.jpg"))
    stamp = first_frame.stat().st_mtime_ns
    assert main(argv) == 0
    assert not (out / "run" / "stale.txt").exists()
    assert first_frame.stat().st_mtime_ns == stamp
    capsys.readouterr()


def test_demo_preset_is_the_documented_recipe():
    config = load_config("demo")
    assert config.data.dataset == "synth" and config.data.fold == 1
    assert config.model.variant == "full" and config.model.weighting == "adaptive"
    assert config.model.backbone == "finecliper/demo-backbone"
    assert config.data.image_size == 112


def test_bad_override_is_a_clear_error(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--clips", "14", "train.epochs=zero"]) == 2
    assert "train.epochs" in capsys.readouterr().err
