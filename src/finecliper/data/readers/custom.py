"""Users' own clips, listed in a CSV manifest with columns ``path,label,split[,fold]``.

``path`` is a video file or a frame folder, relative to the manifest's folder (absolute paths
and paths leaving that folder are allowed). ``label`` is a class name; the class order comes
from the ``classes`` argument, else from ``classes.txt`` next to the manifest (one name a line),
else it is the sorted set of labels. ``split`` is train, test or val; with a ``fold`` column a
row puts its clip in ``foldK/<split>``, so a clip appears once per fold that lists it.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from finecliper.data.classes import resolve_label
from finecliper.data.readers import register_reader
from finecliper.data.readers.common import Entry, assemble
from finecliper.data.records import DatasetIndex, Problem
from finecliper.errors import ConfigError, LayoutError

REQUIRED_COLUMNS = ("path", "label", "split")
SPLITS = ("train", "test", "val")
CLASSES_FILE = "classes.txt"


@dataclass(frozen=True)
class _Row:
    where: str
    path: str
    label: str
    split: str
    fold: int | None


def _checked_classes(names: Sequence[str], source: str) -> tuple[str, ...]:
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if not names or duplicates:
        detail = f"duplicate classes {duplicates}" if duplicates else "no class names"
        raise ConfigError(f"{source}: {detail}")
    return tuple(names)


def _parse_row(values: dict[str, str | None], where: str, has_fold: bool) -> _Row | Problem:
    columns = (*REQUIRED_COLUMNS, "fold") if has_fold else REQUIRED_COLUMNS
    cleaned = {column: (values.get(column) or "").strip() for column in columns}
    empty = [column for column, value in cleaned.items() if not value]
    if empty:
        return Problem(where, f"missing value in column(s) {', '.join(empty)}")
    split = cleaned["split"].lower()
    if split not in SPLITS:
        return Problem(where, f"unknown split {cleaned['split']!r} (expected train, test or val)")
    fold = None
    if has_fold:
        if not cleaned["fold"].isdigit() or int(cleaned["fold"]) < 1:
            return Problem(where, f"fold must be a positive integer, found {cleaned['fold']!r}")
        fold = int(cleaned["fold"])
    return _Row(where, cleaned["path"], cleaned["label"], split, fold)


def _read_rows(manifest: Path) -> tuple[list[_Row], list[Problem], bool]:
    """Well-formed rows, the problems of the others, and whether there is a fold column."""
    try:
        return _parse_manifest(manifest)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise LayoutError(f"{manifest}: not a UTF-8 CSV manifest ({exc})") from exc


def _parse_manifest(manifest: Path) -> tuple[list[_Row], list[Problem], bool]:
    with manifest.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip().lower() for name in reader.fieldnames or []]
        missing = [column for column in REQUIRED_COLUMNS if column not in header]
        if missing:
            raise LayoutError(
                f"{manifest}: not a manifest, missing column(s) {', '.join(missing)} "
                f"(header must be path,label,split[,fold]; found {header})"
            )
        reader.fieldnames = header
        has_fold = "fold" in header
        rows, problems = [], []
        for values in reader:
            parsed = _parse_row(values, f"{manifest}:{reader.line_num}", has_fold)
            (problems if isinstance(parsed, Problem) else rows).append(parsed)
    return rows, problems, has_fold


def _class_order(
    manifest: Path, classes: Sequence[str] | None, rows: list[_Row]
) -> tuple[str, ...]:
    """The given classes, else classes.txt next to the manifest, else the sorted labels."""
    if classes is not None:
        return _checked_classes(list(classes), "classes")
    classes_file = manifest.parent / CLASSES_FILE
    if classes_file.is_file():
        text = classes_file.read_text(encoding="utf-8-sig")
        names = [line.strip() for line in text.splitlines() if line.strip()]
        return _checked_classes(names, str(classes_file))
    return tuple(sorted({row.label for row in rows}))


def _split_names(rows: list[_Row], has_fold: bool) -> list[str]:
    present = {(row.fold, row.split) for row in rows}
    folds = sorted({row.fold for row in rows if row.fold is not None}) if has_fold else [None]
    names = []
    for fold in folds:
        for split in SPLITS:
            if split != "val" or (fold, split) in present:
                names.append(DatasetIndex.split_name(split, fold))
    return names


@register_reader("custom", options={"classes": "classes", "deep": "deep"})
def read_custom(
    manifest: Path,
    *,
    fold: int | None = None,
    classes: Sequence[str] | None = None,
    dataset_name: str = "custom",
    deep: bool = False,
) -> DatasetIndex:
    """Read a manifest CSV; ``fold`` keeps only that fold's rows (needs a fold column)."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise LayoutError(f"{manifest}: no such manifest file (expected a CSV path,label,split)")
    rows, problems, has_fold = _read_rows(manifest)
    # From every row, before any fold filter, so the order is the same for all folds.
    class_names = _class_order(manifest, classes, rows)
    if fold is not None:
        if not has_fold:
            raise ConfigError(f"{manifest}: fold {fold} asked for, but there is no fold column")
        folds = sorted({row.fold for row in rows if row.fold is not None})
        if fold not in folds:
            raise ConfigError(f"{manifest}: no rows for fold {fold} (folds: {folds})")
        rows = [row for row in rows if row.fold == fold]
    entries = []
    for row in rows:
        label = resolve_label(row.label, class_names, synonyms=False)
        if label is None:
            known = ", ".join(class_names)
            problems.append(Problem(row.where, f"unknown label {row.label!r} (classes: {known})"))
            continue
        path = Path(row.path)
        path = path if path.is_absolute() else manifest.parent / path
        split = DatasetIndex.split_name(row.split, row.fold)
        entries.append(Entry(row.path, path, label, split, row.fold, where=row.where))
    if not entries:
        problems.append(Problem(str(manifest), "no usable clips listed"))
    return assemble(
        dataset=dataset_name,
        root=manifest,
        classes=class_names,
        split_names=_split_names(rows, has_fold),
        entries=entries,
        problems=problems,
        source=f"manifest {manifest.name}",
        deep=deep,
    )
