"""Model folders and hub ids: export -> load -> predict gives the checkpoint's predictions exactly,
a hub id is read from a pre-populated Hugging Face cache offline, a miss is one clear line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from huggingface_hub import constants

from finecliper.cli import main
from finecliper.errors import FineCLIPERError
from finecliper.runtime.hub import CONFIG_FILE, export_model
from finecliper.serve.predictor import DEMO_CHECKPOINT, Predictor
from finecliper.serve.web import ServeApp

HUB_ID = "someone/finecliper-tiny"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def model_folder(tiny_checkpoint: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "finecliper-tiny"
    export_model(tiny_checkpoint, out)
    return out


@pytest.fixture
def offline_cache(monkeypatch, tmp_path: Path) -> Path:
    """An empty Hugging Face cache in tmp_path, with downloads forbidden."""
    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def cache_model(cache: Path, repo_id: str, folder: Path) -> None:
    """Lay ``folder`` out as the cache's snapshot of ``repo_id`` at main, as a download does."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)


def probabilities(predictor: Predictor, clip: Path) -> list[dict[str, float]]:
    result = predictor.predict(clip)
    return [result.probabilities] + [window.probabilities for window in result.timeline]


def test_folder_predicts_exactly_like_the_checkpoint(
    predictor: Predictor, model_folder: Path, synth_clip: Path
) -> None:
    with Predictor.from_pretrained(model_folder, "cpu") as from_folder:
        assert from_folder.classes == predictor.classes
        assert probabilities(from_folder, synth_clip) == probabilities(predictor, synth_clip)
        assert from_folder.predict(synth_clip).settings["checkpoint"] == str(model_folder)


def test_hub_id_loads_from_the_cache_offline(
    predictor: Predictor, model_folder: Path, synth_clip: Path, offline_cache: Path
) -> None:
    cache_model(offline_cache, HUB_ID, model_folder)
    with Predictor.from_pretrained(HUB_ID, "cpu") as from_hub:
        assert probabilities(from_hub, synth_clip) == probabilities(predictor, synth_clip)
        assert from_hub.checkpoint == HUB_ID


def test_offline_cache_miss_is_one_clear_line(offline_cache: Path) -> None:
    with pytest.raises(FineCLIPERError, match="HF_HUB_OFFLINE=1") as caught:
        Predictor.from_pretrained("someone/not-cached", "cpu")
    assert "someone/not-cached: not in the Hugging Face cache" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_folder_without_config_is_refused(tiny_checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "half"
    folder.mkdir()
    shutil.copy(tiny_checkpoint, folder / "model.safetensors")
    with pytest.raises(FineCLIPERError, match="not a finecliper model folder"):
        Predictor.from_pretrained(folder, "cpu")
    (folder / CONFIG_FILE).write_text(json.dumps({"format": "other"}))
    with pytest.raises(FineCLIPERError, match="format 'other'"):
        Predictor.from_pretrained(folder, "cpu")
    with pytest.raises(FineCLIPERError, match="no such checkpoint or model folder"):
        Predictor.from_pretrained(tmp_path / "nowhere" / "x" / "y", "cpu")


def test_cli_predict_with_model(model_folder: Path, synth_clip: Path, capsys) -> None:
    argv = ["predict", str(synth_clip), "--model", str(model_folder), "--device", "cpu"]
    assert main([*argv, "--json"]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert line["settings"]["checkpoint"] == str(model_folder)
    with pytest.raises(SystemExit):  # --model and --checkpoint name the model twice
        main([*argv, "--checkpoint", str(model_folder / "model.safetensors")])


def test_the_web_page_flags_the_bundled_model(bundled_predictor: Predictor, tmp_path) -> None:
    assert Path(bundled_predictor.checkpoint).name == DEMO_CHECKPOINT
    assert ServeApp(bundled_predictor, tmp_path).config()["demo_checkpoint"] is True
