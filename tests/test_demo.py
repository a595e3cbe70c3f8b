"""The main job (`finecliper demo`) end to end at a small size, and its recipe.

The full-size demo's accuracy floor (UAR and WAR on 700 clips) is checked by
tests/test_demo_accuracy.py; here a 70-clip, one-epoch run checks every output, and that the
model's inputs come from the pipeline (MediaPipe on the frames), never SynthDFER's ground truth.
"""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from finecliper.cli import main
from finecliper.config import load_config
from finecliper.data.readers import read_dataset
from finecliper.data.run_data import make_dataset, read_run_data
from finecliper.face.arrays import read_landmarks, read_mesh
from finecliper.face.cache import clip_dir, is_faces_cache
from finecliper.text.backends.template import describe_landmarks
from finecliper.text.descriptions import load_descriptions

JSON_KEYS = {
    "uar",
    "war",
    "seconds",
    "variant",
    "report_dir",
    "faces_cache",
    "descriptions",
    "landmark_nme",
}
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


def test_demo_inputs_come_from_the_pipeline(small_demo):
    """Landmarks, parsing and descriptions are MediaPipe's, measured on the frames: the run reads
    the faces cache, and each description is the template's text of the measured points."""
    out, _ = small_demo
    config = load_config(out / "run" / "config.yaml")
    assert config.data.faces_cache == str(out / "faces") and is_faces_cache(out / "faces")
    with open(config.data.descriptions, encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle]
    from_truth = []
    for line in lines[:10]:
        folder = clip_dir(out / "faces", line["clip_id"])
        measured = read_landmarks(folder).astype(np.float64)
        truth = read_landmarks(out / "synthdfer" / "clips" / line["clip_id"])
        assert not np.allclose(measured, truth, atol=0.5)  # really measured, not copied
        mesh = read_mesh(folder).astype(np.float64)
        assert line["text"] == describe_landmarks(measured, mesh)
        from_truth.append(describe_landmarks(truth.astype(np.float64), measured=False))
    assert [line["text"] for line in lines[:10]] != from_truth


def test_ground_truth_landmarks_never_reach_the_model(small_demo, tmp_path):
    """The model's inputs are the same with SynthDFER's ground truth (its landmarks, parsing
    maps and descriptions) deleted: a run that read them would change or fail."""
    out, _ = small_demo
    copy = tmp_path / "demo"
    shutil.copytree(out / "synthdfer", copy / "synthdfer")
    config = load_config(out / "run" / "config.yaml")
    inputs_before = _model_inputs(config)
    for name in ("landmarks.npy", "parsing.npz", "params.json"):
        for path in (copy / "synthdfer" / "clips").glob(f"*/{name}"):
            path.unlink()
    (copy / "synthdfer" / "descriptions.jsonl").write_text("")
    moved = config.model_copy(
        update={"data": config.data.model_copy(update={"root": str(copy / "synthdfer")})}
    )
    inputs_after = _model_inputs(moved)
    assert len(inputs_before) == len(inputs_after) == 14
    for before, after in zip(inputs_before, inputs_after, strict=True):
        assert before.keys() == after.keys()
        for key, value in before.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value.nan_to_num(-1), after[key].nan_to_num(-1)), key
            else:
                assert value == after[key], key
        assert before["parsing"] is not None and before["description"]


def _model_inputs(config) -> list[dict]:
    """Every test clip's frames, parsing, landmarks and description, as the run loads them."""
    data = read_run_data(config)
    dataset = make_dataset(config, data.test, train=False)
    items = [dataset[i] for i in range(len(dataset))]
    assert not any("error" in item for item in items)
    return items


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
