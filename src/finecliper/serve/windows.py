"""Sliding windows over a video: window and stride lengths in frames (``16``) or seconds (``2s``).

Each window is treated like one training clip: its frames are sampled with the deterministic TSN
test sampler (segment centres, ``num_frames`` of them; a window shorter than that repeats its
last frame), exactly as ``finecliper eval`` samples a clip. Windows start every ``stride`` frames;
a last window ending on the video's last frame is added when the regular ones stop short of it,
so the windows always cover the whole video. A video no longer than one window is one window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from finecliper.data.sampling import segment_indices
from finecliper.errors import ConfigError

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|f|frames?)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Span:
    """A length in frames (``seconds`` False) or in seconds."""

    value: float
    seconds: bool = False

    def frames(self, fps: float) -> int:
        """The length in frames at ``fps``, at least one frame."""
        count = self.value * fps if self.seconds else self.value
        return max(1, round(count))


def parse_span(text: str | int | float | Span) -> Span:
    """``16`` or ``16f`` = 16 frames; ``2.5s`` = 2.5 seconds."""
    if isinstance(text, Span):
        return text
    match = _SPAN.match(str(text))
    if match is None:
        raise ConfigError(f"window length {text!r}: expected frames (16) or seconds (2.5s)")
    value, unit = float(match.group(1)), (match.group(2) or "").lower()
    seconds = unit in ("s", "sec")
    if value <= 0 or (not seconds and value != int(value)):
        raise ConfigError(f"window length {text!r}: expected a positive whole number of frames")
    return Span(value, seconds)


@dataclass(frozen=True)
class WindowRange:
    """Frames ``[start, end)`` of the video and the ones fed to the model."""

    start: int
    end: int
    sampled: tuple[int, ...]  # absolute frame indices, TSN test sampling of the window


def window_ranges(total: int, window: int, stride: int, num_frames: int) -> list[WindowRange]:
    """Windows of ``window`` frames every ``stride`` frames over ``total`` frames."""
    if total < 1:
        raise ConfigError(f"cannot lay windows over a video of {total} frames")
    if window < 1 or stride < 1:
        raise ConfigError(f"window {window} and stride {stride} must be at least one frame")
    window = min(window, total)
    starts = list(range(0, total - window + 1, stride))
    if starts[-1] + window < total:
        starts.append(total - window)
    return [
        WindowRange(
            start,
            start + window,
            tuple(start + i for i in segment_indices(window, num_frames, train=False)),
        )
        for start in starts
    ]
