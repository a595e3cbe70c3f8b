"""Live training curves: ``train.tensorboard=true`` writes TensorBoard event files.

The main process writes RUN/tensorboard/ once per epoch (``tensorboard --logdir RUN``): train
loss, learning rate, clips/s, and validation and test UAR/WAR and mean modality weights; each
epoch is flushed, so the curves are live. Without the setting nothing is written or imported.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from finecliper.config import Config
from finecliper.errors import FineCLIPERError

LOG_DIR = "tensorboard"
TRAIN_SCALARS = {"train/loss": "train_loss", "train/lr": "lr", "train/clips_per_s": "clips_per_s"}


class Curves:
    """Writes one epoch's history entry as scalars; a no-op when no writer is given."""

    def __init__(self, writer: Any | None) -> None:
        self.writer = writer

    def log_epoch(self, entry: dict[str, Any]) -> None:
        if self.writer is None:
            return
        step = entry["epoch"]
        for tag, key in TRAIN_SCALARS.items():
            if entry.get(key) is not None:
                self.writer.add_scalar(tag, entry[key], step)
        for split in ("val", "test"):
            scores = entry.get(split)
            if not scores:
                continue
            self.writer.add_scalar(f"{split}/uar", scores["uar"], step)
            self.writer.add_scalar(f"{split}/war", scores["war"], step)
            for modality, weight in scores.get("modality_weights", {}).items():
                self.writer.add_scalar(f"{split}/weight_{modality}", weight, step)
        self.writer.flush()


@contextmanager
def training_curves(config: Config, out: Path, is_main: bool) -> Iterator[Curves]:
    """The run's curve writer, closed at the end and on errors; only the main process of a
    distributed run writes."""
    if not (config.train.tensorboard and is_main):
        yield Curves(None)
        return
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise FineCLIPERError(
            "train.tensorboard=true needs the tensorboard package (pip install tensorboard)"
        ) from None
    writer = SummaryWriter(log_dir=str(out / LOG_DIR))
    try:
        yield Curves(writer)
    finally:
        writer.close()
