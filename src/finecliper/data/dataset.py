"""Clips as training and evaluation samples: sampled frames, middle-level data, description.

A worker reads the 16 sampled frames of a clip, the matching rows of its landmarks and parsing
maps, and applies the joint spatial transform on uint8 data (cheap, per clip). Rendering the
parsing and landmark images and the CLIP normalisation run later on whole batches, on the
training device (:func:`finecliper.runtime.inputs.to_model_inputs`), so the workers ship compact
tensors and the GPU does the per-pixel work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from finecliper.data.records import ClipRecord
from finecliper.data.sampling import segment_indices
from finecliper.data.transforms import ClipSample, ClipTransform
from finecliper.data.video import count_frames, frames_to_tensor, read_frames
from finecliper.errors import FineCLIPERError
from finecliper.face.arrays import (
    DamagedArraysError,
    has_landmarks,
    no_face,
    padded_rows,
    read_arrays,
    source_frames,
)
from finecliper.face.cache import clip_dir, read_status
from finecliper.face.schema import NUM_LANDMARKS


@dataclass(frozen=True)
class ClipMiddle:
    """Where a clip's landmarks.npy and parsing.npz are, and its face-cropped frames if any."""

    folder: Path
    frames: Path | None = None  # raw videos: the cache's crops (crop i is row i), landmarks' pixels
    # The source frame of each row of the arrays (fewer than the clip's frames when the cache
    # was made with --max-frames); None: row i is frame i.
    source_indices: tuple[int, ...] | None = None

    def frame_positions(self, rows: Sequence[int]) -> list[int]:
        """Which frame of the frame source to read for each sampled row."""
        return list(rows) if self.frames is not None else source_frames(rows, self.source_indices)


MiddleLocator = Callable[[ClipRecord], ClipMiddle | None]


@dataclass
class ClipBatch:
    """A collated batch. Middle-level tensors are zeros where ``has_middle`` is False."""

    index: torch.Tensor  # (B,) position of each clip in its dataset
    labels: torch.Tensor  # (B,)
    frames: torch.Tensor  # (B, T, 3, S, S) uint8
    parsing: torch.Tensor  # (B, T, S, S) uint8
    landmarks: torch.Tensor  # (B, T, 68, 2) float32, NaN = no point
    has_middle: torch.Tensor  # (B,) bool
    descriptions: list[str | None]
    failed: list[tuple[int, str]]  # (dataset index, error) of clips that could not be read

    def pin_memory(self) -> ClipBatch:
        for name in ("frames", "parsing", "landmarks"):
            setattr(self, name, getattr(self, name).pin_memory())
        return self


def synth_middle_locator(record: ClipRecord) -> ClipMiddle | None:
    """SynthDFER keeps landmarks and parsing next to the clip's ``frames`` folder."""
    folder = record.path.parent
    return ClipMiddle(folder) if has_landmarks(folder) else None


def cache_middle_locator(cache: Path) -> MiddleLocator:
    """Clips prepared by ``finecliper prepare faces``; no face found: modalities missing."""

    def locate(record: ClipRecord) -> ClipMiddle | None:
        folder = clip_dir(cache, record.clip_id)
        status = read_status(folder)
        if status is None or status.get("status") != "ok":
            return None
        indices = tuple(status["source_indices"]) if status.get("source_indices") else None
        crops = folder / status["frames_dir"] if status.get("frames_dir") else None
        return ClipMiddle(folder, crops, indices)

    return locate


class ClipDataset(Dataset):
    """Samples ``num_frames`` frames per clip (TSN) and the matching middle-level rows.

    ``seed`` and the epoch (``set_epoch``) fix every random draw of a sample, so a run resumed
    from an epoch boundary sees exactly the batches an uninterrupted run would have seen.
    """

    def __init__(
        self,
        records: Sequence[ClipRecord],
        *,
        transform: ClipTransform,
        num_frames: int = 16,
        train: bool,
        middle: MiddleLocator | None = None,
        descriptions: dict[str, str] | None = None,
        seed: int = 0,
    ) -> None:
        self.records = list(records)
        self.transform = transform
        self.num_frames = num_frames
        self.train = train
        self.middle = middle
        self.descriptions = descriptions or {}
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        try:
            return self._load(index)
        except FineCLIPERError as exc:  # a broken clip is recorded by the loop, not fatal
            return {"index": index, "error": str(exc)}

    def _load(self, index: int) -> dict:
        record = self.records[index]
        generator = torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) & 0xFFFFFFFF)
        middle = self.middle(record) if self.middle is not None else None
        source = (middle.frames or record.path) if middle is not None else record.path
        # Sampled among the frames the middle-level arrays cover, so their rows line up.
        total = _sampled_frame_count(record, middle) or count_frames(source)
        chosen = segment_indices(total, self.num_frames, train=self.train, generator=generator)
        positions = middle.frame_positions(chosen) if middle is not None else chosen
        frames = frames_to_tensor(read_frames(source, positions))
        parsing, landmarks = _middle_rows(middle, chosen, frames.shape[-2:])
        return self._item(index, ClipSample(frames, parsing, landmarks), generator)

    def _item(self, index: int, sample: ClipSample, generator: torch.Generator) -> dict:
        """The transformed sample of clip ``index`` with its label and description."""
        record = self.records[index]
        sample = self.transform(sample, generator)
        return {
            "index": index,
            "label": record.label,
            "frames": sample.frames,
            "parsing": sample.parsing,
            "landmarks": sample.landmarks,
            "description": self.descriptions.get(record.clip_id),
        }


def _sampled_frame_count(record: ClipRecord, middle: ClipMiddle | None) -> int | None:
    """How many frames sampling chooses among: the cache's rows, else the clip's frames."""
    if middle is not None and middle.source_indices is not None:
        return len(middle.source_indices)
    return record.num_frames


def _middle_rows(
    middle: ClipMiddle | None, chosen: list[int], size: torch.Size
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The sampled rows of a clip's parsing maps and landmarks (None: modalities missing)."""
    if middle is None:
        return None, None
    try:
        arrays = read_arrays(middle.folder, mmap=True)
    except DamagedArraysError as exc:
        raise FineCLIPERError(
            f"{middle.folder}: damaged landmarks or parsing maps ({exc.reason})"
        ) from exc
    maps = arrays.parsing
    if maps.shape[-2:] != tuple(size):
        raise FineCLIPERError(
            f"{middle.folder}: parsing maps are {maps.shape[-2]}x{maps.shape[-1]} but the frames "
            f"are {size[0]}x{size[1]}: the face cache was made from other frames"
        )
    rows = padded_rows(chosen, len(arrays.landmarks))
    sampled = np.asarray(arrays.landmarks[rows], dtype=np.float32)
    if no_face(sampled):
        return None, None  # no face in any sampled frame: the modalities are missing
    return torch.from_numpy(np.ascontiguousarray(maps[rows])), torch.from_numpy(sampled)


def collate_clips(items: list[dict]) -> ClipBatch:
    failed = [(item["index"], item["error"]) for item in items if "error" in item]
    items = [item for item in items if "error" not in item]
    if not items:
        return ClipBatch(*_empty(), descriptions=[], failed=failed)
    frames = torch.stack([item["frames"] for item in items])
    batch, steps, _, height, width = frames.shape
    parsing = torch.zeros(batch, steps, height, width, dtype=torch.uint8)
    landmarks = torch.full((batch, steps, NUM_LANDMARKS, 2), float("nan"))
    has_middle = torch.zeros(batch, dtype=torch.bool)
    for row, item in enumerate(items):
        if item["parsing"] is not None:
            parsing[row] = item["parsing"]
            landmarks[row] = item["landmarks"]
            has_middle[row] = True
    return ClipBatch(
        index=torch.tensor([item["index"] for item in items]),
        labels=torch.tensor([item["label"] for item in items]),
        frames=frames,
        parsing=parsing,
        landmarks=landmarks,
        has_middle=has_middle,
        descriptions=[item["description"] for item in items],
        failed=failed,
    )


def _empty() -> tuple[torch.Tensor, ...]:
    nothing = torch.zeros(0, dtype=torch.long)
    return nothing, nothing, nothing, nothing, nothing, torch.zeros(0, dtype=torch.bool)
