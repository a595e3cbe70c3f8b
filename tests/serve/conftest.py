"""Shared inputs of the predict/serve tests: a tiny checkpoint, real videos, a running server.

The checkpoint is an untrained FineCLIPER*† over a tiny random CLIP (real transformers classes,
32 px, 4 frames): the plumbing is what these tests check, not accuracy. The astronaut video is
``skimage.data.astronaut()`` panned and drifting over 5 s, encoded as H.264, so the face moves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from serve_fixtures import ASTRONAUT_FPS, RunningServer, astronaut_frames, write_video

from finecliper.config import load_config
from finecliper.data.synth import CLASSES, generate_synth
from finecliper.model.network import build_model
from finecliper.model.tiny import save_tiny_backbone
from finecliper.runtime.checkpoint import save_checkpoint
from finecliper.serve.predictor import Predictor


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("checkpoint")
    backbone = save_tiny_backbone(root / "backbone", image_size=32)
    config = load_config(
        "synth",
        [
            f"model.backbone={backbone}",
            "model.variant=full",
            "data.num_frames=4",
            "data.image_size=32",
        ],
    )
    model = build_model(config.model, CLASSES, num_frames=config.data.num_frames)
    path = root / "tiny.safetensors"
    save_checkpoint(path, model, config, CLASSES)
    return path


@pytest.fixture(scope="session")
def predictor(tiny_checkpoint: Path) -> Iterator[Predictor]:
    with Predictor.from_checkpoint(tiny_checkpoint, "cpu") as loaded:
        yield loaded


@pytest.fixture(scope="session")
def astronaut_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("videos") / "astronaut.mp4"
    return write_video(path, astronaut_frames(), ASTRONAUT_FPS)


@pytest.fixture(scope="session")
def synth_clip(tmp_path_factory) -> Path:
    """A SynthDFER clip's frame folder (16 frames of 64 px)."""
    out = tmp_path_factory.mktemp("synth")
    generate_synth(out, clips=7, seed=1, size=64, frames=16, workers=1, progress=False)
    return out / "clips" / "synth_00000" / "frames"


@pytest.fixture(scope="session")
def noise_video(tmp_path_factory) -> Path:
    frames = np.random.default_rng(0).integers(0, 256, (20, 96, 128, 3), dtype=np.uint8)
    return write_video(tmp_path_factory.mktemp("videos") / "noise.mp4", frames, 10)


@pytest.fixture(scope="session")
def bundled_predictor() -> Iterator[Predictor]:
    """The model that ships with the package (trained on SynthDFER)."""
    with Predictor.from_pretrained(device="cpu") as loaded:
        yield loaded


@pytest.fixture
def running_server(predictor: Predictor, tmp_path: Path):
    """Start servers on free ports (``make(**limits)``, the tiny checkpoint unless another
    ``serving`` predictor is given) with working folders in tmp_path."""
    from finecliper.serve.limits import ServeLimits
    from finecliper.serve.web import ServeApp

    servers: list[RunningServer] = []

    def make(
        workdir: Path | None = None, serving: Predictor | None = None, **limits
    ) -> RunningServer:
        work = workdir or tmp_path / "work"
        app = ServeApp(serving or predictor, work, ServeLimits(**limits))
        servers.append(RunningServer(app))
        return servers[-1]

    yield make
    for server in servers:
        server.close()
