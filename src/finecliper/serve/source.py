"""What ``predict`` reads: a video file, a folder of frames, or frames already in memory.

A source knows its frame count and rate and can be read from the start any number of times (the
predictor reads it twice, the annotated video once more), one frame at a time, so a long video
never sits in memory whole. Video files are counted by decoding (container headers can be
wrong); a file that breaks midway keeps the frames before the break and records the problem.
An unreadable image in a frame folder is replaced by the previous readable frame, also recorded.
Frame ``i`` is at ``i / fps`` seconds, ``fps`` being the stream's average rate (variable-rate
videos are placed approximately).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from finecliper.data.video import VideoReadError, open_video
from finecliper.errors import FineCLIPERError
from finecliper.face.frames import FrameSource, open_source, read_selected

DEFAULT_FPS = 25.0  # for frame folders and arrays, which carry no rate (DFEW's frame rate)


@dataclass
class VideoSource:
    """Frames to predict on. ``path`` is None for in-memory frames (``array`` holds them)."""

    name: str
    fps: float
    count: int
    is_folder: bool = False
    path: Path | None = None
    array: np.ndarray | None = field(default=None, repr=False)
    problems: list[str] = field(default_factory=list)
    _selection: FrameSource | None = field(default=None, repr=False)

    @property
    def duration_s(self) -> float:
        return self.count / self.fps

    def frames(self) -> Iterator[np.ndarray]:
        """Every frame in order as (H, W, 3) uint8 RGB."""
        if self.array is not None:
            yield from self.array
            return
        assert self._selection is not None
        previous = None
        for index, (image, error) in enumerate(read_selected(self._selection)):
            if image is None:
                if previous is None:
                    raise VideoReadError(f"{self.name}: its first frame is unreadable ({error})")
                self._note(f"frame {index} unreadable, the previous frame used instead: {error}")
                image = previous
            previous = image
            yield image

    def _note(self, problem: str) -> None:
        if problem not in self.problems:
            self.problems.append(problem)


def open_frames(video: str | Path | np.ndarray, fps: float | None = None) -> VideoSource:
    """A source for a video file or frame folder path, or for (T, H, W, 3) uint8 frames."""
    if fps is not None and not fps > 0:
        raise FineCLIPERError(f"frame rate {fps}: expected a positive number")
    if isinstance(video, np.ndarray):
        return _array_source(video, fps)
    path = Path(video)
    selection = open_source(path, None)
    rate = fps or (DEFAULT_FPS if path.is_dir() else _video_fps(path))
    source = VideoSource(
        str(path), rate, len(selection.indices), path.is_dir(), path, _selection=selection
    )
    if selection.problem:
        source.problems.append(
            f"decoding stopped early, the frames before are used: {selection.problem}"
        )
    return source


def _video_fps(path: Path) -> float:
    with open_video(path) as reader:
        return reader.info.fps or DEFAULT_FPS


def _array_source(frames: np.ndarray, fps: float | None) -> VideoSource:
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise FineCLIPERError(
            f"frames must be a (T, H, W, 3) uint8 RGB array with T >= 1, got {frames.dtype} "
            f"{frames.shape}"
        )
    return VideoSource("<array>", fps or DEFAULT_FPS, len(frames), array=frames)
