"""A pack's format: version, record layouts, how frames are stored, shard file names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from finecliper.errors import ConfigError

FORMAT = "finecliper-pack"
FORMAT_VERSION = 1
FrameFormat = Literal["jpeg", "raw"]
FRAME_FORMATS: tuple[FrameFormat, ...] = ("jpeg", "raw")
PARSING_LEVEL = 6  # zlib level: maps are piecewise constant, ~15x smaller; inflating is cheap
IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)

CLIP_DTYPE = np.dtype(
    [
        ("shard", "<i4"),
        ("first", "<i8"),  # first frame row in the shard's frames/landmarks arrays
        ("frames", "<i4"),  # 0: the clip could not be read (see pack.json problems)
        ("height", "<i4"),
        ("width", "<i4"),
        ("label", "<i4"),
        ("middle", "u1"),  # 1: parsing maps and landmarks are stored
        ("text_offset", "<i8", (2,)),  # description for training, for evaluation
        ("text_length", "<i4", (2,)),  # -1: none
    ]
)
FRAME_DTYPE = np.dtype(
    [
        ("image_offset", "<i8"),
        ("image_length", "<i4"),
        ("parsing_offset", "<i8"),
        ("parsing_length", "<i4"),  # -1: no parsing map
    ]
)


@dataclass(frozen=True)
class PackSettings:
    """How frames are stored and how clips are grouped; recorded and checked on resume."""

    frame_format: FrameFormat = "jpeg"
    quality: int = 95  # for frames that have to be encoded
    shard_clips: int = 256

    def __post_init__(self) -> None:
        if self.frame_format not in FRAME_FORMATS:
            raise ConfigError(f"frame format {self.frame_format!r}: expected jpeg or raw")
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"JPEG quality {self.quality}: expected 1..100")
        if self.shard_clips < 1:
            raise ConfigError(f"clips per shard {self.shard_clips}: expected >= 1")


def shard_name(shard: int) -> str:
    return f"{shard:05d}"


def shard_path(out: Path, shard: int, suffix: str) -> Path:
    return out / "shards" / f"{shard_name(shard)}{suffix}"
