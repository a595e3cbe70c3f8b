"""Dataset readers are chosen by name from a registry: new datasets plug in with a decorator."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures import write_csv, write_frames

from finecliper.cli import main
from finecliper.config import build_config
from finecliper.data.readers import READERS, read_custom, read_dataset, register_reader
from finecliper.data.records import DatasetIndex
from finecliper.errors import ConfigError, FineCLIPERError


def read_toy(root: Path, *, fold: int | None = None, deep: bool = False) -> DatasetIndex:
    """A stand-in dataset: a custom manifest under another name."""
    return read_custom(root, fold=fold, dataset_name="toy", deep=deep)


@pytest.fixture
def toy() -> Iterator[None]:
    register_reader("toy", options={"deep": "deep"})(read_toy)
    yield
    READERS.unregister("toy")


@pytest.fixture
def toy_manifest(tmp_path) -> Path:
    for clip in ("a", "b"):
        write_frames(tmp_path / clip, 3)
    manifest = tmp_path / "toy.csv"
    write_csv(manifest, ["path", "label", "split"], [["a", "happy", "train"], ["b", "sad", "test"]])
    return manifest


def test_registered_reader_is_read_by_name(toy, toy_manifest):
    index = read_dataset("toy", toy_manifest, deep=True)
    assert index.dataset == "toy"
    assert [r.clip_id for r in index.records("train")] == ["a"]
    with pytest.raises(ConfigError, match="reader option mafw_source='video' does not apply"):
        read_dataset("toy", toy_manifest, mafw_source="video")


def test_registered_reader_is_a_cli_choice_and_a_config_value(toy, toy_manifest, capsys):
    assert main(["data", "check", "toy", str(toy_manifest), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["dataset"] == "toy"
    with pytest.raises(SystemExit):
        main(["data", "check", "--help"])
    assert "{custom,dfew,ferv39k,mafw,synth,toy}" in capsys.readouterr().out
    assert build_config({"data": {"dataset": "toy", "fold": None}}).data.dataset == "toy"


def test_unknown_dataset_names_the_known_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown dataset 'afew' \(known: custom, dfew, "):
        read_dataset("afew", tmp_path)
    with pytest.raises(ConfigError, match=r"data\.dataset.*unknown dataset 'afew'"):
        build_config({"data": {"dataset": "afew"}})


def test_a_dataset_name_is_taken_once():
    with pytest.raises(FineCLIPERError, match="dataset 'dfew' is registered twice"):
        register_reader("dfew", options={"deep": "deep"})(read_toy)
    with pytest.raises(ConfigError, match="dataset 'toy2': unknown reader option"):
        register_reader("toy2", options={"frames": "frames"})


def test_listing_datasets_imports_no_reader():
    code = (
        "import sys; from finecliper.data.readers import reader_names; print(reader_names()); "
        "print(sorted(m for m in sys.modules if m.startswith('finecliper.data.readers.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["('custom', 'dfew', 'ferv39k', 'mafw', 'synth')", "[]"]
