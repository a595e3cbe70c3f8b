"""Following ONE face through a clip and cutting a steady square crop around it.

Detections are linked frame to frame into tracks by overlap (IoU), or by centre distance when a
fast movement breaks the overlap. The main face is the track with the largest sum of score x box
size over its frames: the face that is on screen longest and largest, not one passing by. Frames
where the main face was missed get a box interpolated from its neighbours, and the box centre and
size are smoothed over time so the crop does not jitter. Several faces are never merged into one
union box (that ruins self-extracted MAFW faces, datasets.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from finecliper.face.detect import FaceBox

Track = dict[int, FaceBox]  # frame position -> box


@dataclass(frozen=True)
class CropBox:
    """A square crop in source-frame pixels: top-left corner and side (may leave the frame)."""

    x0: int
    y0: int
    side: int

    def as_list(self) -> list[int]:
        return [self.x0, self.y0, self.side]


def _affinity(last: FaceBox, box: FaceBox, min_iou: float) -> float:
    """How well ``box`` continues a track that last showed ``last``; 0 = not at all."""
    iou = last.iou(box)
    if iou >= min_iou:
        return iou
    size = math.sqrt(max(last.area, 1e-6))
    distance = math.dist(last.centre, box.centre)
    ratio = math.sqrt(max(box.area, 1e-6)) / size
    if distance <= 0.5 * size and 0.5 <= ratio <= 2.0:
        return min_iou / 2  # a weak link: same place and size, moved too fast to overlap much
    return 0.0


def link_tracks(
    detections: Sequence[Sequence[FaceBox]], *, min_iou: float = 0.2, max_gap: int = 8
) -> list[Track]:
    """Greedy frame-to-frame linking of detections into tracks (each box in exactly one track)."""
    tracks: list[Track] = []
    last_seen: list[int] = []
    for t, boxes in enumerate(detections):
        active = [k for k in range(len(tracks)) if t - last_seen[k] <= max_gap]
        pairs = []
        for k in active:
            last = tracks[k][last_seen[k]]
            pairs += [(_affinity(last, box, min_iou), k, j) for j, box in enumerate(boxes)]
        used_tracks: set[int] = set()
        used_boxes: set[int] = set()
        for score, k, j in sorted(pairs, key=lambda p: -p[0]):
            if score > 0 and k not in used_tracks and j not in used_boxes:
                tracks[k][t] = boxes[j]
                last_seen[k] = t
                used_tracks.add(k)
                used_boxes.add(j)
        for j, box in enumerate(boxes):
            if j not in used_boxes:
                tracks.append({t: box})
                last_seen.append(t)
    return tracks


def main_track(tracks: Sequence[Track]) -> Track | None:
    """The track with the largest sum of score x box side: longest on screen, largest, surest."""

    def weight(track: Track) -> float:
        return sum(b.score * math.sqrt(max(b.area, 0.0)) for b in track.values())

    return max(tracks, key=weight, default=None)


def follow_main_face(
    detections: Sequence[Sequence[FaceBox]], *, min_iou: float = 0.2, max_gap: int = 8
) -> list[FaceBox | None]:
    """Per frame, the main face's detected box, or None where it was not detected."""
    track = main_track(link_tracks(detections, min_iou=min_iou, max_gap=max_gap))
    if track is None:
        return [None] * len(detections)
    return [track.get(t) for t in range(len(detections))]


def _fill_gaps(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Linear interpolation of rows where ``known`` is False (held constant past the ends)."""
    positions = np.arange(len(values))
    return np.stack(
        [np.interp(positions, positions[known], values[known, c]) for c in range(values.shape[1])],
        axis=1,
    )


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) == 1:
        return values
    half = window // 2
    padded = np.pad(values, ((half, half), (0, 0)), mode="edge")
    kernel = np.ones(2 * half + 1) / (2 * half + 1)
    return np.stack(
        [np.convolve(padded[:, c], kernel, mode="valid") for c in range(values.shape[1])], axis=1
    )


def crop_boxes(
    boxes: Sequence[FaceBox | None], *, margin: float = 0.25, smooth: int = 5
) -> list[CropBox] | None:
    """Square crops (side = box size x (1 + 2 margin)) around the followed face, gap-filled and
    smoothed over ``smooth`` frames; None if the face was found in no frame."""
    known = np.array([b is not None for b in boxes])
    if not known.any():
        return None
    values = np.array(
        [(b.centre[0], b.centre[1], max(b.width, b.height)) if b else (0, 0, 0) for b in boxes],
        dtype=np.float64,
    )
    values = _moving_average(_fill_gaps(values, known), smooth)
    crops = []
    for cx, cy, size in values:
        side = max(round(float(size) * (1 + 2 * margin)), 2)
        crops.append(CropBox(round(float(cx) - side / 2), round(float(cy) - side / 2), side))
    return crops


def centre_crop_box(width: int, height: int) -> CropBox:
    """The largest centred square: the fallback when no face was detected anywhere."""
    side = min(width, height)
    return CropBox((width - side) // 2, (height - side) // 2, side)


def crop_square(image: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Cut ``box`` out of an (H, W, 3) frame (black outside the frame) and resize to size x size."""
    region = Image.fromarray(image).crop((box.x0, box.y0, box.x0 + box.side, box.y0 + box.side))
    if region.size != (size, size):
        region = region.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(region, dtype=np.uint8)
