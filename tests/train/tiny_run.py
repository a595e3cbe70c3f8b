"""The overrides that make a training run tiny: 4 frames of 32 px, the tiny backbone, no workers."""

from __future__ import annotations

from pathlib import Path


def tiny_overrides(synth: Path, backbone: Path) -> list[str]:
    return [
        f"data.root={synth}",
        "data.num_frames=4",
        "data.image_size=32",
        "data.num_workers=0",
        f"model.backbone={backbone}",
        "train.epochs=2",
        "train.batch_size=8",
        "train.lr=0.01",
    ]
