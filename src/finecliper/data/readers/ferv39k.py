"""FERV39k in its official layout: ``2_ClipsforFaceCrop/<Scene>/<Emotion>/<id>/*.jpg``.

The fixed split is ``4_setups/All_scenes/{train,test}_All.csv``, one clip per line, space
separated: ``Action/Sad/0010 Sad``. Labels are accepted in either spelling (case-insensitive)
and checked against the emotion folder of the clip's path.
"""

from __future__ import annotations

from pathlib import Path

from finecliper.data.classes import FERV39K_CLASSES, resolve_label
from finecliper.data.readers import register_reader
from finecliper.data.readers.common import Entry, assemble, decode_lines
from finecliper.data.records import DatasetIndex, Problem
from finecliper.errors import ConfigError, LayoutError

FRAMES_DIR = "2_ClipsforFaceCrop"
LISTS_DIR = Path("4_setups") / "All_scenes"
SPLITS = ("train", "test")


def _layout(root: Path) -> tuple[dict[str, Path], Path]:
    lists = {split: root / LISTS_DIR / f"{split}_All.csv" for split in SPLITS}
    frames_root = root / FRAMES_DIR
    missing = [str(path) for path in lists.values() if not path.is_file()]
    if not frames_root.is_dir():
        missing.append(f"{frames_root}/")
    if missing:
        raise LayoutError(f"{root}: not a FERV39k root, missing: {', '.join(missing)}")
    return lists, frames_root


def _parse_line(text: str, where: str) -> tuple[str, int] | Problem:
    """(clip path, label index) of one list line, or the problem with it."""
    fields = text.split()
    if len(fields) != 2:
        return Problem(where, f"expected '<Scene/Emotion/id> <Emotion>', found {text.strip()!r}")
    clip_path, label_name = fields[0].strip("/"), fields[1]
    parts = clip_path.split("/")
    if len(parts) != 3:
        return Problem(where, f"clip path {clip_path!r} is not <Scene>/<Emotion>/<id>")
    label = resolve_label(label_name, FERV39K_CLASSES)
    if label is None:
        known = ", ".join(FERV39K_CLASSES)
        return Problem(where, f"unknown label {label_name!r} (classes: {known})")
    return clip_path, label


@register_reader("ferv39k", options={"deep": "deep"})
def read_ferv39k(root: Path, *, fold: int | None = None, deep: bool = False) -> DatasetIndex:
    """Read FERV39k's All_scenes train/test split from ``root``."""
    if fold is not None:
        raise ConfigError(f"FERV39k has one fixed train/test split, not folds (got fold={fold})")
    lists, frames_root = _layout(root)
    entries: list[Entry] = []
    problems: list[Problem] = []
    for split, list_path in lists.items():
        lines, line_problems = decode_lines(list_path, "utf-8")
        problems.extend(line_problems)
        for number, text in lines:
            where = f"{list_path}:{number}"
            parsed = _parse_line(text, where)
            if isinstance(parsed, Problem):
                problems.append(parsed)
                continue
            clip_path, label = parsed
            folder_emotion = clip_path.split("/")[1]
            # The list's label is the annotation: keep it, but report the disagreement.
            if resolve_label(folder_emotion, FERV39K_CLASSES) != label:
                problems.append(
                    Problem(
                        where,
                        f"label {FERV39K_CLASSES[label]} disagrees with the emotion folder "
                        f"{folder_emotion!r} of {clip_path}",
                    )
                )
            entries.append(Entry(clip_path, frames_root / clip_path, label, split, where=where))
    return assemble(
        dataset="ferv39k",
        root=root,
        classes=FERV39K_CLASSES,
        split_names=SPLITS,
        entries=entries,
        problems=problems,
        source=FRAMES_DIR,
        deep=deep,
    )
