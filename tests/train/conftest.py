"""A run config over the tiny SynthDFER and tiny backbone of tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_run import tiny_overrides

from finecliper.config import Config, load_config


@pytest.fixture
def tiny_config(tiny_synth: Path, tiny_backbone: Path):
    def make(*overrides: str) -> Config:
        return load_config("synth", [*tiny_overrides(tiny_synth, tiny_backbone), *overrides])

    return make
