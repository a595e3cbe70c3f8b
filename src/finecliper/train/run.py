"""One training run: what it trains, where it writes, and the per-epoch files it leaves.

``loop`` fills a run folder epoch by epoch; ``results`` reads the chosen epoch's test
predictions back from it. Both import this module, never each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from finecliper.config import Config
from finecliper.data.run_data import RunData
from finecliper.io import read_text
from finecliper.model.network import FineCLIPER
from finecliper.train.distributed import Context
from finecliper.train.evaluate import Predictions


@dataclass
class Run:
    config: Config
    out: Path
    data: RunData
    model: FineCLIPER
    device: torch.device
    context: Context
    progress: bool


def predictions_path(out: Path, epoch: int) -> Path:
    (out / "evals").mkdir(parents=True, exist_ok=True)
    return out / "evals" / f"test_epoch{epoch:03d}.npz"


def skipped_path(out: Path, epoch: int) -> Path:
    return out / "evals" / f"skipped_epoch{epoch:03d}.json"


def load_epoch_predictions(out: Path, epoch: int) -> Predictions:
    """The test predictions saved at the end of ``epoch``, with the clips that were skipped."""
    predictions = Predictions.load(str(predictions_path(out, epoch)))
    skipped = json.loads(read_text(skipped_path(out, epoch)))
    predictions.skipped = [(item["index"], item["error"]) for item in skipped]
    return predictions
