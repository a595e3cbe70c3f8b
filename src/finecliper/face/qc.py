"""``prepare qc``: a montage of sample clips from a face cache, to check the extraction by eye.

Each row is one clip, chosen evenly over the finished clips with a face: for a few frames of it,
the frame, its parsing overlay and its landmarks side by side, rendered from the stored data by
finecliper.face.render exactly as the training inputs are. A header line gives the cache's counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from finecliper.errors import FineCLIPERError
from finecliper.face.cache import ClipFaces, iter_statuses, load_clip_faces
from finecliper.face.render import render_landmarks, render_parsing
from finecliper.io import atomic_open

CAPTION_HEIGHT = 14
HEADER_HEIGHT = 18


@dataclass
class QcSummary:
    out: Path
    clips_shown: int
    counts: dict[str, int]


def pick_evenly(items: list[str], count: int) -> list[str]:
    if len(items) <= count:
        return items
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, count).round()]


def clip_frames(clip: ClipFaces, positions: list[int]) -> np.ndarray:
    """The stored frames at ``positions`` as (K, H, W, 3) uint8, in stored-frame size."""
    width, height = clip.status["frame_size"]
    images = []
    for position in positions:
        if clip.frames_dir is not None:
            file = clip.frames_dir / f"{position:06d}.jpg"
        else:
            file = Path(clip.status["path"]) / clip.status["frame_files"][position]
        try:
            with Image.open(file) as image:
                rgb = image.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
        except OSError:
            rgb = Image.new("RGB", (width, height), (128, 128, 128))  # unreadable: grey tile
        images.append(np.asarray(rgb))
    return np.stack(images)


def clip_row(clip: ClipFaces, frames: int, tile: int) -> Image.Image:
    """frame | parsing overlay | landmarks, for ``frames`` frames spread over the clip."""
    if clip.parsing is None or clip.landmarks is None:
        raise FineCLIPERError(f"{clip.folder}: clip has no face data to show")
    total = clip.status["frames"]
    positions = sorted({int(p) for p in np.linspace(0, total - 1, frames).round()})
    pixels = torch.from_numpy(clip_frames(clip, positions)).permute(0, 3, 1, 2).contiguous()
    parsed = render_parsing(pixels, torch.from_numpy(clip.parsing[positions]))
    dotted = render_landmarks(pixels, torch.from_numpy(clip.landmarks[positions]))
    row = Image.new("RGB", (3 * tile * len(positions), tile + CAPTION_HEIGHT), (0, 0, 0))
    for k in range(len(positions)):
        for j, images in enumerate((pixels, parsed, dotted)):
            image = Image.fromarray(images[k].permute(1, 2, 0).numpy()).resize((tile, tile))
            row.paste(image, ((3 * k + j) * tile, CAPTION_HEIGHT))
    found = sum(clip.status["found"])
    caption = f"{clip.status['clip_id']}  face in {found}/{total} frames"
    ImageDraw.Draw(row).text((2, 1), caption, fill=(255, 255, 255))
    return row


def write_qc_montage(
    cache: str | Path, out: str | Path, *, clips: int = 8, frames: int = 3, tile: int = 128
) -> QcSummary:
    """Write a PNG montage of ``clips`` sample clips (``frames`` frames each) from ``cache``."""
    if clips < 1 or frames < 1 or tile < 16:
        raise FineCLIPERError(
            f"qc: need clips >= 1, frames >= 1, tile >= 16 (got {clips}, {frames}, {tile})"
        )
    counts = {"ok": 0, "no_face": 0, "failed": 0}
    with_face = []
    for _, status in iter_statuses(cache):
        counts[status["status"]] = counts.get(status["status"], 0) + 1
        if status["status"] == "ok":
            with_face.append(status["clip_id"])
    if not with_face:
        raise FineCLIPERError(f"{cache}: no finished clip with a face to show ({counts})")
    rows = [
        clip_row(load_clip_faces(cache, c), frames, tile) for c in pick_evenly(with_face, clips)
    ]
    width = max(r.width for r in rows)
    montage = Image.new("RGB", (width, HEADER_HEIGHT + sum(r.height for r in rows)), (32, 32, 32))
    header = "  ".join(f"{k}: {v}" for k, v in counts.items())
    ImageDraw.Draw(montage).text((2, 3), f"{cache}  {header}", fill=(255, 255, 0))
    y = HEADER_HEIGHT
    for row in rows:
        montage.paste(row, (0, y))
        y += row.height
    out = Path(out)
    with atomic_open(out, "wb") as handle:
        montage.save(handle, format="PNG")
    return QcSummary(out, len(rows), counts)
