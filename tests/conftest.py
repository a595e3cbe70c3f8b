"""Generic test setup shared by every test module, and the tiny data and model they share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set before anything imports transformers: a hub lookup without network stalls for ~50 s.
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Path:
    """A 35-clip SynthDFER at 32 px, 4 frames."""
    from finecliper.data.synth import generate_synth

    out = tmp_path_factory.mktemp("synth")
    generate_synth(out, clips=35, seed=5, size=32, frames=4, workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    """A tiny randomly initialised CLIP backbone on disk."""
    from finecliper.model.tiny import save_tiny_backbone

    return save_tiny_backbone(tmp_path_factory.mktemp("backbone"), image_size=32)
