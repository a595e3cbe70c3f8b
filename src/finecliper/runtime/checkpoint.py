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
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_safetensors

from finecliper.config import Config, build_config
from finecliper.data.classes import prompt_names
from finecliper.errors import FineCLIPERError, InputError
from finecliper.io import atomic_open, dumps_json
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
        "config": dumps_json(config.model_dump(mode="json")),
        "classes": dumps_json(list(classes)),
        "extra": dumps_json(extra or {}),
    }
    with atomic_open(path, "wb") as handle:
        handle.write(save_safetensors(tensors, metadata=metadata))


def _metadata(path: Path) -> dict[str, str]:
    """The checkpoint's metadata, read from its header only (not the whole file)."""
    if not path.is_file():
        raise InputError(f"{path}: checkpoint does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a safetensors checkpoint ({exc})") from None
    if metadata.get("format") != FORMAT:
        raise InputError(f"{path}: not a finecliper checkpoint (format {FORMAT} expected)")
    return metadata


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor, one at a time; a non-finite one (a diverged run) is refused by name."""
    tensors = {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            for name in list(handle.keys()):  # safe_open handles are not iterable
                tensor = handle.get_tensor(name)
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    raise InputError(
                        f"{path}: tensor {name} holds NaN or infinite values (a diverged run?)"
                    )
                tensors[name] = tensor
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable checkpoint ({exc})") from None
    return tensors


def _info(path: Path, metadata: dict[str, str]) -> tuple[Config, tuple[str, ...], dict[str, Any]]:
    try:
        tree, classes, extra = (json.loads(metadata[key]) for key in ("config", "classes", "extra"))
    except KeyError as exc:
        raise InputError(f"{path}: checkpoint metadata lacks {exc}") from None
    except ValueError as exc:
        raise InputError(f"{path}: checkpoint metadata is not valid JSON ({exc})") from None
    if not isinstance(tree, dict) or not isinstance(extra, dict):
        raise InputError(f"{path}: checkpoint config and extra must be JSON objects")
    if not classes or not all(isinstance(name, str) and name for name in classes):
        raise InputError(f"{path}: checkpoint classes must be a list of names")
    return build_config(tree, source=str(path)), tuple(classes), extra


def read_checkpoint_info(path: str | Path) -> tuple[Config, tuple[str, ...], dict[str, Any]]:
    """Config, class names and extra metadata of a checkpoint, without building the model."""
    path = Path(path)
    return _info(path, _metadata(path))


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    path = Path(path)
    config, classes, extra = _info(path, _metadata(path))
    tensors = _read_tensors(path)
    model = build_model(config.model, prompt_names(classes), num_frames=config.data.num_frames)
    try:
        model.load_trainable_state_dict(tensors)
    except (FineCLIPERError, RuntimeError, KeyError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: weights do not fit its config ({first_line})") from None
    model.to(device).eval()
    return LoadedCheckpoint(model, config, classes, extra)
