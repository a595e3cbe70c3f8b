"""Decoding clip frames from frame folders (PIL) and video files (PyAV) as uint8 RGB arrays.

A clip path is either a folder of images (``*.jpg``, ``*.jpeg``, ``*.png``, any case, in natural
order so ``2.jpg`` comes before ``10.jpg``; hidden files such as macOS ``._x.jpg`` are ignored) or
a video file. Frames come back as ``(T, H, W, 3)`` uint8 RGB numpy arrays; ``frames_to_tensor``
gives the ``(T, 3, H, W)`` torch layout the transforms use. Anything unreadable raises
``VideoReadError`` naming the file, so a dataset loader can record it as that clip's problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from finecliper.closing import Closing
from finecliper.errors import FineCLIPERError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
# What PIL raises for broken files (some plugins raise SyntaxError for bad headers or chunks).
_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)
_DIGITS = re.compile(r"(\d+)")


class VideoReadError(FineCLIPERError):
    """A frame folder, image or video file is missing, corrupt or shorter than requested."""


class ImageReadError(VideoReadError):
    """One frame image cannot be read; ``reason`` is what PIL said."""

    def __init__(self, file: Path, reason: str) -> None:
        super().__init__(f"{file}: unreadable image ({reason})")
        self.file = file
        self.reason = reason


def natural_key(name: str) -> tuple[object, ...]:
    """Sort key that orders embedded numbers by value: ``img2`` < ``img10``."""
    parts = _DIGITS.split(name.lower())
    # split() alternates text and digits, so equal positions always hold comparable types.
    return (*(int(p) if i % 2 else p for i, p in enumerate(parts)), name)


def list_frame_files(folder: str | Path) -> list[Path]:
    """The image files of a frame folder in natural order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VideoReadError(f"{folder}: frame folder does not exist")
    files = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def count_frames(path: str | Path) -> int:
    """Number of frames of a frame folder or a video file (0 for an empty folder)."""
    path = _existing(path)
    if path.is_dir():
        return len(list_frame_files(path))
    with open_video(path) as reader:
        if reader.info.num_frames is not None:
            return reader.info.num_frames
        return sum(1 for _ in reader.decoded())


def read_frames(path: str | Path, indices: Sequence[int] | None = None) -> np.ndarray:
    """Frames ``indices`` (repeats and any order allowed; ``None`` = all) as (T, H, W, 3) uint8."""
    path = _existing(path)
    if indices is not None and len(indices) == 0:
        raise FineCLIPERError(f"{path}: no frame indices requested")
    if path.is_dir():
        return _read_folder_frames(path, indices)
    return _read_video_frames(path, indices)


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise VideoReadError(f"{path}: no such frame folder or video file")
    return path


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 numpy frames -> (T, 3, H, W) uint8 tensor in channels-last layout.

    A view of ``frames`` where it can be (the pixel-interleaved layout is the one the resize and
    the renderers are fastest on); a copy when ``frames`` is read-only or not contiguous.
    """
    if not (frames.flags.c_contiguous and frames.flags.writeable):
        frames = np.array(frames, order="C")
    return torch.from_numpy(frames).permute(0, 3, 1, 2)


def _check_indices(path: Path, indices: Sequence[int], available: int) -> None:
    bad = [i for i in indices if not 0 <= i < available]
    if bad:
        raise VideoReadError(
            f"{path}: frame index {bad[0]} out of range (the clip has {available} frames)"
        )


def _read_folder_frames(folder: Path, indices: Sequence[int] | None) -> np.ndarray:
    files = list_frame_files(folder)
    if not files:
        raise VideoReadError(f"{folder}: frame folder holds no *.jpg/*.jpeg/*.png images")
    if indices is None:
        indices = range(len(files))
    _check_indices(folder, indices, len(files))
    size = _image_size(files[0])
    decoded = {i: load_frame_image(files[i], size) for i in dict.fromkeys(indices)}
    return np.stack([decoded[i] for i in indices])


def _image_size(file: Path) -> tuple[int, int]:
    """(width, height) from the header only: the size every frame of the clip is brought to."""
    try:
        with Image.open(file) as image:
            return image.size
    except _IMAGE_ERRORS as exc:
        raise ImageReadError(file, str(exc)) from exc


def image_to_rgb(image: Image.Image, size: tuple[int, int] | None) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of ``image``, resized (bicubic) to ``size`` (width, height),
    the clip's first frame size, when it differs; None keeps the image's own size.

    16-bit grayscale is scaled to 8 bits (65535 -> 255), palette images go through RGBA so
    transparency is honoured, alpha is dropped; a pixel format with no meaningful 8-bit
    reading (float, 32-bit integer) raises ValueError naming it.
    """
    rgb = _to_8bit_rgb(image)
    if size is not None and rgb.size != size:
        rgb = rgb.resize(size, Image.Resampling.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8)


# 16-bit grayscale modes of PIL (a 16-bit PNG opens as one of these, or as "I" in older PIL).
_GRAY16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_PALETTE_MODES = frozenset({"P", "PA"})


def _to_8bit_rgb(image: Image.Image) -> Image.Image:
    # PIL's own convert("RGB") clips 16-bit values at 255 (a 16-bit frame turns near-white),
    # so 16-bit gray is rescaled here by its bit depth; 48/64-bit RGB(A) PNGs PIL already
    # opens as 8-bit RGB(A).
    if image.mode in _GRAY16_MODES or (image.mode == "I" and image.format == "PNG"):
        return Image.fromarray(_gray16_to_8bit(np.asarray(image))).convert("RGB")
    if image.mode in _PALETTE_MODES:
        return image.convert("RGBA").convert("RGB")
    if image.mode in ("I", "F"):
        kind = "32-bit integer" if image.mode == "I" else "floating-point"
        raise ValueError(f"{kind} pixels (mode {image.mode}) are not a supported frame format")
    return image.convert("RGB")


def _gray16_to_8bit(values: np.ndarray) -> np.ndarray:
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise ValueError(f"pixel values {values.min()}..{values.max()} exceed 16 bits")
    return np.round(values.astype(np.float32) / 257.0).astype(np.uint8)


def load_frame_image(file: Path, size: tuple[int, int] | None) -> np.ndarray:
    """A frame image file as :func:`image_to_rgb` pixels; raises ImageReadError naming it."""
    try:
        with Image.open(file) as image:
            return image_to_rgb(image, size)
    except _IMAGE_ERRORS as exc:
        raise ImageReadError(file, str(exc)) from exc


def _read_video_frames(path: Path, indices: Sequence[int] | None) -> np.ndarray:
    # Decode sequentially and keep only the wanted frames: cheap for short clips, and exact
    # (seeking by timestamp is not frame-accurate in every container).
    wanted = None if indices is None else set(indices)
    last = None if wanted is None else max(wanted)
    kept: dict[int, np.ndarray] = {}
    count = 0
    with open_video(path) as reader:
        for frame in reader.decoded():
            if wanted is None or count in wanted:
                kept[count] = frame.to_ndarray(format="rgb24")
            count += 1
            if last is not None and count > last:
                break
    if not count:
        raise VideoReadError(f"{path}: video holds no decodable frames")
    if indices is None:
        return np.stack(list(kept.values()))
    _check_indices(path, indices, count)
    return np.stack([kept[i] for i in indices])


@dataclass(frozen=True)
class VideoInfo:
    """Stream facts from the container; ``num_frames``/``fps``/``duration_s`` None if unknown."""

    path: Path
    width: int
    height: int
    fps: float | None
    num_frames: int | None
    duration_s: float | None


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame: its 0-based decode index, presentation time and (H, W, 3) pixels."""

    index: int
    time_s: float
    image: np.ndarray


class VideoReader(Closing):
    """An open video file that streams its frames one at a time (long videos fit in memory).

    Use as a context manager; iterating yields ``VideoFrame`` objects in presentation order.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoReadError(f"{self.path}: video file does not exist")
        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise VideoReadError(f"{self.path}: cannot open video ({exc})") from exc
        if not self._container.streams.video:
            self._container.close()
            raise VideoReadError(f"{self.path}: file has no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self.info = self._read_info()

    def _read_info(self) -> VideoInfo:
        stream = self._stream
        rate = stream.average_rate or stream.guessed_rate
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif self._container.duration is not None:
            duration = self._container.duration / av.time_base
        return VideoInfo(
            path=self.path,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=float(rate) if rate else None,
            num_frames=stream.frames or None,
            duration_s=duration,
        )

    def decoded(self) -> Iterator[av.VideoFrame]:
        """Raw PyAV frames, decode errors turned into ``VideoReadError``."""
        index = 0
        try:
            for frame in self._container.decode(self._stream):
                yield frame
                index += 1
        except (av.FFmpegError, OSError) as exc:
            raise VideoReadError(f"{self.path}: decoding failed at frame {index} ({exc})") from exc

    def __iter__(self) -> Iterator[VideoFrame]:
        fps = self.info.fps
        for index, frame in enumerate(self.decoded()):
            yield VideoFrame(
                index, self._frame_time(frame, index, fps), frame.to_ndarray(format="rgb24")
            )

    @staticmethod
    def _frame_time(frame: av.VideoFrame, index: int, fps: float | None) -> float:
        # Presentation time when the stream carries it; frame count / fps otherwise.
        if frame.time is not None:
            return float(frame.time)
        return index / fps if fps else float(index)

    def close(self) -> None:
        self._container.close()


def open_video(path: str | Path) -> VideoReader:
    """Open a video file for streaming: ``with open_video(p) as v: for f in v: ...``."""
    return VideoReader(path)
