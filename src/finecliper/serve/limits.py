"""What the web server accepts: its limits, and the check of an upload against them.

An upload is checked before any real work: its first frame is decoded, and its frame count comes
from the header or, when that says nothing or too little, from the packets counted without
decoding. Refusals are :class:`UploadError` with the HTTP status to answer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from http import HTTPStatus
from pathlib import Path
from typing import Any

import av

from finecliper.data.video import VideoReadError, open_video
from finecliper.errors import ConfigError, FineCLIPERError

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv")
RETRY_AFTER_S = 10  # what a busy server asks a client to wait before it tries again


class UploadError(FineCLIPERError):
    """A request the server refuses, with the HTTP status to answer."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


class BusyError(UploadError):
    """The server has no room for the request now: 503, retry after ``RETRY_AFTER_S``."""

    def __init__(self, message: str) -> None:
        super().__init__(f"{message}; retry in {RETRY_AFTER_S} s", HTTPStatus.SERVICE_UNAVAILABLE)


@dataclass(frozen=True)
class ServeLimits:
    max_upload_bytes: int = 50 * 1024 * 1024
    max_duration_s: float = 60.0
    max_side: int = 4096  # frame width and height, pixels
    max_frames: int = 1800  # 60 s at 30 fps
    max_pixels: int = 2_000_000_000  # frames x width x height: a minute of 720p at 30 fps
    extensions: tuple[str, ...] = VIDEO_EXTENSIONS
    max_results: int = 100
    max_queue: int = 4  # predictions running or waiting for their turn
    max_wait_s: float = 120.0  # longest wait for a turn before a 503
    max_uploads: int = 4  # request bodies received at the same time
    max_connections: int = 32
    client_timeout_s: float = 30.0  # a connection silent this long is closed
    upload_timeout_s: float = 300.0  # a request's head and body must arrive within this

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, (int, float)) and not (math.isfinite(value) and value > 0):
                raise ConfigError(f"server limit {item.name}={value}: expected a number > 0")

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_upload_bytes": self.max_upload_bytes,
            "max_duration_s": self.max_duration_s,
            "max_side": self.max_side,
            "max_frames": self.max_frames,
            "max_pixels": self.max_pixels,
            "extensions": list(self.extensions),
        }


def check_video(path: Path, display: str, limits: ServeLimits) -> None:
    """Refuse an upload that cannot be decoded or is over a limit, before any real work: the
    first frame is decoded, the frame count comes from the header and the packets."""
    try:
        with open_video(path) as reader:
            info = reader.info
            if next(reader.decoded(), None) is None:
                raise UploadError(f"{display!r} holds no decodable video frames")
    except VideoReadError as exc:
        reason = re.sub(r"\[Errno -?\d+\] ", "", str(exc).replace(f"{path}: ", ""))
        reason = reason.replace(str(path), display)
        raise UploadError(f"{display!r} is not a readable video ({reason})") from None
    if max(info.width, info.height) > limits.max_side:
        raise UploadError(
            f"{display!r} is {info.width}x{info.height} pixels; the limit is "
            f"{limits.max_side} pixels a side"
        )
    frames = _frame_count(path, info.num_frames, limits.max_frames)
    if frames > limits.max_frames:
        raise UploadError(
            f"{display!r} has {_at_least(frames, limits.max_frames)} frames; the limit is "
            f"{limits.max_frames} frames"
        )
    duration = info.duration_s if info.duration_s is not None else frames / (info.fps or 25.0)
    if duration > limits.max_duration_s:
        raise UploadError(
            f"{display!r} is {duration:.1f} s long; the limit is {limits.max_duration_s:g} s"
        )
    pixels = frames * info.width * info.height
    if pixels > limits.max_pixels:
        raise UploadError(
            f"{display!r} is {frames} frames of {info.width}x{info.height} pixels "
            f"({pixels / 1e6:.3g} megapixels to decode); the limit is "
            f"{limits.max_pixels / 1e6:.3g} megapixels"
        )


def _frame_count(path: Path, declared: int | None, limit: int) -> int:
    """The header's frame count when it is over ``limit`` (no reason to look further), else
    the video packets counted without decoding, stopping just past ``limit`` (headers can lie
    low or say nothing)."""
    if declared is not None and declared > limit:
        return declared
    count = 0
    try:
        with av.open(str(path)) as container:
            for packet in container.demux(container.streams.video[0]):
                count += packet.size > 0  # the demuxer ends with an empty flush packet
                if count > limit:
                    break
    except (av.FFmpegError, OSError) as exc:
        raise UploadError(f"the upload's packets cannot be read ({exc})") from None
    return count


def _at_least(count: int, limit: int) -> str:
    return f"more than {limit}" if count == limit + 1 else str(count)
