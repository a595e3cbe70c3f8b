"""Training state for ``--resume``: optimizer, scheduler, history and the trainable weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from finecliper.errors import FineCLIPERError
from finecliper.io import atomic_open

STATE_FILE = "train_state.pt"


def save_training_state(path: str | Path, state: dict[str, Any]) -> None:
    with atomic_open(path, "wb") as handle:
        torch.save(state, handle)


def load_training_state(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FineCLIPERError(f"{path}: no training state to resume from")
    return torch.load(path, map_location="cpu", weights_only=False)
