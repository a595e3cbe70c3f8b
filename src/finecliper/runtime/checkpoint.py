"""Checkpoints: the trained weights only, with the resolved config and class names inside.

A checkpoint is one safetensors file holding the adapters, temporal module and temperatures
(a few tens of MB at ViT-B/16, not the 600 MB backbone) and, in its metadata, the config and
class names, so it is usable alone: ``load_checkpoint(path)`` rebuilds the model around the
backbone the config names. It is written atomically. Training state for ``--resume``
(optimizer, scheduler, history) is the training program's own file (``train.state``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from finecliper.config import Config, build_config
from finecliper.data.classes import prompt_names
from finecliper.errors import FineCLIPERError
from finecliper.io import atomic_open
from finecliper.model.network import FineCLIPER, build_model

FORMAT = "finecliper-checkpoint-1"


@dataclass
class LoadedCheckpoint:
    model: FineCLIPER
    config: Config
    classes: tuple[str, ...]
    extra: dict[str, Any]


def save_checkpoint(
    path: str | Path,
    model: FineCLIPER,
    config: Config,
    classes: tuple[str, ...],
    extra: dict[str, Any] | None = None,
) -> None:
    tensors = {
        name: value.contiguous().cpu() for name, value in model.trainable_state_dict().items()
    }
    metadata = {
        "format": FORMAT,
        "config": json.dumps(config.model_dump(mode="json")),
        "classes": json.dumps(list(classes)),
        "extra": json.dumps(extra or {}),
    }
    with atomic_open(path, "wb") as handle:
        handle.write(save_safetensors(tensors, metadata=metadata))


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise FineCLIPERError(f"{path}: checkpoint does not exist")
    data = path.read_bytes()
    try:
        tensors = load_safetensors(data)
        header_size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_size])
    except (SafetensorError, ValueError) as exc:
        raise FineCLIPERError(f"{path}: not a safetensors checkpoint ({exc})") from None
    metadata = header.get("__metadata__") or {}
    if metadata.get("format") != FORMAT:
        raise FineCLIPERError(f"{path}: not a finecliper checkpoint (format {FORMAT} expected)")
    return tensors, metadata


def read_checkpoint_info(path: str | Path) -> tuple[Config, tuple[str, ...], dict[str, Any]]:
    """Config, class names and extra metadata of a checkpoint, without building the model."""
    path = Path(path)
    _, metadata = _read(path)
    config = build_config(json.loads(metadata["config"]), source=str(path))
    return config, tuple(json.loads(metadata["classes"])), json.loads(metadata["extra"])


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    path = Path(path)
    tensors, metadata = _read(path)
    config = build_config(json.loads(metadata["config"]), source=str(path))
    classes = tuple(json.loads(metadata["classes"]))
    model = build_model(config.model, prompt_names(classes), num_frames=config.data.num_frames)
    model.load_trainable_state_dict(tensors)
    model.to(device).eval()
    return LoadedCheckpoint(model, config, classes, json.loads(metadata["extra"]))
