"""Pieces shared by the dataset readers: clip probing, list parsing, assembly.

A reader parses its split lists into ``Entry`` objects (clip, label, split) plus problems, then
``assemble`` counts every clip's frames from disk once, checks them, and returns the
``DatasetIndex``. Clips with a problem stay in their split; the problem names the path. Frames
are listed and videos opened by ``finecliper.data.video``, so the counts here are the frames
training will read.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from finecliper.data.official import count_differences
from finecliper.data.records import ClipRecord, DatasetIndex, Problem
from finecliper.data.video import (
    ImageReadError,
    VideoReadError,
    list_frame_files,
    load_frame_image,
    open_video,
)
from finecliper.errors import ConfigError

FOLDS = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Entry:
    """One clip as listed in a split file, before its frames are counted."""

    clip_id: str
    path: Path
    label: int
    split: str  # full split name, e.g. "fold1/test" or "train"
    fold: int | None = None
    caption: str | None = None
    where: str = ""  # list file and line that named the clip, quoted in its problems


@dataclass(frozen=True)
class Probe:
    """What reading one clip from disk found: its frame count and anything wrong with it."""

    num_frames: int
    problems: tuple[Problem, ...] = ()


def _decode_problem(frame: Path) -> Problem | None:
    # Through the loader training uses, so a pixel format it refuses is reported here too.
    try:
        load_frame_image(frame, None)
    except ImageReadError as exc:
        return Problem(str(frame), f"unreadable frame: {exc.reason}")
    # Decoding arbitrary files can fail in many ways inside the image plugins.
    except Exception as exc:
        return Problem(str(frame), f"unreadable frame: {exc}")
    return None


def probe_frame_folder(folder: Path, *, deep: bool = False) -> Probe:
    """Count a frame folder's images; check each is non-empty and the first and last decode.

    With ``deep`` every frame is decoded.
    """
    if not folder.is_dir():
        return Probe(0, (Problem(str(folder), "missing clip folder"),))
    try:
        frames = list_frame_files(folder)
    except OSError as exc:
        return Probe(0, (Problem(str(folder), f"unreadable clip folder: {exc}"),))
    if not frames:
        return Probe(0, (Problem(str(folder), "empty clip folder (no .jpg/.jpeg/.png frames)"),))
    problems = [
        Problem(str(frame), "empty frame file (0 bytes)")
        for frame in frames
        if not frame.stat().st_size
    ]
    empty = {problem.path for problem in problems}
    to_decode = frames if deep else list(dict.fromkeys((frames[0], frames[-1])))
    for frame in to_decode:
        problem = None if str(frame) in empty else _decode_problem(frame)
        if problem is not None:
            problems.append(problem)
    return Probe(len(frames), tuple(problems))


def probe_video(path: Path, *, deep: bool = False) -> Probe:
    """Frame count of a video file from its header, decoding to count when the header has none.

    The first frame is always decoded; with ``deep`` every frame is, and the decoded count wins.
    """
    try:
        with open_video(path) as reader:
            declared = reader.info.num_frames
            if deep or declared is None:
                decoded = sum(1 for _ in reader.decoded())
            else:
                decoded = int(next(reader.decoded(), None) is not None)
    except VideoReadError as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        return Probe(0, (Problem(str(path), f"unreadable video: {reason}"),))
    if decoded == 0:
        return Probe(0, (Problem(str(path), "video has no decodable frame"),))
    if deep and declared is not None and declared != decoded:
        note = Problem(str(path), f"header says {declared} frames, {decoded} decode")
        return Probe(decoded, (note,))
    return Probe(declared if declared is not None and not deep else decoded)


def probe_clip(path: Path, *, deep: bool = False) -> Probe:
    """A frame folder or a video file; a path that does not exist is a missing clip."""
    if path.is_dir():
        return probe_frame_folder(path, deep=deep)
    if path.is_file():
        return probe_video(path, deep=deep)
    return Probe(0, (Problem(str(path), "missing clip (no such folder or video file)"),))


def decode_lines(path: Path, encoding: str) -> tuple[list[tuple[int, str]], list[Problem]]:
    """Non-blank lines of a text file with their 1-based numbers.

    Lines are decoded one by one, so a single undecodable line is a problem, not a lost file.
    """
    lines: list[tuple[int, str]] = []
    problems: list[Problem] = []
    raw_lines = path.read_bytes().removeprefix(b"\xef\xbb\xbf").split(b"\n")
    for number, raw in enumerate(raw_lines, start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        try:
            lines.append((number, raw.decode(encoding)))
        except UnicodeDecodeError as exc:
            problems.append(Problem(f"{path}:{number}", f"line is not valid {encoding}: {exc}"))
    return lines, problems


def check_fold(dataset: str, fold: int | None) -> tuple[int, ...]:
    """The folds to read: all five, or the one asked for (1..5)."""
    if fold is None:
        return FOLDS
    if fold not in FOLDS:
        raise ConfigError(f"{dataset}: fold must be 1..5, got {fold}")
    return (fold,)


def _leak_problems(splits: dict[str, list[ClipRecord]]) -> list[Problem]:
    """Clips listed in two splits of the same fold (e.g. both train and test)."""
    by_prefix: dict[str, list[str]] = {}
    for name in splits:
        prefix = name.rpartition("/")[0]
        by_prefix.setdefault(prefix, []).append(name)
    problems = []
    for names in by_prefix.values():
        for first, second in itertools.combinations(names, 2):
            shared = {r.path for r in splits[first]} & {r.path for r in splits[second]}
            problems.extend(
                Problem(str(path), f"listed in both {first} and {second}")
                for path in sorted(shared)
            )
    return problems


def _probe_all(dataset: str, entries: Sequence[Entry], deep: bool) -> dict[Path, Probe]:
    """Probe each distinct clip path once (folded datasets list a clip in every fold)."""
    where: dict[Path, str] = {}
    for entry in entries:
        where.setdefault(entry.path, entry.where)
    probes: dict[Path, Probe] = {}
    for path in tqdm(where, desc=f"{dataset}: reading clips", unit="clip", disable=None):
        probe = probe_clip(path, deep=deep)
        if where[path]:
            # Say where a clip-level problem (missing, empty, unreadable video) was listed;
            # a bad frame file names itself.
            listed = tuple(
                Problem(p.path, f"{p.problem} (listed at {where[path]})")
                if p.path == str(path)
                else p
                for p in probe.problems
            )
            probe = Probe(probe.num_frames, listed)
        probes[path] = probe
    return probes


def _record(entry: Entry, num_frames: int) -> ClipRecord:
    return ClipRecord(
        clip_id=entry.clip_id,
        path=entry.path,
        label=entry.label,
        split=entry.split.rpartition("/")[2],
        num_frames=num_frames,
        fold=entry.fold,
        caption=entry.caption,
    )


def assemble(
    *,
    dataset: str,
    root: Path,
    classes: Sequence[str],
    split_names: Iterable[str],
    entries: Sequence[Entry],
    problems: Sequence[Problem],
    source: str,
    deep: bool = False,
) -> DatasetIndex:
    """Count each listed clip's frames once, check it, and build the index.

    Every name in ``split_names`` appears in the index, even when no clip could be listed in it.
    A clip listed twice in one split is kept once and reported.
    """
    all_problems = list(problems)
    probes = _probe_all(dataset, entries, deep)
    splits: dict[str, list[ClipRecord]] = {name: [] for name in split_names}
    seen: set[tuple[str, Path]] = set()
    for entry in entries:
        if (entry.split, entry.path) in seen:
            where = f" (again at {entry.where})" if entry.where else ""
            all_problems.append(Problem(str(entry.path), f"listed twice in {entry.split}{where}"))
            continue
        seen.add((entry.split, entry.path))
        splits.setdefault(entry.split, []).append(_record(entry, probes[entry.path].num_frames))
    for probe in probes.values():
        all_problems.extend(probe.problems)
    index = DatasetIndex(
        dataset=dataset, root=root, classes=tuple(classes), splits=splits, source=source
    )
    all_problems.extend(_leak_problems(splits))
    all_problems.extend(count_differences(index))
    index.problems = all_problems
    return index
