"""Training state for ``--resume``: optimizer, scheduler, history, weights and RNG states.

The state is one safetensors file: every tensor (weights, Adam moments, RNG states) is a named
tensor, and everything else (epoch, history, hyper-parameters) is JSON in the file's metadata,
with each tensor replaced by a reference to its name. Neither format can run code, so resuming
from a run folder copied from someone else is safe. The pickle format of earlier versions
(``train_state.pt``) is refused rather than unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_safetensors

from finecliper.errors import FineCLIPERError, InputError
from finecliper.io import atomic_open

STATE_FILE = "train_state.safetensors"
LEGACY_STATE_FILE = "train_state.pt"
FORMAT = "finecliper-train-state-1"
_TENSOR = "__tensor__"  # {"__tensor__": name}: a tensor stored under ``name``
_ITEMS = "__items__"  # {"__items__": [[key, value], ...]}: a dict with non-string keys


def save_training_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (nested dicts, lists, numbers, strings and tensors) plus the RNG states."""
    full = {**state, "rng": _rng_states()}
    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(full, tensors)
    metadata = {"format": FORMAT, "state": json.dumps(tree, allow_nan=False)}
    with atomic_open(path, "wb") as handle:
        handle.write(save_safetensors(tensors, metadata=metadata))


def load_training_state(path: str | Path) -> dict[str, Any]:
    """Read a state written by :func:`save_training_state`; its ``rng`` entry is left to
    :func:`restore_rng_states`."""
    path = Path(path)
    refuse_legacy_state(path.parent)
    if not path.is_file():
        raise InputError(f"{path}: no training state to resume from")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != FORMAT:
                raise InputError(f"{path}: not a finecliper training state ({FORMAT})")
            tensors = {name: handle.get_tensor(name) for name in list(handle.keys())}
        return _decode(json.loads(metadata["state"]), tensors)
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: corrupt training state ({exc})") from None


def refuse_legacy_state(out_dir: Path) -> None:
    """Refuse a run folder whose only training state is in the old pickle format."""
    legacy = out_dir / LEGACY_STATE_FILE
    if legacy.is_file() and not (out_dir / STATE_FILE).is_file():
        raise InputError(
            f"{legacy}: training state in the old pickle format, which could run code when "
            "loaded, so it is not read; start the run again in a new --out folder"
        )


def restore_rng_states(state: dict[str, Any]) -> None:
    rng = state.get("rng") or {}
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if rng.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def _rng_states() -> dict[str, Any]:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def _encode(value: Any, tensors: dict[str, torch.Tensor], name: str = "state") -> Any:
    if isinstance(value, torch.Tensor):
        tensors[name] = value.detach().contiguous().cpu()
        return {_TENSOR: name}
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value):
            return {key: _encode(item, tensors, f"{name}.{key}") for key, item in value.items()}
        return {
            _ITEMS: [[key, _encode(item, tensors, f"{name}.{key}")] for key, item in value.items()]
        }
    if isinstance(value, list | tuple):
        return [_encode(item, tensors, f"{name}.{i}") for i, item in enumerate(value)]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise FineCLIPERError(f"training state: cannot store {name} of type {type(value).__name__}")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if set(value) == {_TENSOR}:
            return tensors[value[_TENSOR]]
        if set(value) == {_ITEMS}:
            return {key: _decode(item, tensors) for key, item in value[_ITEMS]}
        return {key: _decode(item, tensors) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item, tensors) for item in value]
    return value
