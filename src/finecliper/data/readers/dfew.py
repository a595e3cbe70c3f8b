"""DFEW in its official layout: ``Clip/<frames folder>/<id>/*.jpg`` + ``EmoLabel_DataSplit``.

``EmoLabel_DataSplit/{train,test}(single-labeled)/set_K.csv`` hold ``video_name,label`` with
``video_name`` the clip number (folders are zero-padded to five digits) and labels 1..7 in the
order of ``DFEW_CLASSES``. Third-party copies renumbered 0..6 exist; reading one with 1..7 would
shift every label by one class, so such a file is refused, never shifted silently.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from finecliper.data.classes import DFEW_CLASSES
from finecliper.data.readers import register_reader
from finecliper.data.readers.common import Entry, assemble, check_fold
from finecliper.data.records import DatasetIndex, Problem
from finecliper.errors import ConfigError, LayoutError
from finecliper.io import read_text

FRAME_FOLDERS = ("clip_224x224", "clip_224x224_16f")
RESAMPLED_FRAMES = 16  # every clip of clip_224x224_16f has exactly this many frames
SPLIT_DIR = "EmoLabel_DataSplit"
LIST_DIRS = {"train": "train(single-labeled)", "test": "test(single-labeled)"}
# With at least this many clips all exactly 16 frames long, the folder is the resampled one.
RESAMPLED_LOOKALIKE_MIN_CLIPS = 20


def _frame_root(root: Path, frames: str) -> Path:
    for candidate in (root / "Clip" / frames, root / frames):
        if candidate.is_dir():
            return candidate
    message = f"{root}: no Clip/{frames} folder, so this is not a DFEW root with {frames} frames"
    other = next(name for name in FRAME_FOLDERS if name != frames)
    if (root / "Clip" / other).is_dir() or (root / other).is_dir():
        message += f" (it has {other}: pass --dfew-frames {other} to read that one)"
    raise LayoutError(message)


def _list_files(root: Path, folds: tuple[int, ...]) -> dict[tuple[int, str], Path]:
    files = {
        (fold, split): root / SPLIT_DIR / folder / f"set_{fold}.csv"
        for fold in folds
        for split, folder in LIST_DIRS.items()
    }
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        raise LayoutError(f"{root}: not a DFEW root, missing split file(s): {', '.join(missing)}")
    return files


def _read_rows(path: Path) -> tuple[list[tuple[int, str, int]], list[Problem]]:
    """(line, video number, label) per well-formed row of a split CSV."""
    text = read_text(path, encoding="utf-8-sig")  # an encoding error names file and line
    try:
        return _parse_csv(path, text)
    except csv.Error as exc:
        raise LayoutError(f"{path}: not a DFEW split CSV ({exc})") from exc


def _parse_csv(path: Path, text: str) -> tuple[list[tuple[int, str, int]], list[Problem]]:
    rows: list[tuple[int, str, int]] = []
    problems: list[Problem] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [field.strip().lower() for field in next(reader, [])]
    if header[:2] != ["video_name", "label"]:
        raise LayoutError(f"{path}: expected the header video_name,label, found {header}")
    if any(header[2:]):
        extra = ", ".join(name for name in header[2:] if name)
        problems.append(Problem(f"{path}:1", f"unknown column(s) {extra} ignored"))
    for fields in reader:
        where = f"{path}:{reader.line_num}"
        if not any(field.strip() for field in fields):
            continue
        # Official rows have exactly two fields: more is a different file, not DFEW's list.
        if any(field.strip() for field in fields[2:]):
            problems.append(Problem(where, f"expected <clip number>,<label>, found {fields}"))
            continue
        try:
            video, label = (int(field) for field in fields[:2])
        except ValueError:
            problems.append(Problem(where, f"expected <clip number>,<label>, found {fields}"))
            continue
        rows.append((reader.line_num, f"{video:05d}", label))
    return rows, problems


def _is_zero_indexed(labels: set[int]) -> bool:
    return 0 in labels and len(DFEW_CLASSES) not in labels


@register_reader("dfew", options={"dfew_frames": "frames", "deep": "deep"})
def read_dfew(
    root: Path, *, fold: int | None = None, frames: str = "clip_224x224", deep: bool = False
) -> DatasetIndex:
    """Read DFEW's single-label 5-fold protocol from ``root`` with the chosen frame folder."""
    if frames not in FRAME_FOLDERS:
        raise ConfigError(f"DFEW frame folder must be one of {FRAME_FOLDERS}, got {frames!r}")
    folds = check_fold("dfew", fold)
    list_files = _list_files(root, folds)
    frame_root = _frame_root(root, frames)
    entries: list[Entry] = []
    problems: list[Problem] = []
    zero_indexed: list[str] = []
    for (fold_number, split), path in list_files.items():
        rows, row_problems = _read_rows(path)
        problems.extend(row_problems)
        if _is_zero_indexed({label for _, _, label in rows}):
            zero_indexed.append(str(path))
            continue
        for line, clip_id, label in rows:
            if not 1 <= label <= len(DFEW_CLASSES):
                problems.append(Problem(f"{path}:{line}", f"label {label} out of range 1..7"))
                continue
            entries.append(
                Entry(
                    clip_id=clip_id,
                    path=frame_root / clip_id,
                    label=label - 1,
                    split=f"fold{fold_number}/{split}",
                    fold=fold_number,
                    where=f"{path}:{line}",
                )
            )
    if zero_indexed:
        raise LayoutError(
            "DFEW split file(s) with 0-indexed labels (0..6, never 7), a re-numbered "
            "third-party copy; official DFEW CSVs number the classes 1..7 and finecliper "
            "will not shift them silently. Replace with the official files: "
            + ", ".join(zero_indexed)
        )
    index = assemble(
        dataset="dfew",
        root=root,
        classes=DFEW_CLASSES,
        split_names=[f"fold{k}/{split}" for k in folds for split in LIST_DIRS],
        entries=entries,
        problems=problems,
        source=frames,
        deep=deep,
    )
    index.problems.extend(_frame_folder_problems(index, frame_root, frames))
    return index


def _frame_folder_problems(index: DatasetIndex, frame_root: Path, frames: str) -> list[Problem]:
    """Clip lengths that betray the other frame folder (the field's most common mix-up)."""
    lengths = {r.path: r.num_frames for records in index.splits.values() for r in records}
    readable = {path: count for path, count in lengths.items() if count}
    if frames == "clip_224x224_16f":
        return [
            Problem(str(path), f"{count} frames in {frames} (expected {RESAMPLED_FRAMES})")
            for path, count in readable.items()
            if count != RESAMPLED_FRAMES
        ]
    if len(readable) >= RESAMPLED_LOOKALIKE_MIN_CLIPS and set(readable.values()) == {16}:
        return [
            Problem(
                str(frame_root),
                f"all {len(readable)} clips have exactly 16 frames: this looks like "
                "clip_224x224_16f, not the original-length clip_224x224",
            )
        ]
    return []
