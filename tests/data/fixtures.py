"""Small dataset trees in the official layouts of DFEW, FERV39k and MAFW.

Clip ids, frame counts and labels are drawn from the packaged reference lists
(``finecliper/data/reference``), so the fixtures have the real id formats, real (short) clip
lengths and the real class names; the images are 8x8 (or, with ``face=True``, a 96x96 view of
the astronaut's face from scikit-image, for MediaPipe to find) and the videos 16x16. Each
builder returns
a ``Tree`` that knows which clips it wrote, so tests compute the expected counts independently of
the readers.
"""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import av
import numpy as np
from PIL import Image

from finecliper.data.classes import DFEW_CLASSES, FERV39K_CLASSES, MAFW_CLASSES
from finecliper.data.official import reference_rows

SEED = 7
SHORT = 16  # clips with fewer frames are "short"
DFEW_LISTS = {"train": "train(single-labeled)", "test": "test(single-labeled)"}
MAFW_FRAMES = Path("data") / "frames" / "frames_crop_align_224"
MAFW_CLIPS = Path("data") / "clips"
CAPTION_ZH = "一名男子皱着眉头，嘴角向下。"


@dataclass(frozen=True)
class Clip:
    """A clip of the reference list: ``group`` is its test fold ("1".."5") or its split."""

    clip_id: str
    frames: int
    label: str
    group: str


@dataclass
class Tree:
    """A fixture tree and the clips written into it."""

    root: Path
    clips: list[Clip]
    captions: dict[str, str] = field(default_factory=dict)

    def split_clips(self, split: str) -> list[Clip]:
        """Clips of ``foldK/train`` (test fold != K), ``foldK/test``, ``train`` or ``test``."""
        fold, _, name = split.rpartition("/")
        if not fold:
            return [clip for clip in self.clips if clip.group == name]
        number = fold.removeprefix("fold")
        in_test = name == "test"
        return [clip for clip in self.clips if (clip.group == number) == in_test]

    def label_counts(self, split: str) -> Counter[str]:
        return Counter(clip.label for clip in self.split_clips(split))

    def clip(self, clip_id: str) -> Clip:
        return next(clip for clip in self.clips if clip.clip_id == clip_id)


@cache
def image_bytes(fmt: str) -> bytes:
    """An 8x8 gradient image encoded as ``fmt`` ("JPEG" or "PNG")."""
    pixels = np.zeros((8, 8, 3), dtype=np.uint8)
    pixels[..., 0] = np.arange(8)[None, :] * 30
    pixels[..., 1] = np.arange(8)[:, None] * 30
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


@cache
def face_image_bytes(fmt: str) -> bytes:
    """A 96x96 view of the face in ``skimage.data.astronaut()``, encoded as ``fmt``."""
    from skimage.data import astronaut

    view = astronaut()[40:424, 64:448]
    buffer = io.BytesIO()
    Image.fromarray(view).resize((96, 96)).save(buffer, format=fmt)
    return buffer.getvalue()


def write_frames(folder: Path, count: int, suffix: str = ".jpg", *, face: bool = False) -> None:
    """``count`` frames named 1.jpg, 2.jpg, ... (unpadded, as DFEW's, to need natural order)."""
    folder.mkdir(parents=True, exist_ok=True)
    fmt = "PNG" if suffix == ".png" else "JPEG"
    data = face_image_bytes(fmt) if face else image_bytes(fmt)
    for number in range(1, count + 1):
        (folder / f"{number}{suffix}").write_bytes(data)


def write_video(path: Path, count: int, size: int = 16) -> None:
    """An H.264 video of ``count`` frames (the container follows the suffix: .mp4, .mkv)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for index in range(count):
            pixels = np.full((size, size, 3), index * 5 % 256, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def _pick(candidates: list[dict[str, str]], rng: random.Random, used: set[str], key: str) -> dict:
    choice = rng.choice([row for row in candidates if row[key] not in used])
    used.add(choice[key])
    return choice


def sample_folded(
    dataset: str, classes_per_fold: list[list[str]], max_frames: int, clips_per_class: int = 1
) -> list[Clip]:
    """``clips_per_class`` clips per (fold, class) with at most ``max_frames`` frames, plus one
    short clip."""
    rows = reference_rows(dataset)
    rng = random.Random(SEED)
    used: set[str] = set()
    short = _pick([r for r in rows if int(r["frames"]) < SHORT], rng, used, "clip_id")
    picked = [short]
    for fold, labels in enumerate(classes_per_fold, start=1):
        for label in labels:
            candidates = [
                r
                for r in rows
                if r["test_fold"] == str(fold)
                and r["label"] == label
                and SHORT <= int(r["frames"]) <= max_frames
            ]
            picked += [_pick(candidates, rng, used, "clip_id") for _ in range(clips_per_class)]
    return [Clip(r["clip_id"], int(r["frames"]), r["label"], r["test_fold"]) for r in picked]


def build_dfew(root: Path, *, zero_indexed: bool = False) -> Tree:
    """DFEW with both frame folders and the 5-fold split CSVs (labels 1..7, or 0..6)."""
    others = [name for name in DFEW_CLASSES if name not in ("Happy", "Fear")]
    # Happy and Fear in every fold: each CSV then holds the lowest and highest label.
    clips = sample_folded("dfew", [["Happy", "Fear", other] for other in others], 40)
    for clip in clips:
        write_frames(root / "Clip" / "clip_224x224" / clip.clip_id, clip.frames)
        write_frames(root / "Clip" / "clip_224x224_16f" / clip.clip_id, 16)
    tree = Tree(root, clips)
    offset = 0 if zero_indexed else 1
    for fold in range(1, 6):
        for split, folder in DFEW_LISTS.items():
            rows = [
                [int(clip.clip_id), DFEW_CLASSES.index(clip.label) + offset]
                for clip in tree.split_clips(f"fold{fold}/{split}")
            ]
            write_csv(
                root / "EmoLabel_DataSplit" / folder / f"set_{fold}.csv",
                ["video_name", "label"],
                rows,
            )
    return tree


def dfew_list(root: Path, fold: int, split: str) -> Path:
    return root / "EmoLabel_DataSplit" / DFEW_LISTS[split] / f"set_{fold}.csv"


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def build_ferv39k(
    root: Path, *, max_frames: int = 30, clips_per_class: int = 1, face: bool = False
) -> Tree:
    """FERV39k with ``clips_per_class`` clips per (split, class) and one short test clip."""
    rows = reference_rows("ferv39k")
    rng = random.Random(SEED)
    used: set[str] = set()
    short_test = [r for r in rows if r["split"] == "test" and int(r["frames"]) < SHORT]
    picked = [_pick(short_test, rng, used, "clip_path")]
    for split in ("train", "test"):
        for label in FERV39K_CLASSES:
            candidates = [
                r
                for r in rows
                if r["split"] == split
                and r["label"] == label
                and SHORT <= int(r["frames"]) <= max_frames
            ]
            picked += [_pick(candidates, rng, used, "clip_path") for _ in range(clips_per_class)]
    clips = [Clip(r["clip_path"], int(r["frames"]), r["label"], r["split"]) for r in picked]
    for clip in clips:
        write_frames(root / "2_ClipsforFaceCrop" / clip.clip_id, clip.frames, face=face)
    tree = Tree(root, clips)
    for split in ("train", "test"):
        lines = [f"{clip.clip_id} {clip.label}\n" for clip in tree.split_clips(split)]
        write_ferv39k_list(root, split, lines)
    return tree


def write_ferv39k_list(root: Path, split: str, lines: list[str]) -> Path:
    path = root / "4_setups" / "All_scenes" / f"{split}_All.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")
    return path


def build_mafw(
    root: Path,
    *,
    source: str = "frames",
    list_root: str = "Train & Test Set",
    clips_per_class: int = 1,
    face: bool = False,
) -> Tree:
    """MAFW with aligned PNG frames or mp4 clips, and both no_caption and with_caption lists.

    The 11 classes rotate over the folds, three per fold, so each appears at least once;
    ``clips_per_class`` clips of each class in each of its folds. ``face`` needs frames.
    """
    if face and source != "frames":
        raise ValueError("face=True draws the face into frame folders: use source='frames'")
    n = len(MAFW_CLASSES)
    per_fold = [[MAFW_CLASSES[(3 * fold + i) % n] for i in range(3)] for fold in range(5)]
    clips = sample_folded("mafw", per_fold, 60, clips_per_class)
    for clip in clips:
        if source == "frames":
            write_frames(root / MAFW_FRAMES / clip.clip_id, clip.frames, ".png", face=face)
        else:
            write_video(root / MAFW_CLIPS / f"{clip.clip_id}.mp4", clip.frames)
    tree = Tree(root, clips)
    tree.captions = {
        clip.clip_id: f"{CAPTION_ZH}\tThe man in clip {clip.clip_id} frowns." for clip in clips
    }
    for fold in range(1, 6):
        for split in ("train", "test"):
            members = tree.split_clips(f"fold{fold}/{split}")
            plain = "".join(f"{c.clip_id}.mp4 {c.label}\n" for c in members)
            mafw_list(root, "no_caption", fold, split, list_root).write_text(
                plain, encoding="utf-8"
            )
            captioned = "".join(
                f"{c.clip_id}.mp4\t{c.label}\t{tree.captions[c.clip_id]}\r\n" for c in members
            )
            mafw_list(root, "with_caption", fold, split, list_root).write_bytes(
                captioned.encode("gbk")
            )
    return tree


def mafw_list(
    root: Path, variant: str, fold: int, split: str, list_root: str = "Train & Test Set"
) -> Path:
    path = root / list_root / "single" / variant / f"set_{fold}" / f"{split}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
