"""Reading the frames ``prepare faces`` and ``predict`` process: a video file or frame folder,
all its frames or ``max_frames`` of them spread uniformly, read again as many times as needed.

Videos are counted by decoding (container headers can be wrong). A frame that cannot be read is
reported with its error instead of ending the clip, so the caller can reuse a neighbour.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from finecliper.data.video import (
    ImageReadError,
    VideoInfo,
    VideoReadError,
    list_frame_files,
    load_frame_image,
    open_video,
)


@dataclass
class FrameSource:
    """The frames of one clip to process: which source frames, and how to read them again."""

    path: Path
    indices: list[int]  # selected source frame indices, increasing
    total: int  # frames in the source
    files: list[Path] | None  # for frame folders, in natural order
    problem: str | None = None  # why a video stopped decoding before its end, if it did


def uniform_indices(total: int, max_frames: int | None) -> list[int]:
    if max_frames is None or total <= max_frames:
        return list(range(total))
    return sorted({round(float(i)) for i in np.linspace(0, total - 1, max_frames)})


def open_source(path: Path, max_frames: int | None) -> FrameSource:
    if path.is_dir():
        files = list_frame_files(path)
        if not files:
            raise VideoReadError(f"{path}: frame folder holds no *.jpg/*.jpeg/*.png images")
        return FrameSource(path, uniform_indices(len(files), max_frames), len(files), files)
    total, problem = _count_decodable(path)
    return FrameSource(path, uniform_indices(total, max_frames), total, None, problem)


def _count_decodable(path: Path) -> tuple[int, str | None]:
    """Frames that decode, and why decoding stopped early (None when the file looks whole).

    Decoding is the only exact count (container headers can be wrong). A file that breaks
    midway keeps the frames before the break; the break is recorded in the clip's status, also
    when the decoder ends quietly well short of the frame count its header promises.
    """
    count, problem = 0, None
    with open_video(path) as reader:
        try:
            for _ in reader.decoded():
                count += 1
        except VideoReadError as exc:
            problem = str(exc)
        promised = _promised_frames(reader.info)
    if count == 0:
        raise VideoReadError(problem or f"{path}: video holds no decodable frames")
    if problem is None and promised is not None and count + 2 < promised:
        problem = f"{path}: only {count} of the {promised} frames its header announces decode"
    return count, problem


def _promised_frames(info: VideoInfo) -> int | None:
    if info.num_frames:
        return info.num_frames
    if info.duration_s and info.fps:
        return round(info.duration_s * info.fps)
    return None


def read_selected(source: FrameSource) -> Iterator[tuple[np.ndarray | None, str | None]]:
    """(image or None, error or None) for each selected frame, in order."""
    if source.files is not None:
        size = None
        for index in source.indices:
            try:
                image = load_frame_image(source.files[index], size)
            except ImageReadError as exc:  # this frame reuses its neighbour's results
                yield None, f"{exc.file.name}: unreadable image ({exc.reason})"
                continue
            size = size or (image.shape[1], image.shape[0])
            yield image, None
        return
    wanted = iter(source.indices)
    target = next(wanted, None)
    with open_video(source.path) as reader:
        try:
            for index, frame in enumerate(reader.decoded()):
                if index == target:
                    yield frame.to_ndarray(format="rgb24"), None
                    target = next(wanted, None)
                    if target is None:
                        return
        except VideoReadError as exc:
            error = str(exc)
        else:
            error = f"{source.path}: video ended before frame {target}"
    # Frames after a decoding failure are unreadable; each is reported as such.
    while target is not None:
        yield None, error
        target = next(wanted, None)
