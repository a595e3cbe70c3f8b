"""A tiny SynthDFER and a tiny random CLIP backbone on disk, shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from finecliper.config import Config, load_config
from finecliper.data.synth import generate_synth
from finecliper.model.tiny import save_tiny_backbone


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate_synth(out, clips=35, seed=5, size=32, frames=4, workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    return save_tiny_backbone(tmp_path_factory.mktemp("backbone"), image_size=32)


@pytest.fixture
def tiny_config(tiny_synth: Path, tiny_backbone: Path):
    def make(*overrides: str) -> Config:
        return load_config(
            "synth",
            [
                f"data.root={tiny_synth}",
                "data.num_frames=4",
                "data.image_size=32",
                "data.num_workers=0",
                f"model.backbone={tiny_backbone}",
                "train.epochs=2",
                "train.batch_size=8",
                "train.lr=0.01",
                *overrides,
            ],
        )

    return make
