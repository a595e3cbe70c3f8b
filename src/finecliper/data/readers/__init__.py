"""Dataset readers: one entry point, ``read_dataset``, over DFEW, FERV39k, MAFW, custom, synth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finecliper.data.readers.custom import read_custom
from finecliper.data.readers.dfew import read_dfew
from finecliper.data.readers.ferv39k import read_ferv39k
from finecliper.data.readers.mafw import read_mafw
from finecliper.data.records import DatasetIndex
from finecliper.errors import ConfigError, LayoutError

__all__ = ["read_custom", "read_dataset", "read_dfew", "read_ferv39k", "read_mafw"]

# Every reader option with its default. Callers (CLI, training config) pass the whole set for
# any dataset; an option of another dataset is accepted only at its default or None.
OPTION_DEFAULTS: dict[str, Any] = {
    "dfew_frames": "clip_224x224",
    "mafw_source": "frames",
    "mafw_captions": False,
    "deep": False,
    "classes": None,
}
DATASET_OPTIONS: dict[str, frozenset[str]] = {
    "dfew": frozenset({"dfew_frames", "deep"}),
    "ferv39k": frozenset({"deep"}),
    "mafw": frozenset({"mafw_source", "mafw_captions", "deep"}),
    "custom": frozenset({"classes", "deep"}),
    "synth": frozenset({"deep"}),
}


def _dataset_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(OPTION_DEFAULTS))
    if unknown:
        known = ", ".join(OPTION_DEFAULTS)
        raise ConfigError(f"unknown reader option(s) {', '.join(unknown)} (known: {known})")
    chosen = {}
    for key, value in options.items():
        if value is None:
            continue
        if key in DATASET_OPTIONS[name]:
            chosen[key] = value
        elif value != OPTION_DEFAULTS[key]:
            raise ConfigError(f"reader option {key}={value!r} does not apply to dataset {name}")
    return chosen


def read_dataset(
    name: str, root: str | Path, *, fold: int | None = None, **options: Any
) -> DatasetIndex:
    """Read dataset ``name`` from ``root`` (for custom: the manifest CSV).

    Options: ``dfew_frames`` ("clip_224x224" or "clip_224x224_16f"), ``mafw_source`` ("frames"
    or "video"), ``mafw_captions`` (bool), ``classes`` (custom class order), ``deep`` (decode
    every frame instead of the first and last of each clip).
    Raises LayoutError when ``root`` does not have the dataset's layout.
    """
    if name not in DATASET_OPTIONS:
        raise ConfigError(f"unknown dataset {name!r} (known: {', '.join(DATASET_OPTIONS)})")
    chosen = _dataset_options(name, options)
    root = Path(root)
    if not root.exists():
        raise LayoutError(f"{root}: no such file or folder")
    deep = bool(chosen.get("deep", False))
    if name == "dfew":
        frames = chosen.get("dfew_frames", OPTION_DEFAULTS["dfew_frames"])
        return read_dfew(root, fold=fold, frames=frames, deep=deep)
    if name == "ferv39k":
        return read_ferv39k(root, fold=fold, deep=deep)
    if name == "mafw":
        return read_mafw(
            root,
            fold=fold,
            source=chosen.get("mafw_source", OPTION_DEFAULTS["mafw_source"]),
            captions=bool(chosen.get("mafw_captions", False)),
            deep=deep,
        )
    if name == "custom":
        return read_custom(root, fold=fold, classes=chosen.get("classes"), deep=deep)
    from finecliper.data.synth import read_synth

    # Only pass what was asked for, so read_synth needs no parameter it does not use.
    return read_synth(root, fold=fold, **({"deep": True} if deep else {}))
