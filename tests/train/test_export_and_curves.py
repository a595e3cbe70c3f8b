"""A short run with ``train.tensorboard=true``: its event files, its export as a model folder
(card from metrics.json), and ``eval`` of that folder against the checkpoint it came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tiny_run import tiny_overrides

from finecliper.cli import main
from finecliper.runtime.hub import CARD_FILE, CONFIG_FILE, export_model
from finecliper.train.loop import train
from finecliper.train.state import STATE_FILE, load_training_state

MODALITIES = ("video", "parsing", "landmark", "text")


@pytest.fixture(scope="module")
def curves_run(tmp_path_factory, tiny_synth: Path, tiny_backbone: Path) -> Path:
    from finecliper.config import load_config

    config = load_config(
        "synth", [*tiny_overrides(tiny_synth, tiny_backbone), "train.tensorboard=true"]
    )
    run = tmp_path_factory.mktemp("curves") / "run"
    train(config, run, progress=False)
    return run


def read_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {
        tag: [(event.step, event.value) for event in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
    }


def test_tensorboard_event_files_hold_every_curve(curves_run: Path) -> None:
    scalars = read_scalars(curves_run / "tensorboard")
    history = load_training_state(curves_run / STATE_FILE)["history"]
    expected = {"train/loss", "train/lr", "train/clips_per_s"}
    for split in ("val", "test"):
        expected |= {f"{split}/uar", f"{split}/war"}
        expected |= {f"{split}/weight_{m}" for m in MODALITIES}
    assert expected <= set(scalars)
    assert [step for step, _ in scalars["train/loss"]] == [1, 2]
    for entry in history:
        step = entry["epoch"] - 1
        assert scalars["train/loss"][step][1] == pytest.approx(entry["train_loss"], rel=1e-6)
        assert scalars["test/uar"][step][1] == pytest.approx(entry["test"]["uar"], rel=1e-6)
        weights = [scalars[f"val/weight_{m}"][step][1] for m in MODALITIES]
        assert sum(weights) == pytest.approx(1.0, abs=1e-4)


def test_no_event_files_without_the_setting(tmp_path: Path, tiny_config) -> None:
    train(tiny_config("train.epochs=1"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "tensorboard").exists()


def test_export_card_states_the_runs_metrics_and_rule(curves_run: Path, tmp_path: Path) -> None:
    metrics = json.loads((curves_run / "metrics.json").read_text())
    checkpoint = curves_run / "checkpoints" / "best_val.safetensors"
    assert main(["export", str(checkpoint), str(tmp_path / "model")]) == 0
    info = json.loads((tmp_path / "model" / CONFIG_FILE).read_text())
    assert info["metrics"]["selection"] == metrics["selection"]
    assert info["variant"] == "full" and info["backbone"]["source"] == "local"
    assert len(info["backbone"]["sha256"]) == 64
    card = (tmp_path / "model" / CARD_FILE).read_text()
    assert f"test UAR {metrics['uar']:.4f}, WAR {metrics['war']:.4f}" in card
    assert f"epoch {metrics['headline_epoch']}, selected by best validation UAR" in card
    best = metrics["selection"]["best_test_optimistic"]
    assert f"| {best['epoch']} | {best['uar']:.4f} | {best['war']:.4f} |" in card


def test_export_without_metrics_says_so(curves_run: Path, tmp_path: Path) -> None:
    lone = tmp_path / "lone.safetensors"
    lone.write_bytes((curves_run / "checkpoints" / "last.safetensors").read_bytes())
    assert export_model(lone, tmp_path / "model") is None
    assert "No metrics.json of the run was found" in (tmp_path / "model" / CARD_FILE).read_text()


def test_eval_of_the_model_folder_equals_eval_of_the_checkpoint(
    curves_run: Path, tmp_path: Path, capsys
) -> None:
    checkpoint = curves_run / "checkpoints" / "best_val.safetensors"
    export_model(checkpoint, tmp_path / "model")
    results = []
    for model, out in ((checkpoint, "from_file"), (tmp_path / "model", "from_folder")):
        code = main(["eval", str(model), "--out", str(tmp_path / out), "--json"])
        assert code == 0
        results.append(json.loads(capsys.readouterr().out.splitlines()[-1]))
    assert results[0]["uar"] == results[1]["uar"] and results[0]["war"] == results[1]["war"]
    file_rows = (tmp_path / "from_file" / "predictions.csv").read_text()
    assert file_rows == (tmp_path / "from_folder" / "predictions.csv").read_text()
