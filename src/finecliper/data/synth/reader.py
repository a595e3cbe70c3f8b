"""``read_synth``: check a SynthDFER folder and read its manifest with the custom reader."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from finecliper.data.records import DatasetIndex
from finecliper.data.synth.generate import FOLDS, GENERATOR
from finecliper.data.synth.scenario import CLASSES
from finecliper.errors import ConfigError, LayoutError
from finecliper.io import read_text

REQUIRED = ("meta.json", "classes.txt", "descriptions.jsonl", "clips")


def _check_layout(root: Path) -> dict[str, Any]:
    """The folder's meta.json, after checking every index file is present (manifest last)."""
    if not root.is_dir():
        raise LayoutError(
            f"{root}: not a folder (expected a SynthDFER folder from `finecliper synth`)"
        )
    meta_path = root / "meta.json"
    if not meta_path.is_file():
        raise LayoutError(f"{root}: not a SynthDFER folder, missing meta.json")
    try:
        meta = json.loads(read_text(meta_path))
    except (OSError, ValueError) as exc:
        raise LayoutError(f"{meta_path}: unreadable ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("generator") != GENERATOR:
        raise LayoutError(f"{meta_path}: not written by the SynthDFER generator")
    if not (root / "manifest.csv").is_file():
        raise LayoutError(
            f"{root}: incomplete SynthDFER, missing manifest.csv (the generation was "
            "interrupted?); rerun `finecliper synth` with the same settings to finish it"
        )
    missing = [name for name in REQUIRED if not (root / name).exists()]
    if missing:
        raise LayoutError(f"{root}: incomplete SynthDFER, missing {', '.join(missing)}")
    names = read_text(root / "classes.txt").split()
    if tuple(names) != CLASSES:
        raise LayoutError(f"{root / 'classes.txt'}: expected {', '.join(CLASSES)}, found {names}")
    return meta


def read_synth(root: Path, *, fold: int | None = None, **options: Any) -> DatasetIndex:
    """Read a SynthDFER folder; ``fold`` (1..5) keeps one fold, else all five.

    Option: ``deep`` (decode every frame). Record ids are the clip folder names, the keys of
    descriptions.jsonl.
    """
    unknown = sorted(set(options) - {"deep"})
    if unknown:
        raise ConfigError(f"synth: unknown reader option(s) {', '.join(unknown)} (known: deep)")
    root = Path(root)
    meta = _check_layout(root)
    if fold is not None and not 1 <= fold <= FOLDS:
        raise ConfigError(f"synth: fold must be 1..{FOLDS}, got {fold}")
    from finecliper.data.readers.custom import read_custom

    index = read_custom(
        root / "manifest.csv",
        fold=fold,
        classes=CLASSES,
        dataset_name="synth",
        deep=bool(options.get("deep", False)),
        num_folds=FOLDS,
    )
    for split, records in index.splits.items():
        index.splits[split] = [
            dataclasses.replace(record, clip_id=record.path.parent.name) for record in records
        ]
    index.root = root
    index.source = f"SynthDFER v{meta.get('version')} seed {meta.get('seed')}"
    return index
