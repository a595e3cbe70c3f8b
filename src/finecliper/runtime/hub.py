"""Model repositories in the Hugging Face Hub layout: export a checkpoint, load one back.

A model folder holds ``model.safetensors`` (the checkpoint itself, byte for byte, so loading it
gives the same weights), ``config.json`` (the resolved config, class names, variant, modalities,
the backbone it needs and how to obtain it, and the run's metrics) and ``README.md`` (a model
card). Uploaded as a Hub repository it loads by id: ``Predictor.from_pretrained("user/name")``,
``finecliper predict --model user/name``. Hub ids go through ``huggingface_hub`` (cached;
``HF_HUB_OFFLINE=1`` reads the cache only).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from finecliper.assets_paths import DEMO_BACKBONE_NAME, demo_backbone_dir
from finecliper.errors import FineCLIPERError
from finecliper.io import atomic_open, read_text, write_json, write_text
from finecliper.model.batch import VARIANT_MODALITIES
from finecliper.runtime.checkpoint import LoadedCheckpoint, load_checkpoint, read_checkpoint_info
from finecliper.runtime.model_card import model_card

MODEL_FORMAT = "finecliper-model-1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_BACKBONE_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


@dataclass(frozen=True)
class ModelSource:
    """Where a model was found: ``path`` is a checkpoint file or a model folder on disk;
    ``name`` is what the user gave (a hub id stays a hub id in reports)."""

    path: Path
    name: str

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS_FILE if self.path.is_dir() else self.path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def backbone_identity(name: str) -> dict[str, Any]:
    """Which backbone weights a model needs, their hash where they are on this machine, and
    how a user obtains them."""
    if name == DEMO_BACKBONE_NAME:
        weights = demo_backbone_dir() / "model.safetensors"
        return {
            "name": name,
            "source": "bundled",
            "sha256": sha256_file(weights),
            "obtain": "ships inside the finecliper package (assets/demo_backbone)",
        }
    path = Path(name).expanduser()
    if path.exists():
        weights = path if path.is_file() else _backbone_weights(path)
        return {
            "name": name,
            "source": "local",
            "sha256": sha256_file(weights) if weights is not None else None,
            "obtain": "a local file of the training machine: get the same weights (same sha256) "
            "and pass model.backbone=PATH",
        }
    return {
        "name": name,
        "source": "hub",
        "hub_id": name,
        "obtain": "downloaded from the Hugging Face Hub by transformers on first use and cached; "
        "with HF_HUB_OFFLINE=1 it must already be in the cache",
    }


def _backbone_weights(directory: Path) -> Path | None:
    return next((directory / f for f in _BACKBONE_WEIGHTS if (directory / f).is_file()), None)


def run_metrics_path(checkpoint: Path) -> Path | None:
    """RUN/metrics.json for a checkpoint RUN/checkpoints/X.safetensors, if it exists."""
    if checkpoint.parent.name != "checkpoints":
        return None
    path = checkpoint.parent.parent / "metrics.json"
    return path if path.is_file() else None


def export_model(
    checkpoint: str | Path, out_dir: str | Path, metrics_file: str | Path | None = None
) -> Path | None:
    """Write the model folder for ``checkpoint`` into ``out_dir``; returns the metrics.json
    used. ``metrics_file`` defaults to the run's metrics.json next to the checkpoint; the card
    says so when there is none."""
    checkpoint, out = Path(checkpoint), Path(out_dir)
    config, classes, extra = read_checkpoint_info(checkpoint)
    metrics_path = Path(metrics_file) if metrics_file is not None else run_metrics_path(checkpoint)
    metrics = _read_metrics(metrics_path) if metrics_path is not None else None
    description = {
        "format": MODEL_FORMAT,
        "library_name": "finecliper",
        "model_type": "finecliper",
        "variant": config.model.variant,
        "dataset": config.data.dataset,
        "fold": config.data.fold,
        "classes": list(classes),
        "modalities": list(VARIANT_MODALITIES[config.model.variant]),
        "num_frames": config.data.num_frames,
        "image_size": config.data.image_size,
        "backbone": backbone_identity(config.model.backbone),
        "weights": {"file": WEIGHTS_FILE, "sha256": sha256_file(checkpoint)},
        "checkpoint": {"file": checkpoint.name, **extra},
        "metrics": metrics,
        "config": config.model_dump(mode="json"),
    }
    with atomic_open(out / WEIGHTS_FILE, "wb") as handle:
        handle.write(checkpoint.read_bytes())
    write_json(out / CONFIG_FILE, description)
    write_text(out / CARD_FILE, model_card(description))
    return metrics_path


def _read_metrics(path: Path) -> dict[str, Any]:
    try:
        return json.loads(read_text(path))
    except (OSError, ValueError) as exc:
        raise FineCLIPERError(f"{path}: cannot read the run's metrics ({exc})") from None


def resolve_model(id_or_path: str | Path) -> ModelSource:
    """A checkpoint file, a model folder, or a hub id (downloaded or read from the cache)."""
    name = str(id_or_path)
    path = Path(name).expanduser()
    if path.is_dir():
        _check_model_folder(path)
        return ModelSource(path, name)
    if path.is_file():
        return ModelSource(path, name)
    if _HUB_ID.match(name) and path.suffix != ".safetensors":
        folder = _download(name)
        _check_model_folder(folder)
        return ModelSource(folder, name)
    raise FineCLIPERError(f"{name}: no such checkpoint or model folder, and not a hub id")


def _check_model_folder(folder: Path) -> None:
    config = folder / CONFIG_FILE
    if not (folder / WEIGHTS_FILE).is_file() or not config.is_file():
        raise FineCLIPERError(
            f"{folder}: not a finecliper model folder ({WEIGHTS_FILE} and {CONFIG_FILE} "
            "expected; `finecliper export` writes one)"
        )
    try:
        model_format = json.loads(read_text(config)).get("format")
    except (OSError, ValueError) as exc:
        raise FineCLIPERError(f"{config}: not valid JSON ({exc})") from None
    if model_format != MODEL_FORMAT:
        raise FineCLIPERError(f"{config}: format {model_format!r}, expected {MODEL_FORMAT!r}")


def _download(repo_id: str) -> Path:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = snapshot_download(repo_id, allow_patterns=[WEIGHTS_FILE, CONFIG_FILE, CARD_FILE])
    except LocalEntryNotFoundError:
        if constants.HF_HUB_OFFLINE:
            raise FineCLIPERError(
                f"{repo_id}: not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and "
                "HF_HUB_OFFLINE=1 forbids downloading it: download it once online, or pass a "
                "local model folder"
            ) from None
        raise FineCLIPERError(
            f"{repo_id}: the Hugging Face Hub cannot be reached and the model is not cached"
        ) from None
    except HfHubHTTPError as exc:
        reason = str(exc).splitlines()[0]
        message = f"{repo_id}: cannot download from the Hugging Face Hub: {reason}"
        raise FineCLIPERError(message) from None
    return Path(folder)


def load_model(
    id_or_path: str | Path, device: str | torch.device = "cpu"
) -> tuple[LoadedCheckpoint, ModelSource]:
    """Load a checkpoint file, a model folder or a hub id onto ``device``."""
    source = resolve_model(id_or_path)
    return load_checkpoint(source.weights, device), source
