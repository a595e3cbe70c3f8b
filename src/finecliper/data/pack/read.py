"""Reading a pack: clips by position or id from memory-mapped shards, and training samples."""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from finecliper.data.dataset import ClipDataset
from finecliper.data.pack.format import (
    CLIP_DTYPE,
    FORMAT,
    FORMAT_VERSION,
    IMAGE_ERRORS,
    FrameFormat,
    shard_name,
    shard_path,
)
from finecliper.data.records import ClipRecord, DatasetIndex, Problem
from finecliper.data.sampling import segment_indices
from finecliper.data.transforms import ClipSample, ClipTransform
from finecliper.data.video import VideoReadError, frames_to_tensor
from finecliper.errors import FineCLIPERError
from finecliper.face.arrays import no_face
from finecliper.io import read_text

try:  # optional: libjpeg-turbo without PIL's per-image overhead, ~3x faster on small frames
    import simplejpeg
except ImportError:  # PIL decodes the very same pixels
    simplejpeg = None


@dataclass
class PackedClip:
    """Sampled frames (T, H, W, 3) uint8 and, if stored, parsing (T, H, W) and landmarks."""

    frames: np.ndarray
    parsing: np.ndarray | None
    landmarks: np.ndarray | None


@dataclass
class _Shard:
    data: np.ndarray  # the .bin file, memory-mapped uint8
    frames: np.ndarray  # FRAME_DTYPE rows
    landmarks: np.ndarray  # (F, 68, 2) float32


def read_pack_meta(root: str | Path) -> dict[str, Any]:
    """A complete pack's ``pack.json``; clear errors for other folders and unfinished packs."""
    root = Path(root)
    path = root / "pack.json"
    if not path.is_file():
        if (root / "settings.json").is_file():
            raise FineCLIPERError(
                f"{root}: incomplete pack (no pack.json); rerun `finecliper pack` with the same "
                "arguments to finish it"
            )
        raise FineCLIPERError(f"{root}: not a pack (no pack.json); make one with `finecliper pack`")
    try:
        meta = json.loads(read_text(path))
    except (OSError, ValueError) as exc:
        raise FineCLIPERError(f"{path}: unreadable ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise FineCLIPERError(f"{path}: not a finecliper pack")
    if meta.get("format_version") != FORMAT_VERSION:
        raise FineCLIPERError(
            f"{path}: pack format version {meta.get('format_version')}, this finecliper reads "
            f"{FORMAT_VERSION}; repack the dataset"
        )
    return meta


# JPEG colour spaces that simplejpeg turns into the RGB PIL gives (CMYK it converts otherwise).
_SIMPLE_COLOURS = frozenset({"YCbCr", "Gray", "RGB"})


def _jpeg_colourspace(blob: np.ndarray | bytes) -> str | None:
    try:
        return simplejpeg.decode_jpeg_header(blob)[2]
    except ValueError:  # not a JPEG simplejpeg can read: PIL will say what is wrong
        return None


def decode_jpeg(blob: np.ndarray | bytes) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of a JPEG, as ``PIL.Image.convert("RGB")`` gives them."""
    if simplejpeg is not None and _jpeg_colourspace(blob) in _SIMPLE_COLOURS:
        return simplejpeg.decode_jpeg(blob, colorspace="RGB")
    with Image.open(io.BytesIO(blob)) as image:
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


class PackedClips:
    """Read access to a pack by clip position or id; shard files are mapped on first use.

    Safe to hand to DataLoader workers (forked or spawned): the maps are opened per process.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.meta = read_pack_meta(self.root)
        try:
            self.clips = np.load(self.root / "clips.npy")
        except (OSError, ValueError) as exc:
            raise FineCLIPERError(f"{self.root / 'clips.npy'}: unreadable ({exc})") from exc
        self.clip_ids: list[str] = self.meta["clip_ids"]
        if self.clips.dtype != CLIP_DTYPE or len(self.clips) != len(self.clip_ids):
            raise FineCLIPERError(f"{self.root / 'clips.npy'}: does not match pack.json")
        self.frame_format: FrameFormat = self.meta["frame_format"]
        self._positions = {clip_id: i for i, clip_id in enumerate(self.clip_ids)}
        self._errors = {p["path"]: p["problem"] for p in self.meta["problems"]}
        self._shards: dict[int, _Shard] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_shards"] = {}  # maps never travel to another process
        return state

    def __len__(self) -> int:
        return len(self.clip_ids)

    def position(self, clip_id: str) -> int:
        try:
            return self._positions[clip_id]
        except KeyError:
            raise VideoReadError(f"{self.root}: clip {clip_id!r} is not in the pack") from None

    def num_frames(self, position: int) -> int:
        return int(self.clips[position]["frames"])

    def _shard(self, shard: int) -> _Shard:
        if shard not in self._shards:
            self._shards[shard] = self._open_shard(shard)
        return self._shards[shard]

    def _open_shard(self, shard: int) -> _Shard:
        expected = self.meta["shards"][shard]
        try:
            bin_path = shard_path(self.root, shard, ".bin")
            size = bin_path.stat().st_size
            data = np.memmap(bin_path, np.uint8, mode="r") if size else np.zeros(0, np.uint8)
            frames = np.load(shard_path(self.root, shard, ".frames.npy"), mmap_mode="r")
            landmarks = np.load(shard_path(self.root, shard, ".landmarks.npy"), mmap_mode="r")
        except (OSError, ValueError) as exc:
            name = shard_name(shard)
            raise FineCLIPERError(f"{self.root}: shard {name} unreadable ({exc})") from exc
        if size != expected["bytes"] or len(frames) != expected["frames"]:
            raise FineCLIPERError(f"{self.root}: shard {shard_name(shard)} is damaged (size)")
        return _Shard(data, frames, landmarks)

    def read(self, position: int, indices: Sequence[int]) -> PackedClip:
        """Frames ``indices`` of clip ``position`` (repeats allowed), with its middle rows."""
        row = self.clips[position]
        count = int(row["frames"])
        clip_id = self.clip_ids[position]
        if count == 0:
            error = self._errors.get(clip_id, "no frames")
            raise VideoReadError(
                f"{self.root}: clip {clip_id!r} was packed without frames: {error}"
            )
        bad = [i for i in indices if not 0 <= i < count]
        if bad:
            raise VideoReadError(
                f"{self.root}: clip {clip_id!r}: frame index {bad[0]} out of range ({count} frames)"
            )
        shard = self._shard(int(row["shard"]))
        rows = [int(row["first"]) + i for i in indices]
        size = (int(row["height"]), int(row["width"]))
        frames = self._frames(shard, rows, size, clip_id)
        if not row["middle"]:
            return PackedClip(frames, None, None)
        parsing = np.stack([self._parsing(shard, r, size, clip_id) for r in rows])
        landmarks = np.asarray(shard.landmarks[rows], dtype=np.float32)
        return PackedClip(frames, parsing, landmarks)

    def _frames(
        self, shard: _Shard, rows: list[int], size: tuple[int, int], clip_id: str
    ) -> np.ndarray:
        out = np.empty((len(rows), *size, 3), dtype=np.uint8)
        first_use: dict[int, int] = {}
        for k, row in enumerate(rows):
            if row in first_use:  # short clips repeat frames: decode each once
                out[k] = out[first_use[row]]
                continue
            first_use[row] = k
            entry = shard.frames[row]
            offset, length = int(entry["image_offset"]), int(entry["image_length"])
            out[k] = self._decode(shard.data[offset : offset + length], size, clip_id)
        return out

    def _decode(self, blob: np.ndarray, size: tuple[int, int], clip_id: str) -> np.ndarray:
        height, width = size
        if self.frame_format == "raw":
            if blob.size != height * width * 3:
                raise VideoReadError(f"{self.root}: clip {clip_id!r}: damaged raw frame")
            return blob.reshape(height, width, 3)
        try:
            pixels = decode_jpeg(blob)
        except IMAGE_ERRORS as exc:
            raise VideoReadError(f"{self.root}: clip {clip_id!r}: damaged frame ({exc})") from exc
        if pixels.shape != (height, width, 3):
            raise VideoReadError(f"{self.root}: clip {clip_id!r}: frame of the wrong size")
        return pixels

    def _parsing(self, shard: _Shard, row: int, size: tuple[int, int], clip_id: str) -> np.ndarray:
        entry = shard.frames[row]
        offset, length = int(entry["parsing_offset"]), int(entry["parsing_length"])
        try:
            raw = zlib.decompress(shard.data[offset : offset + length])
        except zlib.error as exc:
            raise VideoReadError(f"{self.root}: clip {clip_id!r}: damaged parsing map") from exc
        if len(raw) != size[0] * size[1]:
            raise VideoReadError(f"{self.root}: clip {clip_id!r}: parsing map of the wrong size")
        return np.frombuffer(raw, dtype=np.uint8).reshape(size)

    def description(self, position: int, *, train: bool) -> str | None:
        """The clip's description for a training or an evaluation split (None: none)."""
        row = self.clips[position]
        which = 0 if train else 1
        offset, length = int(row["text_offset"][which]), int(row["text_length"][which])
        if length < 0:
            return None
        data = self._shard(int(row["shard"])).data[offset : offset + length]
        return data.tobytes().decode("utf-8")

    def descriptions(self, *, train: bool) -> dict[str, str]:
        """{clip id: description} of every clip that has one for this kind of split."""
        texts = {}
        for position, clip_id in enumerate(self.clip_ids):
            text = self.description(position, train=train)
            if text is not None:
                texts[clip_id] = text
        return texts

    def dataset_index(self) -> DatasetIndex:
        """The packed dataset's index, with frame counts from the pack (0: unreadable clip)."""
        meta = self.meta
        labels = self.clips["label"].tolist()
        counts = self.clips["frames"].tolist()
        splits: dict[str, list[ClipRecord]] = {}
        for name, members in meta["splits"].items():
            splits[name] = [
                ClipRecord(
                    clip_id=self.clip_ids[position],
                    path=Path(meta["paths"][position]),
                    label=labels[position],
                    split=name.rpartition("/")[2],
                    num_frames=counts[position],
                    fold=fold,
                    caption=meta["captions"][position],
                )
                for position, fold in members
            ]
        problems = [Problem(p["path"], p["problem"]) for p in meta["problems"]]
        return DatasetIndex(
            dataset=meta["dataset"],
            root=Path(meta["root"]),
            classes=tuple(meta["classes"]),
            splits=splits,
            problems=problems,
            source=f"{meta['source']} (packed: {self.root})",
        )


# ---------------------------------------------------------------------------------------------
# Training samples


class PackedClipDataset(ClipDataset):
    """:class:`ClipDataset` reading clips from a pack: the same samples, from mapped files.

    For the same records, seed and epoch it yields exactly what ``ClipDataset`` yields from the
    unpacked dataset (same frame choice, crop and flip). ``descriptions=None`` takes them from
    the pack (the training or the evaluation text, by ``train``).
    """

    def __init__(
        self,
        records: Sequence[ClipRecord],
        *,
        pack: PackedClips | str | Path,
        transform: ClipTransform,
        num_frames: int = 16,
        train: bool,
        descriptions: dict[str, str] | None = None,
        seed: int = 0,
    ) -> None:
        self.pack = pack if isinstance(pack, PackedClips) else PackedClips(pack)
        if descriptions is None:
            descriptions = self.pack.descriptions(train=train)
        super().__init__(
            records,
            transform=transform,
            num_frames=num_frames,
            train=train,
            descriptions=descriptions,
            seed=seed,
        )

    def _load(self, index: int) -> dict:
        record = self.records[index]
        position = self.pack.position(record.clip_id)
        # The generator is drawn from exactly as ClipDataset draws: sampling, then transform.
        generator = torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) & 0xFFFFFFFF)
        total = self.pack.num_frames(position)
        if total == 0:
            self.pack.read(position, [0])  # raises the clip's packing error
        chosen = segment_indices(total, self.num_frames, train=self.train, generator=generator)
        clip = self.pack.read(position, chosen)
        parsing = None if clip.parsing is None else torch.from_numpy(clip.parsing)
        landmarks = None if clip.landmarks is None else torch.from_numpy(clip.landmarks)
        if clip.landmarks is not None and no_face(clip.landmarks):
            parsing = landmarks = None  # no face in any sampled frame: the modalities are missing
        sample = ClipSample(frames_to_tensor(clip.frames), parsing, landmarks)
        return self._item(index, sample, generator)
