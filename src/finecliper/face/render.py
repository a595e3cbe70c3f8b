"""Batched rendering of the middle-level inputs from compact data (docs/method.md 2.1).

Parsing maps and landmark coordinates are stored compactly and rendered to RGB only after the
joint spatial transform (``finecliper.data.transforms``), on the transformed frame, map and
points, so the three always line up. Both renderers take uint8 images (..., 3, H, W), work on
CPU or CUDA tensors alike, and avoid any Python loop over frames or points.

- ``render_parsing``: each face pixel (class id > 0) becomes the 50/50 blend of the frame and
  its class colour from ``PARSING_COLOURS``; background pixels keep the frame. Ids outside
  ``PARSING_CLASSES`` are treated as background (nothing is painted for an unknown class).
- ``render_landmarks``: yellow dots over the frame (the paper's figure shows them on the face);
  pass ``torch.zeros_like(frames)`` for dots on black. A dot is every pixel whose centre lies
  within ``radius + 0.5`` of the point (pixel centres at integer (x, y), as in the transforms);
  the radius defaults to ``max(1, H // 112)``. NaN points and pixels outside the image are
  skipped.
"""

from __future__ import annotations

import math

import torch

from finecliper.errors import FineCLIPERError
from finecliper.face.schema import LANDMARK_COLOUR, PARSING_CLASSES, PARSING_COLOURS


def _check_images(frames: torch.Tensor) -> None:
    if frames.dtype != torch.uint8 or frames.ndim < 3 or frames.shape[-3] != 3:
        raise FineCLIPERError(
            f"expected uint8 images (..., 3, H, W), got {frames.dtype} {tuple(frames.shape)}"
        )


def _class_tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (256, 3) tables: class colours, and 255 for the painted classes (0 elsewhere).

    Ids beyond the known classes, like the background, are not painted.
    """
    colours = torch.zeros(256, 3, dtype=torch.uint8, device=device)
    known = [PARSING_COLOURS[name] for name in PARSING_CLASSES]
    colours[: len(known)] = torch.tensor(known, dtype=torch.uint8, device=device)
    painted = torch.zeros(256, 3, dtype=torch.uint8, device=device)
    painted[1 : len(known)] = 255
    return colours, painted


def render_parsing(frames: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """Blend class colours 50/50 over the face pixels of ``frames`` (uint8 (..., 3, H, W))."""
    _check_images(frames)
    if maps.shape != frames.shape[:-3] + frames.shape[-2:]:
        raise FineCLIPERError(
            f"parsing maps {tuple(maps.shape)} do not match frames {tuple(frames.shape)}"
        )
    # Everything stays uint8 and pixel-interleaved (channels-last, as the transforms leave the
    # frames): two table gathers and bitwise ops, about three times faster than int16 maths.
    ids = maps.reshape(-1).long()
    pixel_rows = (*maps.shape, 3)
    colours, painted = _class_tables(frames.device)
    colour = colours.index_select(0, ids).view(pixel_rows).movedim(-1, -3)
    select = painted.index_select(0, ids).view(pixel_rows).movedim(-1, -3)
    blended = (frames | colour) - ((frames ^ colour) >> 1)  # ceil((a + b) / 2), no overflow
    return (blended & select) | (frames & ~select)


def landmark_radius(height: int) -> int:
    """Dot radius that keeps dots equally visible at any resolution: 1 px at 112, 2 at 224."""
    return max(1, height // 112)


def render_landmarks(
    frames: torch.Tensor, points: torch.Tensor, radius: int | None = None
) -> torch.Tensor:
    """Draw ``LANDMARK_COLOUR`` dots at ``points`` ((..., P, 2) pixel (x, y)) over ``frames``."""
    _check_images(frames)
    lead, (height, width) = frames.shape[:-3], frames.shape[-2:]
    if points.shape[:-2] != lead or points.shape[-1] != 2:
        raise FineCLIPERError(
            f"points {tuple(points.shape)} do not match frames {tuple(frames.shape)}"
        )
    radius = landmark_radius(height) if radius is None else radius
    count = math.prod(lead)
    rows = frames.reshape(count, 3, height, width).permute(0, 2, 3, 1).reshape(-1, 3)
    # One spare row at the end receives every candidate pixel that is not part of a dot.
    canvas = torch.cat([rows, rows.new_zeros(1, 3)])
    targets = _dot_pixels(points.reshape(count, -1, 2), height, width, radius)
    canvas[targets] = torch.tensor(LANDMARK_COLOUR, dtype=torch.uint8, device=frames.device)
    images = canvas[:-1].reshape(count, height, width, 3).permute(0, 3, 1, 2)
    return images.reshape(frames.shape)  # channels-last, like the transformed frames


def _dot_pixels(points: torch.Tensor, height: int, width: int, radius: int) -> torch.Tensor:
    """Flat pixel index of every dot pixel of (N, P, 2) points; ``N * H * W`` for non-dots."""
    count = points.shape[0]
    finite = torch.isfinite(points).all(-1)[..., None, None]
    # Far-away or NaN points are parked just outside the image so the integer maths stays safe.
    limit = float(max(height, width) + 2 * radius + 4)
    safe = points.float().nan_to_num(-limit).clamp(-limit, limit)
    reach = radius + 1  # candidates around the rounded point cover the whole radius + 0.5 disc
    offsets = torch.arange(-reach, reach + 1, device=points.device)
    centre = safe.round().long()
    px = centre[..., 0, None, None] + offsets.view(1, 1, 1, -1)
    py = centre[..., 1, None, None] + offsets.view(1, 1, -1, 1)
    dist2 = (px - safe[..., 0, None, None]) ** 2 + (py - safe[..., 1, None, None]) ** 2
    keep = finite & (dist2 <= (radius + 0.5) ** 2)
    keep &= (px >= 0) & (px < width) & (py >= 0) & (py < height)
    frame = torch.arange(count, device=points.device).view(-1, 1, 1, 1)
    flat = (frame * height + py) * width + px
    return torch.where(keep, flat, count * height * width).reshape(-1)
