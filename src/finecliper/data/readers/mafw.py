"""MAFW's 11-class single-label 5-fold protocol, from aligned frames or from the mp4 clips.

Split lists live in ``Train & Test Set`` (also found renamed ``Train_Test_Set`` or ``anno``):
``single/no_caption/set_K/{train,test}.txt`` with lines ``03747.mp4 anger``, and
``single/with_caption/...`` whose lines are tab separated, GBK-encoded and carry MAFW's own
Chinese and English captions after the clip and label. Faces come from the release's aligned
frames ``data/frames/frames_crop_align_224/<id>/`` (self-extracted faces do much worse) or from
``data/clips/<id>.mp4``.
"""

from __future__ import annotations

from pathlib import Path

from finecliper.data.classes import MAFW_CLASSES, resolve_label
from finecliper.data.readers import register_reader
from finecliper.data.readers.common import Entry, assemble, check_fold, decode_lines
from finecliper.data.records import DatasetIndex, Problem
from finecliper.errors import ConfigError, LayoutError

LIST_ROOTS = ("Train & Test Set", "Train_Test_Set", "anno")
FRAMES_DIR = Path("data") / "frames" / "frames_crop_align_224"
VIDEO_DIRS = (Path("data") / "clips", Path("clips"))
SOURCES = ("frames", "video")
SPLITS = ("train", "test")


def _list_dir(root: Path, variant: str) -> Path:
    for name in LIST_ROOTS:
        candidate = root / name / "single" / variant
        if candidate.is_dir():
            return candidate
    tried = ", ".join(f"{name}/single/{variant}" for name in LIST_ROOTS)
    raise LayoutError(f"{root}: not a MAFW root, none of these split folders exists: {tried}")


def _clip_root(root: Path, source: str) -> Path:
    if source == "frames":
        if (root / FRAMES_DIR).is_dir():
            return root / FRAMES_DIR
        raise LayoutError(
            f"{root}: no aligned frames at {FRAMES_DIR.as_posix()} (for the mp4 clips pass "
            "--mafw-source video)"
        )
    for candidate in VIDEO_DIRS:
        if (root / candidate).is_dir():
            return root / candidate
    tried = " or ".join(path.as_posix() for path in VIDEO_DIRS)
    raise LayoutError(f"{root}: no MAFW video folder ({tried})")


def _split_line(text: str, captions: bool) -> tuple[str, str, str | None] | str:
    """(clip file name, label name, caption or None) of one list line, or what is wrong."""
    if not captions:
        fields = text.split()
        if len(fields) != 2:
            return f"expected '<id>.mp4 <label>', found {text.strip()!r}"
        return fields[0], fields[1], None
    fields = [field.strip() for field in text.split("\t")]
    is_label = [resolve_label(field, MAFW_CLASSES) is not None for field in fields]
    label_at = next((i for i in range(1, len(fields)) if is_label[i]), None)
    if label_at is None:
        return f"no MAFW label among the tab-separated fields of {text.strip()!r}"
    caption = "\t".join(field for i, field in enumerate(fields[1:], 1) if i != label_at and field)
    return fields[0], fields[label_at], caption or None


def _parse_list(
    path: Path, *, captions: bool, split: str, fold: int, clip_root: Path, source: str
) -> tuple[list[Entry], list[Problem]]:
    lines, problems = decode_lines(path, "gbk" if captions else "utf-8")
    entries = []
    for number, text in lines:
        where = f"{path}:{number}"
        parsed = _split_line(text, captions)
        if isinstance(parsed, str):
            problems.append(Problem(where, parsed))
            continue
        name, label_name, caption = parsed
        if captions and caption is None:
            problems.append(Problem(where, "no caption after the clip and label"))
        label = resolve_label(label_name, MAFW_CLASSES)
        if label is None:
            known = ", ".join(MAFW_CLASSES)
            problems.append(Problem(where, f"unknown label {label_name!r} (classes: {known})"))
            continue
        clip_id = name.removesuffix(".mp4")
        clip_path = clip_root / (clip_id if source == "frames" else f"{clip_id}.mp4")
        entries.append(
            Entry(clip_id, clip_path, label, f"fold{fold}/{split}", fold, caption, where)
        )
    return entries, problems


@register_reader(
    "mafw", options={"mafw_source": "source", "mafw_captions": "captions", "deep": "deep"}
)
def read_mafw(
    root: Path,
    *,
    fold: int | None = None,
    source: str = "frames",
    captions: bool = False,
    deep: bool = False,
) -> DatasetIndex:
    """Read MAFW's single-label folds; ``captions`` reads the with_caption lists."""
    if source not in SOURCES:
        raise ConfigError(f"MAFW source must be one of {SOURCES}, got {source!r}")
    folds = check_fold("mafw", fold)
    list_dir = _list_dir(root, "with_caption" if captions else "no_caption")
    files = {(k, split): list_dir / f"set_{k}" / f"{split}.txt" for k in folds for split in SPLITS}
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        raise LayoutError(f"{root}: not a MAFW root, missing split file(s): {', '.join(missing)}")
    clip_root = _clip_root(root, source)
    entries: list[Entry] = []
    problems: list[Problem] = []
    for (fold_number, split), path in files.items():
        listed, listed_problems = _parse_list(
            path,
            captions=captions,
            split=split,
            fold=fold_number,
            clip_root=clip_root,
            source=source,
        )
        entries.extend(listed)
        problems.extend(listed_problems)
    return assemble(
        dataset="mafw",
        root=root,
        classes=MAFW_CLASSES,
        split_names=[f"fold{k}/{split}" for k in folds for split in SPLITS],
        entries=entries,
        problems=problems,
        source=clip_root.relative_to(root).as_posix(),
        deep=deep,
    )
