"""End-to-end training on a tiny SynthDFER with a tiny random CLIP: reports, resume, checkpoints."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from finecliper.config import save_config
from finecliper.data.pack.plan import PackSources
from finecliper.data.pack.write import pack_dataset
from finecliper.data.run_data import make_dataset, read_run_data
from finecliper.data.synth import read_synth
from finecliper.errors import ConfigError, FineCLIPERError
from finecliper.train.loop import train
from finecliper.train.runs import cross_validate, evaluate_checkpoint

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_train_writes_an_honest_report(tmp_path, tiny_config):
    config = tiny_config()
    metrics = train(config, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in (
        "config.yaml",
        "metrics.json",
        "predictions.csv",
        "index.md",
        "confusion.png",
        "training_curves.png",
        "per_class_recall.png",
        "modality_weights.png",
    ):
        assert (run / name).is_file(), name
    assert metrics["headline"] == "best_val"
    assert set(metrics["selection"]) == {"last", "best_val", "best_test_optimistic"}
    assert metrics["selection"]["best_test_optimistic"]["optimistic"] is True
    # Every test clip of fold 1 is predicted once; none is lost.
    rows = read_rows(run / "predictions.csv")
    assert len(rows) == metrics["test_clips"] == metrics["evaluated_clips"] == 7
    assert len({row["clip_id"] for row in rows}) == len(rows)
    probabilities = np.array([[float(row[f"p_{c}"]) for c in metrics["classes"]] for row in rows])
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    weights = np.array([[float(row[f"w_{m}"]) for m in metrics["modalities"]] for row in rows])
    assert np.allclose(weights.sum(axis=1), 1, atol=1e-4)
    # Validation is carved from training, never from test.
    assert metrics["train_clips"] + metrics["val_clips"] == 28
    history = json.loads((run / "metrics.json").read_text())["selection"]
    assert history["best_val"]["epoch"] in (1, 2)


def test_existing_run_needs_resume_and_resume_needs_a_run(tmp_path, tiny_config):
    config = tiny_config("train.epochs=1")
    train(config, tmp_path / "run", progress=False)
    with pytest.raises(FineCLIPERError, match="--resume"):
        train(config, tmp_path / "run", progress=False)
    with pytest.raises(FineCLIPERError, match="nothing to resume"):
        train(config, tmp_path / "other", resume=True, progress=False)
    with pytest.raises(FineCLIPERError, match="config differs"):
        train(tiny_config("train.epochs=3"), tmp_path / "run", resume=True, progress=False)


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import finecliper.train.loop as loop
    calls = {"n": 0}
    original = loop.to_model_inputs
    def counting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)  # a hard kill in the middle of an epoch
        return original(*args, **kwargs)
    loop.to_model_inputs = counting
    from finecliper.cli import main
    sys.exit(main(["train", sys.argv[1], "--out", sys.argv[2]]))
    """
)


def test_resume_after_a_kill_gives_identical_metrics(tmp_path, tiny_config):
    config = tiny_config("train.epochs=3", "model.modality_dropout=0.3")
    reference = train(config, tmp_path / "reference", progress=False)

    preset = save_config(config, tmp_path / "preset")
    # Per epoch: 4 training batches, then 1 val and 1 test batch; call 8 is inside epoch 2.
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, str(preset), str(tmp_path / "killed"), "8"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    state = (tmp_path / "killed" / "train_state.safetensors").is_file()
    assert state and not (tmp_path / "killed" / "metrics.json").exists()
    resumed = train(config, tmp_path / "killed", resume=True, progress=False)

    assert resumed["selection"] == reference["selection"]
    assert resumed["uar"] == reference["uar"] and resumed["war"] == reference["war"]
    for name in ("last", "best_val"):
        ours = load_file(tmp_path / "killed" / "checkpoints" / f"{name}.safetensors")
        theirs = load_file(tmp_path / "reference" / "checkpoints" / f"{name}.safetensors")
        assert ours.keys() == theirs.keys()
        assert all(bool((ours[k] == theirs[k]).all()) for k in ours)


def test_checkpoint_reproduces_predictions_in_a_fresh_process(tmp_path, tiny_config):
    run = tmp_path / "run"
    train(tiny_config(), run, progress=False)
    checkpoint = run / "checkpoints" / "best_val.safetensors"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "finecliper",
            "eval",
            str(checkpoint),
            "--out",
            str(tmp_path / "eval"),
            "--json",
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert read_rows(tmp_path / "eval" / "predictions.csv") == read_rows(run / "predictions.csv")
    metrics = json.loads((run / "metrics.json").read_text())
    assert summary["uar"] == pytest.approx(metrics["uar"])


def test_unreadable_test_clip_is_reported_by_id_not_fatal(tmp_path, tiny_synth, tiny_config):
    broken = tmp_path / "synth"
    shutil.copytree(tiny_synth, broken)
    first_test = next(
        r for r in read_rows(broken / "manifest.csv") if r["split"] == "test" and r["fold"] == "1"
    )
    for frame in (broken / first_test["path"]).glob("*.jpg"):
        frame.write_bytes(b"not a jpeg")
    metrics = train(
        tiny_config(f"data.root={broken}", "train.epochs=1"), tmp_path / "run", progress=False
    )
    clip_id = Path(first_test["path"]).parent.name
    assert [s["clip_id"] for s in metrics["skipped_test_clips"]] == [clip_id]
    assert metrics["evaluated_clips"] == metrics["test_clips"] - 1
    # The test split is scored in full: the unreadable clip counts as wrong (issue #14).
    rows = read_rows(tmp_path / "run" / "predictions.csv")
    correct = sum(row["correct"] in ("1", "True", "true") for row in rows)
    assert metrics["war"] == pytest.approx(correct / metrics["test_clips"])
    assert sum(metrics["test"]["support"].values()) == metrics["test_clips"]
    assert sum(metrics["test"]["unreadable"].values()) == 1
    last = json.loads((tmp_path / "run" / "metrics.json").read_text())["selection"]["last"]
    assert last["war"] == pytest.approx(metrics["war"])  # the loop scores by the same rule
    assert f"`{clip_id}`" in (tmp_path / "run" / "index.md").read_text()
    checkpoint = str(tmp_path / "run" / "checkpoints" / "last.safetensors")
    with pytest.raises(
        FineCLIPERError, match=f"1 of {metrics['test_clips']} test clips.*{clip_id}"
    ):
        evaluate_checkpoint(checkpoint, [f"data.root={broken}"], out=tmp_path / "eval")
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["war"] == metrics["war"]
    allowed = evaluate_checkpoint(
        checkpoint, [f"data.root={broken}", "data.max_unreadable=0.5"], out=tmp_path / "eval2"
    )
    assert allowed["war"] == pytest.approx(metrics["war"])


def test_train_refuses_an_evaluated_split_without_text(tmp_path, tiny_synth, tiny_config):
    """Descriptions made for training clips only (label shown) leave the validation carve
    without text: train names the split and the count instead of selecting on a text-less
    split (issue #14)."""
    rows = [r for r in read_rows(tiny_synth / "manifest.csv") if r["fold"] == "1"]
    lines = [
        json.dumps(
            {
                "clip_id": Path(r["path"]).parent.name,
                "text": "the brows lift",
                "label_shown": r["split"] == "train",
            }
        )
        for r in rows
    ]
    descriptions = tmp_path / "descriptions.jsonl"
    descriptions.write_text("\n".join(lines) + "\n")
    config = tiny_config(f"data.descriptions={descriptions}", "train.epochs=1")
    with pytest.raises(ConfigError, match=r"val: \d+ of \d+ clips have no label-free") as error:
        train(config, tmp_path / "run", progress=False)
    assert "test:" not in str(error.value) and str(descriptions) in str(error.value)
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_label_free_zero_shot_reads_no_label_and_reports_the_last_epoch(
    tmp_path, tiny_synth, tiny_config
):
    """Label-free zero-shot: label-free text for training clips too, and an epoch chosen
    without validation labels (issue #14)."""
    rows = [r for r in read_rows(tiny_synth / "manifest.csv") if r["fold"] == "1"]
    lines = []
    for r in rows:
        clip_id = Path(r["path"]).parent.name
        lines.append(json.dumps({"clip_id": clip_id, "text": "hidden", "label_shown": False}))
        lines.append(json.dumps({"clip_id": clip_id, "text": r["label"], "label_shown": True}))
    descriptions = tmp_path / "descriptions.jsonl"
    descriptions.write_text("\n".join(lines) + "\n")
    config = tiny_config(
        f"data.descriptions={descriptions}",
        "model.variant=high",
        "model.objective=zero_shot",
        "model.zero_shot_label_free=true",
    )
    texts = make_dataset(config, read_run_data(config).train, train=True).descriptions
    assert set(texts.values()) == {"hidden"}
    metrics = train(config, tmp_path / "run", progress=False)
    assert metrics["headline"] == "last" and metrics["headline_epoch"] == 2


def test_cv_aggregates_the_folds(tmp_path, tiny_config):
    config = tiny_config("train.epochs=1")
    result = cross_validate(config, tmp_path / "cv", folds=[1, 2], progress=False)
    folds = result["folds"]
    assert [f["fold"] for f in folds] == [1, 2]
    for rule in ("last", "best_val", "best_test_optimistic"):
        uars = [f[rule]["uar"] for f in folds]
        assert result["summary"][rule]["uar"]["mean"] == pytest.approx(np.mean(uars))
        assert result["summary"][rule]["uar"]["std"] == pytest.approx(np.std(uars, ddof=1))
    for fold in (1, 2):
        saved = json.loads((tmp_path / "cv" / f"fold{fold}" / "metrics.json").read_text())
        assert saved["selection"]["last"] == folds[fold - 1]["last"]
    assert "optimistic" in (tmp_path / "cv" / "results.md").read_text().lower()
    # A second call reuses the finished folds instead of training again.
    stamp = (tmp_path / "cv" / "fold1" / "metrics.json").stat().st_mtime_ns
    cross_validate(config, tmp_path / "cv", folds=[1, 2], progress=False)
    assert (tmp_path / "cv" / "fold1" / "metrics.json").stat().st_mtime_ns == stamp


def test_training_from_a_pack_equals_training_from_the_files(tmp_path, tiny_synth, tiny_config):
    pack = tmp_path / "pack"
    sources = PackSources(synth_middle=True, descriptions=tiny_synth / "descriptions.jsonl")
    pack_dataset(read_synth(tiny_synth), pack, sources=sources, progress=False)
    from_files = train(tiny_config("train.epochs=1"), tmp_path / "files", progress=False)
    from_pack = train(
        tiny_config("train.epochs=1", f"data.packed={pack}", "data.root=/nonexistent"),
        tmp_path / "packed",
        progress=False,
    )
    assert from_pack["selection"] == from_files["selection"]
    assert read_rows(tmp_path / "packed" / "predictions.csv") == read_rows(
        tmp_path / "files" / "predictions.csv"
    )


def test_metrics_json_is_written_once_per_run(tmp_path, tiny_config, monkeypatch):
    import finecliper.io as io

    written: list[Path] = []
    original = io.atomic_open

    def recording(path, *args, **kwargs):
        written.append(Path(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(io, "atomic_open", recording)
    train(tiny_config("train.epochs=1"), tmp_path / "run", progress=False)
    assert [p for p in written if p.name == "metrics.json"] == [tmp_path / "run" / "metrics.json"]
