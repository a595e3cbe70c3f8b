"""Users' own clips, listed in a CSV manifest with columns ``path,label,split[,fold]``.

``path`` is a video file or a frame folder, relative to the manifest's folder (absolute paths
and paths leaving that folder are allowed). ``label`` is a class name; the class order comes
from the ``classes`` argument, else from ``classes.txt`` next to the manifest (one name a line),
else it is the sorted set of labels. ``split`` is train, test or val; with a ``fold`` column a
row puts its clip in ``foldK/<split>``, so a clip appears once per fold that lists it. Folds are
numbered 1..K: a fold outside that range, a row with more fields than the header, and a column
the format does not have are reported as problems (such rows are not read), never guessed at.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finecliper.data.classes import resolve_label
from finecliper.data.readers import register_reader
from finecliper.data.readers.common import Entry, assemble
from finecliper.data.records import DatasetIndex, Problem
from finecliper.errors import ConfigError, LayoutError
from finecliper.io import read_text

REQUIRED_COLUMNS = ("path", "label", "split")
KNOWN_COLUMNS = (*REQUIRED_COLUMNS, "fold")
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


def _parse_row(values: dict[str, Any], where: str, has_fold: bool) -> _Row | Problem:
    # DictReader files the fields beyond the header under the key None.
    extra = [field for field in values.get(None) or [] if field.strip()]
    if extra:
        return Problem(where, f"{len(extra)} field(s) more than the header's columns: {extra}")
    columns = KNOWN_COLUMNS if has_fold else REQUIRED_COLUMNS
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
    text = read_text(manifest, encoding="utf-8-sig")  # an encoding error names file and line
    try:
        return _parse_manifest(manifest, text)
    except csv.Error as exc:
        raise LayoutError(f"{manifest}: not a CSV manifest ({exc})") from exc


def _parse_manifest(manifest: Path, text: str) -> tuple[list[_Row], list[Problem], bool]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip().lower() for name in reader.fieldnames or []]
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise LayoutError(
            f"{manifest}: not a manifest, missing column(s) {', '.join(missing)} "
            f"(header must be path,label,split[,fold]; found {header})"
        )
    reader.fieldnames = header
    problems = _header_problems(manifest, header)
    has_fold = "fold" in header
    rows = []
    for values in reader:
        parsed = _parse_row(values, f"{manifest}:{reader.line_num}", has_fold)
        (problems if isinstance(parsed, Problem) else rows).append(parsed)
    return rows, problems, has_fold


def _header_problems(manifest: Path, header: list[str]) -> list[Problem]:
    """Columns the format does not have (a misspelt ``fold`` would merge every fold)."""
    unknown = [name or "(empty)" for name in header if name not in KNOWN_COLUMNS]
    repeated = sorted({name for name in header if name and header.count(name) > 1})
    problems = []
    if unknown:
        problems.append(
            Problem(
                f"{manifest}:1",
                f"unknown column(s) {', '.join(unknown)} ignored "
                "(a manifest has path,label,split[,fold])",
            )
        )
    if repeated:
        problems.append(Problem(f"{manifest}:1", f"column(s) {', '.join(repeated)} repeated"))
    return problems


def _fold_range_problems(
    manifest: Path, rows: list[_Row], num_folds: int | None
) -> tuple[list[_Row], list[Problem]]:
    """Rows whose fold is within 1..K, and a problem for each other row.

    K is ``num_folds`` when the dataset fixes it, else the folds run 1, 2, ... without a gap,
    so a stray fold 99 among folds 1..5 is caught either way.
    """
    found = sorted({row.fold for row in rows if row.fold is not None})
    count = num_folds if num_folds is not None else _contiguous_from_one(found)
    kept, problems = [], []
    for row in rows:
        if row.fold is None or row.fold <= count:
            kept.append(row)
            continue
        allowed = f"1..{count}" if count else "1.. (there is no fold 1)"
        listed = ", ".join(map(str, found))
        problems.append(
            Problem(
                row.where,
                f"fold {row.fold} out of range {allowed} ({manifest.name} lists folds {listed})",
            )
        )
    return kept, problems


def _contiguous_from_one(folds: list[int]) -> int:
    """The largest K such that folds 1..K are all listed (0 without a fold 1)."""
    count = 0
    while count + 1 in folds:
        count += 1
    return count


def _class_order(
    manifest: Path, classes: Sequence[str] | None, rows: list[_Row]
) -> tuple[str, ...]:
    """The given classes, else classes.txt next to the manifest, else the sorted labels."""
    if classes is not None:
        return _checked_classes(list(classes), "classes")
    classes_file = manifest.parent / CLASSES_FILE
    if classes_file.is_file():
        text = read_text(classes_file, encoding="utf-8-sig")
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
    num_folds: int | None = None,
) -> DatasetIndex:
    """Read a manifest CSV; ``fold`` keeps only that fold's rows (needs a fold column).

    ``num_folds`` is the dataset's fixed number of folds, when it has one (SynthDFER: 5).
    """
    manifest = Path(manifest)
    if not manifest.is_file():
        raise LayoutError(f"{manifest}: no such manifest file (expected a CSV path,label,split)")
    rows, problems, has_fold = _read_rows(manifest)
    rows, fold_problems = _fold_range_problems(manifest, rows, num_folds)
    problems.extend(fold_problems)
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
