"""Dataset readers: one entry point, ``read_dataset``, over every registered dataset.

Adding a dataset is one new module in this package whose reader function carries
``@register_reader("name", options={...})``; ``finecliper data check``, ``describe``, ``prepare
faces`` and the run config's ``data.dataset`` then accept the name. The reader is called as
``reader(root, fold=..., **params)``, where ``options`` maps each reader option it takes (the
keys of :data:`OPTION_DEFAULTS`) to its parameter name, and only the options that were given
are passed, so the function's own defaults apply otherwise. A reader module is imported only
when its dataset is read (this package's ``__init__`` stays light for ``finecliper --help``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finecliper.errors import ConfigError, LayoutError
from finecliper.registry import Registry

if TYPE_CHECKING:
    from finecliper.data.records import DatasetIndex

__all__ = [
    "read_custom",
    "read_dataset",
    "read_dfew",
    "read_ferv39k",
    "read_mafw",
    "reader_names",
    "register_reader",
]

# Every reader option with its default. Callers (CLI, training config) pass the whole set for
# any dataset; an option of another dataset is accepted only at its default or None.
OPTION_DEFAULTS: dict[str, Any] = {
    "dfew_frames": "clip_224x224",
    "mafw_source": "frames",
    "mafw_captions": False,
    "deep": False,
    "classes": None,
}

Reader = Callable[..., "DatasetIndex"]
READERS: Registry[Reader] = Registry("dataset", __name__, "register_reader")

# The readers' functions, importable from here as before the registry (loaded on first use).
_EXPORTS = {
    "read_custom": "custom",
    "read_dfew": "dfew",
    "read_ferv39k": "ferv39k",
    "read_mafw": "mafw",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def register_reader(name: str, *, options: dict[str, str]) -> Callable[[Reader], Reader]:
    """Decorator: read dataset ``name`` with this function; ``options`` maps reader option ->
    parameter (e.g. ``{"dfew_frames": "frames", "deep": "deep"}``)."""
    unknown = sorted(set(options) - set(OPTION_DEFAULTS))
    if unknown:
        raise ConfigError(f"dataset {name!r}: unknown reader option(s) {', '.join(unknown)}")
    return READERS.register(name, options=options)


def reader_names() -> tuple[str, ...]:
    """The datasets that can be read, sorted (their modules are not imported)."""
    return READERS.names()


def _dataset_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(OPTION_DEFAULTS))
    if unknown:
        known = ", ".join(OPTION_DEFAULTS)
        raise ConfigError(f"unknown reader option(s) {', '.join(unknown)} (known: {known})")
    accepted = READERS.info(name)["options"]
    chosen = {}
    for key, value in options.items():
        if value is None:
            continue
        if key in accepted:
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
    if name not in reader_names():
        raise ConfigError(f"unknown dataset {name!r} (known: {', '.join(reader_names())})")
    chosen = _dataset_options(name, options)
    root = Path(root)
    if not root.exists():
        raise LayoutError(f"{root}: no such file or folder")
    reader = READERS.get(name)
    parameters = reader.info["options"]
    return reader.target(root, fold=fold, **{parameters[k]: v for k, v in chosen.items()})
