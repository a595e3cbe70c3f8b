"""Joint spatial transforms of a clip's frames, parsing maps and landmarks, in plain torch.

One crop box and one flip decision per clip are applied identically to every frame, to its
parsing map and to its landmarks (docs/method.md 3), so the middle-level renderings made afterwards
(``finecliper.face.render``) line up with the frame pixel for pixel. Only tensor ops are used,
so the same code runs on CPU workers or on a GPU batch.

Coordinate convention: landmarks are (x, y) with pixel *centres* at integer coordinates, i.e.
the pixel in row ``i``, column ``j`` is centred on ``(x, y) = (j, i)`` and covers
``[j - 0.5, j + 0.5]``; an image of width ``W`` spans ``x`` in ``[-0.5, W - 0.5]``. Hence

- crop at ``(top, left)``: ``x -> x - left``, ``y -> y - top``;
- resize from ``w`` to ``W'`` columns: ``x -> (x + 0.5) * W' / w - 0.5`` (the geometry of
  ``interpolate(..., align_corners=False)`` and of the nearest-exact gather for parsing maps);
- horizontal flip: ``x -> W - 1 - x``, plus the left/right index swap ``LANDMARK_FLIP``.

A landmark on pixel ``(j, i)`` therefore lands exactly on the pixel the transform moves it to.
Points that leave the crop keep their (out-of-image) coordinates; renderers skip them.

Typical use: ``ClipTransform`` (uint8 in, uint8 out) -> render parsing/landmark images ->
``clip_normalize`` on the frames and on the renderings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from finecliper.data.config import DataConfig
from finecliper.errors import FineCLIPERError
from finecliper.face.schema import LANDMARK_FLIP, NUM_LANDMARKS, PARSING_FLIP

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CROP_ATTEMPTS = 10  # draws of a random box before falling back to a centre crop


@dataclass(frozen=True)
class ClipSample:
    """A clip's spatial data. ``frames`` are uint8, or float on the 0-255 scale.

    Shapes for one clip: frames (T, 3, H, W), parsing (T, H, W) uint8 class ids, landmarks
    (T, 68, 2) float pixel (x, y) with NaN rows for frames without a face. The functions below
    also accept any extra leading dimensions, e.g. a batch (B, T, ...) sharing one crop box.
    """

    frames: torch.Tensor
    parsing: torch.Tensor | None = None
    landmarks: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.frames.ndim < 3 or self.frames.shape[-3] != 3:
            raise FineCLIPERError(f"frames must be (..., 3, H, W), got {tuple(self.frames.shape)}")
        height, width = self.frames.shape[-2:]
        if self.parsing is not None and self.parsing.shape[-2:] != (height, width):
            raise FineCLIPERError(
                f"parsing maps {tuple(self.parsing.shape)} do not match frames "
                f"{tuple(self.frames.shape)} in size"
            )
        if self.landmarks is not None and self.landmarks.shape[-2:] != (NUM_LANDMARKS, 2):
            raise FineCLIPERError(
                f"landmarks must be (..., {NUM_LANDMARKS}, 2), got {tuple(self.landmarks.shape)}"
            )

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the frames."""
        return int(self.frames.shape[-2]), int(self.frames.shape[-1])


@dataclass(frozen=True)
class CropBox:
    """A crop rectangle in pixels of the source image."""

    top: int
    left: int
    height: int
    width: int


def center_square_box(height: int, width: int) -> CropBox:
    """The largest centred square: resize-shorter-side-then-centre-crop in one step."""
    side = min(height, width)
    return CropBox((height - side) // 2, (width - side) // 2, side, side)


def sample_crop_box(
    height: int,
    width: int,
    scale: tuple[float, float] = (0.8, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> CropBox:
    """Random box covering ``scale`` of the area with aspect (w/h) log-uniform in ``ratio``."""
    device = generator.device if generator is not None else "cpu"
    draws = torch.rand(CROP_ATTEMPTS, 4, generator=generator, device=device, dtype=torch.float64)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for u_area, u_ratio, u_top, u_left in draws.tolist():
        area = height * width * (scale[0] + u_area * (scale[1] - scale[0]))
        aspect = math.exp(log_lo + u_ratio * (log_hi - log_lo))
        box_w = round(math.sqrt(area * aspect))
        box_h = round(math.sqrt(area / aspect))
        if 0 < box_w <= width and 0 < box_h <= height:
            top = min(int(u_top * (height - box_h + 1)), height - box_h)
            left = min(int(u_left * (width - box_w + 1)), width - box_w)
            return CropBox(top, left, box_h, box_w)
    return _center_box_within_ratio(height, width, ratio)


def _center_box_within_ratio(height: int, width: int, ratio: tuple[float, float]) -> CropBox:
    """Fallback when no draw fits: the whole image, trimmed to the allowed aspect range."""
    box_h, box_w = height, width
    if width / height < ratio[0]:
        box_h = round(width / ratio[0])
    elif width / height > ratio[1]:
        box_w = round(height * ratio[1])
    return CropBox((height - box_h) // 2, (width - box_w) // 2, box_h, box_w)


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic resize of (..., 3, H, W) frames, PIL's kernel; dtype kept.

    PIL's bicubic (a = -0.5, antialiased when shrinking) is what CLIP's own preprocessing used.
    uint8 frames on the CPU go through torch's uint8 kernel in channels-last layout (PIL's
    result to within a level or two, and at 224 px about 15 times faster than resizing in
    float); the output stays channels-last. Elsewhere (float frames, or a GPU) the same kernel
    runs in float, one axis at a time and clamped between the passes as PIL does, so every
    device gives the same pixels to within one level.
    """
    height, width = frames.shape[-2:]
    if (height, width) == size:
        return frames
    lead = frames.shape[:-3]
    flat = frames.reshape(-1, *frames.shape[-3:])
    if frames.dtype == torch.uint8 and frames.device.type == "cpu":
        flat = flat.contiguous(memory_format=torch.channels_last)
        out = F.interpolate(flat, size=size, mode="bicubic", align_corners=False, antialias=True)
        return out.reshape(*lead, *out.shape[-3:])
    out = flat.float() if frames.dtype == torch.uint8 else flat
    for step in ((height, size[1]), size):  # columns first, then rows, as PIL
        if out.shape[-2:] != step:
            out = F.interpolate(out, size=step, mode="bicubic", align_corners=False, antialias=True)
            out = out.clamp_(0, 255)  # bicubic overshoots at edges
            if frames.dtype == torch.uint8:
                out = out.round_()
    return out.to(frames.dtype).reshape(*lead, *out.shape[-3:])


def _nearest_sources(
    start: int, length: int, out_length: int, device: torch.device
) -> torch.Tensor:
    """Source index of each output pixel for nearest resampling of ``[start, start + length)``.

    Output pixel ``i`` is centred on source ``(i + 0.5) * length / out_length - 0.5``; the pixel
    containing that point is ``floor((2i + 1) * length / (2 * out_length))``, exact in integers.
    """
    steps = torch.arange(out_length, device=device, dtype=torch.int64)
    return start + (2 * steps + 1) * length // (2 * out_length)


def resized_crop(sample: ClipSample, box: CropBox, size: tuple[int, int]) -> ClipSample:
    """Crop ``box`` out of frames, parsing maps and landmarks alike, then resize to ``size``."""
    bottom, right = box.top + box.height, box.left + box.width
    height, width = sample.size
    if (
        min(box.top, box.left) < 0
        or min(box.height, box.width) <= 0
        or bottom > height
        or right > width
    ):
        raise FineCLIPERError(f"crop {box} does not fit inside {height}x{width} frames")
    frames = resize_frames(sample.frames[..., box.top : bottom, box.left : right], size)
    parsing = sample.parsing
    if parsing is not None:
        device = parsing.device
        rows = _nearest_sources(box.top, box.height, size[0], device)
        cols = _nearest_sources(box.left, box.width, size[1], device)
        parsing = parsing.index_select(-2, rows).index_select(-1, cols)
    landmarks = sample.landmarks
    if landmarks is not None:
        origin = landmarks.new_tensor([box.left, box.top])
        stretch = landmarks.new_tensor([size[1] / box.width, size[0] / box.height])
        landmarks = (landmarks - origin + 0.5) * stretch - 0.5
    return ClipSample(frames, parsing, landmarks)


def hflip(sample: ClipSample) -> ClipSample:
    """Mirror left-right; the subject's left/right parsing classes and landmarks swap too."""
    frames = sample.frames.flip(-1)
    parsing = sample.parsing
    if parsing is not None:
        # Relabel while the map is still contiguous (a flat table gather), then mirror.
        table = _parsing_flip_table(parsing.device)
        parsing = table.index_select(0, parsing.reshape(-1).long()).view(parsing.shape).flip(-1)
    landmarks = sample.landmarks
    if landmarks is not None:
        width = sample.size[1]
        mirrored = torch.stack([width - 1 - landmarks[..., 0], landmarks[..., 1]], dim=-1)
        order = torch.tensor(LANDMARK_FLIP, device=landmarks.device)
        landmarks = mirrored.index_select(-2, order)
    return ClipSample(frames, parsing, landmarks)


def _parsing_flip_table(device: torch.device) -> torch.Tensor:
    """uint8 lookup over all 256 ids: known classes swapped, unknown ids left as they are."""
    table = torch.arange(256, dtype=torch.uint8, device=device)
    table[: len(PARSING_FLIP)] = torch.tensor(PARSING_FLIP, dtype=torch.uint8, device=device)
    return table


def clip_normalize(frames: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) uint8 or 0-255 float -> float32 normalised with CLIP's mean and std."""
    mean = torch.tensor(CLIP_MEAN, device=frames.device).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, device=frames.device).view(3, 1, 1)
    return (frames.float() / 255.0 - mean) / std


class ClipTransform:
    """Train: random resized crop + random flip; eval: centre square + resize. Spatial only.

    Input frames may be one clip (T, 3, H, W) or a batch (B, T, 3, H, W); each clip of a batch
    draws its own crop and flip, shared by its frames, parsing maps and landmarks. Output frames
    keep their dtype (uint8 stays uint8, for rendering before ``clip_normalize``).
    """

    def __init__(
        self,
        image_size: int,
        *,
        train: bool,
        crop_scale: tuple[float, float] = (0.8, 1.0),
        crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
        hflip_prob: float = 0.5,
    ) -> None:
        if not 0 < crop_scale[0] <= crop_scale[1] <= 1:
            raise FineCLIPERError(f"crop_scale must satisfy 0 < min <= max <= 1, got {crop_scale}")
        if not 0 < crop_ratio[0] <= crop_ratio[1]:
            raise FineCLIPERError(f"crop_ratio must satisfy 0 < min <= max, got {crop_ratio}")
        if not 0 <= hflip_prob <= 1:
            raise FineCLIPERError(f"hflip_prob must be in [0, 1], got {hflip_prob}")
        self.size = (image_size, image_size)
        self.train = train
        self.crop_scale = crop_scale
        self.crop_ratio = crop_ratio
        self.hflip_prob = hflip_prob

    @classmethod
    def from_config(cls, data: DataConfig, *, train: bool) -> ClipTransform:
        return cls(
            data.image_size,
            train=train,
            crop_scale=(data.crop_scale_min, 1.0),
            hflip_prob=data.hflip_prob,
        )

    def __call__(self, sample: ClipSample, generator: torch.Generator | None = None) -> ClipSample:
        if sample.frames.ndim == 4:
            return self._one_clip(sample, generator)
        if sample.frames.ndim != 5:
            raise FineCLIPERError(
                f"expected frames (T, 3, H, W) or (B, T, 3, H, W), got {tuple(sample.frames.shape)}"
            )
        clips = [self._one_clip(_clip(sample, b), generator) for b in range(sample.frames.shape[0])]
        return _stack(clips)

    def _one_clip(self, sample: ClipSample, generator: torch.Generator | None) -> ClipSample:
        height, width = sample.size
        if not self.train:
            return resized_crop(sample, center_square_box(height, width), self.size)
        box = sample_crop_box(height, width, self.crop_scale, self.crop_ratio, generator)
        out = resized_crop(sample, box, self.size)
        device = generator.device if generator is not None else "cpu"
        if torch.rand((), generator=generator, device=device).item() < self.hflip_prob:
            out = hflip(out)
        return out


def _clip(sample: ClipSample, index: int) -> ClipSample:
    """Clip ``index`` of a batched sample."""
    return replace(
        sample,
        frames=sample.frames[index],
        parsing=None if sample.parsing is None else sample.parsing[index],
        landmarks=None if sample.landmarks is None else sample.landmarks[index],
    )


def _stack(clips: list[ClipSample]) -> ClipSample:
    first = clips[0]
    return ClipSample(
        torch.stack([c.frames for c in clips]),
        None if first.parsing is None else torch.stack([c.parsing for c in clips]),
        None if first.landmarks is None else torch.stack([c.landmarks for c in clips]),
    )
