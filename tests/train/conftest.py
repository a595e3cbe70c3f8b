"""A run config over the tiny SynthDFER and tiny backbone of tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from finecliper.config import Config, load_config


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
