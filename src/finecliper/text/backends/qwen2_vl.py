"""Qwen2-VL, a newer open video MLLM, through transformers without its torchvision video processor.

Inputs follow the Qwen2-VL video layout: each frame resized (aspect kept) to a multiple of
``patch_size x merge_size`` within a pixel budget, frames grouped in pairs (temporal patches;
an odd count repeats the last frame), then flattened into patches of
``3 x temporal_patch x patch x patch`` values in merge-window order, with ``video_grid_thw``
= (T / 2, H / patch, W / patch) per clip. The chat text wraps
``<|vision_start|><|video_pad|> x N<|vision_end|>`` with N = T/2 x H/patch x W/patch / merge^2.
Face clips of 224 px become 336 px (the default minimum of 128 x 28 x 28 pixels): 576 video
tokens for 8 frames, against Video-LLaVA's 2,056.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from finecliper.errors import ConfigError
from finecliper.text.backends import BackendOptions, ClipRequest, register_backend
from finecliper.text.backends.hf import (
    CLIP_MEAN,
    CLIP_STD,
    TransformersBackend,
    frames_tensor,
    normalize,
    resize,
    token_id,
)

VIDEO_PAD = "<|video_pad|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
SYSTEM = "You are a helpful assistant."
# transformers' Qwen2-VL video processor defaults (pixels per frame).
MIN_PIXELS = 128 * 28 * 28
MAX_PIXELS = 768 * 28 * 28


def smart_size(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple:
    """The (height, width) nearest to the input that is a multiple of ``factor`` and whose area
    lies within [min_pixels, max_pixels], aspect ratio kept as well as possible."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"frame aspect ratio {width}x{height} is too extreme for Qwen2-VL")
    new_h = max(factor, round(height / factor) * factor)
    new_w = max(factor, round(width / factor) * factor)
    if new_h * new_w > max_pixels:
        scale = math.sqrt(height * width / max_pixels)
        new_h = max(factor, math.floor(height / scale / factor) * factor)
        new_w = max(factor, math.floor(width / scale / factor) * factor)
    elif new_h * new_w < min_pixels:
        scale = math.sqrt(min_pixels / (height * width))
        new_h = math.ceil(height * scale / factor) * factor
        new_w = math.ceil(width * scale / factor) * factor
    return new_h, new_w


def patchify(frames: torch.Tensor, patch: int, merge: int, temporal: int) -> tuple:
    """(T, 3, H, W) normalised frames -> (patches, 3 * temporal * patch^2) and (t, h, w) grid."""
    if pad := -frames.shape[0] % temporal:
        frames = torch.cat([frames, frames[-1:].expand(pad, -1, -1, -1)])
    count, channels, height, width = frames.shape
    grid = (count // temporal, height // patch, width // patch)
    blocks = frames.reshape(
        grid[0], temporal, channels, grid[1] // merge, merge, patch, grid[2] // merge, merge, patch
    )
    # -> time, merge-window row, window col, row in window, col in window, channel, time, y, x
    blocks = blocks.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    flat = blocks.reshape(grid[0] * grid[1] * grid[2], channels * temporal * patch * patch)
    return flat, grid


class Qwen2VLBackend(TransformersBackend):
    name = "qwen2-vl"
    model_class = "Qwen2VLForConditionalGeneration"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        model_id: str,
        options: BackendOptions,
        preprocessing: dict[str, Any] | None = None,
    ):
        super().__init__(model, tokenizer, model_id, options)
        vision = model.config.vision_config
        config = model.config
        token_id(tokenizer, VIDEO_PAD, config.video_token_id, model_id)
        token_id(tokenizer, VISION_START, config.vision_start_token_id, model_id)
        self.patch = vision.patch_size
        self.merge = vision.spatial_merge_size
        self.temporal = vision.temporal_patch_size
        prep = preprocessing or {}
        self.min_pixels, self.max_pixels = _pixel_budget(prep)
        self.mean = tuple(prep.get("image_mean") or CLIP_MEAN)
        self.std = tuple(prep.get("image_std") or CLIP_STD)

    def chat_text(self, prompt: str, video_tokens: str) -> str:
        vision = f"{VISION_START}{video_tokens}{VISION_END}" if video_tokens else ""
        return (
            f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
            f"<|im_start|>user\n{vision}{prompt}<|im_end|>\n<|im_start|>assistant\n"
        )

    def video_patches(self, frames: Any) -> tuple[torch.Tensor, tuple[int, int, int]]:
        tensor = frames_tensor(frames, self.device)
        factor = self.patch * self.merge
        height, width = smart_size(*tensor.shape[-2:], factor, self.min_pixels, self.max_pixels)
        tensor = normalize(resize(tensor, height, width), self.mean, self.std)
        return patchify(tensor, self.patch, self.merge, self.temporal)

    def build_inputs(self, requests: Sequence[ClipRequest]) -> dict[str, Any]:
        patches, grids, texts = [], [], []
        for request in requests:
            flat, grid = self.video_patches(request.frames)
            patches.append(flat)
            grids.append(grid)
            tokens = grid[0] * grid[1] * grid[2] // (self.merge * self.merge)
            texts.append(self.chat_text(request.prompt, VIDEO_PAD * tokens))
        return {
            **self.tokenize(texts),
            "pixel_values_videos": torch.cat(patches).to(self.dtype),
            "video_grid_thw": torch.tensor(grids, device=self.device),
        }


def _pixel_budget(config: dict[str, Any]) -> tuple[int, int]:
    """(min, max) pixels per frame from a Qwen2-VL (video) preprocessor config."""
    size = config.get("size") or {}
    low = config.get("min_pixels") or size.get("shortest_edge") or MIN_PIXELS
    high = config.get("max_pixels") or size.get("longest_edge") or MAX_PIXELS
    if low > high:
        raise ConfigError(f"Qwen2-VL preprocessing: min_pixels {low} > max_pixels {high}")
    return int(low), int(high)


@register_backend("qwen2-vl", default_model="Qwen/Qwen2-VL-7B-Instruct")
def load_qwen2_vl(model: str, options: BackendOptions) -> Qwen2VLBackend:
    return Qwen2VLBackend.load(model, options)
