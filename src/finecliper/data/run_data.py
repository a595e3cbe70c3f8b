"""From a run config to datasets: the fold's splits, a seeded validation carve-out, inputs.

The validation split is carved from the training fold, stratified by label and seeded, so model
selection never looks at the test split (docs/method.md 3); ``describe`` carves the same clips to
give them label-free descriptions, and a run whose evaluated clips lack them is refused. Clips
the reader found unusable (no frames on disk) are left out of training and listed; in evaluation
they count as wrong and are reported by id, never silently dropped.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from finecliper.config import Config
from finecliper.data.classes import prompt_names
from finecliper.data.dataset import (
    ClipDataset,
    MiddleLocator,
    cache_middle_locator,
    synth_middle_locator,
)
from finecliper.data.pack.read import PackedClipDataset, PackedClips
from finecliper.data.readers import read_dataset
from finecliper.data.records import ClipRecord, DatasetIndex
from finecliper.data.transforms import ClipTransform
from finecliper.errors import ConfigError
from finecliper.model.batch import VARIANT_MODALITIES
from finecliper.text.descriptions import load_descriptions


@dataclass
class RunData:
    index: DatasetIndex
    train: list[ClipRecord]
    val: list[ClipRecord]
    test: list[ClipRecord]
    unusable: list[str] = field(default_factory=list)  # clip ids with no frames on disk

    @property
    def classes(self) -> tuple[str, ...]:
        return self.index.classes

    @property
    def prompts(self) -> list[str]:
        return prompt_names(self.index.classes)


def read_run_data(config: Config) -> RunData:
    data = config.data
    if data.packed:
        index = PackedClips(data.packed).dataset_index()
    elif data.root is None:
        raise ConfigError("data.root: not set (the dataset folder, or the manifest CSV)")
    else:
        index = read_dataset(
            data.dataset, Path(data.root), fold=data.fold, **_reader_options(config)
        )
    train = index.records("train", data.fold)
    test = index.records("test", data.fold)
    for split, records in (("train", train), ("test", test)):
        if not records:
            raise ConfigError(
                f"{index.root}: no {split} clips for fold {data.fold} (see finecliper data check)"
            )
    usable = [r for r in train if r.num_frames]
    unusable = [r.clip_id for r in train if not r.num_frames]
    train, val = carve_validation(usable, data.val_fraction, config.train.seed)
    return RunData(index, train, val, test, unusable)


def _reader_options(config: Config) -> dict:
    data = config.data
    if data.dataset == "dfew":
        return {"dfew_frames": data.dfew_frames}
    if data.dataset == "mafw":
        return {"mafw_source": data.mafw_source, "mafw_captions": data.mafw_captions}
    return {}


def carve_validation(
    records: list[ClipRecord], fraction: float, seed: int
) -> tuple[list[ClipRecord], list[ClipRecord]]:
    """Split off ``fraction`` of each class (at least one clip of classes with >= 2)."""
    if fraction <= 0:
        return list(records), []
    rng = random.Random(seed)
    by_label: dict[int, list[ClipRecord]] = {}
    for record in records:
        by_label.setdefault(record.label, []).append(record)
    val_ids: set[str] = set()
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda r: r.clip_id)
        rng.shuffle(group)
        take = max(1, round(len(group) * fraction)) if len(group) >= 2 else 0
        val_ids.update(r.clip_id for r in group[:take])
    train = [r for r in records if r.clip_id not in val_ids]
    val = [r for r in records if r.clip_id in val_ids]
    return train, val


def middle_locator(config: Config) -> MiddleLocator | None:
    if config.data.faces_cache:
        return cache_middle_locator(Path(config.data.faces_cache))
    if config.data.dataset == "synth":
        return synth_middle_locator
    return None


def descriptions_for(config: Config, split: str) -> dict[str, str]:
    """Descriptions by clip id for ``split`` (train prefers label-shown ones, test never)."""
    path = descriptions_path(config)
    if config.model.zero_shot_label_free:
        split = "test"  # label-free descriptions only, for training clips too
    return load_descriptions(path, split=split) if path else {}


def descriptions_path(config: Config) -> str | None:
    """The descriptions file a run reads: data.descriptions, or SynthDFER's own."""
    path = config.data.descriptions
    if path is None and config.data.dataset == "synth" and config.data.root:
        default = Path(config.data.root) / "descriptions.jsonl"
        path = str(default) if default.is_file() else None
    return path


def check_evaluated_text(config: Config, data: RunData) -> None:
    """Refuse a run whose validation or test clips (and training clips, label-free zero-shot)
    lack label-free descriptions beyond data.max_missing_text: its epoch would be chosen on
    another input mix than it is tested on."""
    path = descriptions_path(config)
    if path is None or "text" not in VARIANT_MODALITIES[config.model.variant]:
        return
    allowed = config.data.max_missing_text
    short = []
    checked = {"val": data.val, "test": data.test}
    if config.model.zero_shot_label_free:
        checked["train"] = data.train  # trained on label-free text alone
    for split, records in checked.items():
        described = descriptions_for(config, split)
        missing = sum(r.clip_id not in described for r in records)
        if records and missing > allowed * len(records):
            short.append(
                f"{split}: {missing} of {len(records)} clips have no label-free description"
            )
    if short:
        raise ConfigError(
            f"data.descriptions {path}: {'; '.join(short)} (data.max_missing_text={allowed:g}). "
            "Describe the evaluated clips: `finecliper describe` with this run's --seed and "
            "--val-fraction, or --both-ways"
        )


def make_dataset(config: Config, records: list[ClipRecord], *, train: bool) -> ClipDataset:
    split = "train" if train else "test"
    if config.data.packed:
        return PackedClipDataset(
            records,
            pack=config.data.packed,
            transform=ClipTransform.from_config(config.data, train=train),
            num_frames=config.data.num_frames,
            train=train,
            descriptions=descriptions_for(config, split) if config.data.descriptions else None,
            seed=config.train.seed,
        )
    return ClipDataset(
        records,
        transform=ClipTransform.from_config(config.data, train=train),
        num_frames=config.data.num_frames,
        train=train,
        middle=middle_locator(config),
        descriptions=descriptions_for(config, split),
        seed=config.train.seed,
    )
