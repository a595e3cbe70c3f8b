"""What every dataset reader returns: clip records, split names and the problems it found."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ClipRecord:
    """One labelled clip. ``path`` is a frame folder or a video file."""

    clip_id: str
    path: Path
    label: int  # index into DatasetIndex.classes
    split: str  # "train" or "test"
    num_frames: int | None  # counted from disk; None for a video not decoded yet
    fold: int | None = None
    caption: str | None = None


@dataclass(frozen=True)
class Problem:
    """Something wrong with one path: reported by name, never silently skipped."""

    path: str
    problem: str


@dataclass
class DatasetIndex:
    """A dataset as read from disk.

    ``splits`` maps split names to records: ``foldK/train`` and ``foldK/test`` for folded
    datasets, ``train`` and ``test`` otherwise. A clip with a problem (missing folder, unreadable
    frame) stays in its split so the test set never shrinks silently; the problem names it.
    """

    dataset: str
    root: Path
    classes: tuple[str, ...]
    splits: dict[str, list[ClipRecord]]
    problems: list[Problem] = field(default_factory=list)
    source: str = ""  # which frame folder / video source was read, recorded with results

    @staticmethod
    def split_name(split: str, fold: int | None) -> str:
        return split if fold is None else f"fold{fold}/{split}"

    def records(self, split: str, fold: int | None = None) -> list[ClipRecord]:
        name = self.split_name(split, fold)
        if name not in self.splits:
            known = ", ".join(self.splits)
            raise KeyError(f"{self.dataset}: no split {name!r} (have: {known})")
        return self.splits[name]
