"""Video-LLaVA (the paper's MLLM) through transformers, without its torchvision-bound processor.

Inputs are built the way ``VideoLlavaProcessor`` builds them: the chat text
``USER: <video>\\n{prompt} ASSISTANT:`` with ``<video>`` expanded to ``frames x (patches + 1)``
placeholder tokens (the video tower keeps each frame's CLS token: 8 x 257 = 2,056 at 224 px,
patch 14), and ``pixel_values_videos`` of shape (B, T, 3, S, S): shorter side scaled to S, centre
crop, CLIP normalisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from finecliper.text.backends import BackendOptions, ClipRequest, register_backend
from finecliper.text.backends.hf import (
    CLIP_MEAN,
    CLIP_STD,
    TransformersBackend,
    frames_tensor,
    normalize,
    shortest_edge_center_crop,
    token_id,
)

VIDEO_TOKEN = "<video>"


class VideoLlavaBackend(TransformersBackend):
    name = "video-llava"
    model_class = "VideoLlavaForConditionalGeneration"

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
        token_id(tokenizer, VIDEO_TOKEN, model.config.video_token_id, model_id)
        prep = _preprocessing(preprocessing or {}, vision.image_size)
        self.shortest_edge, self.crop = prep["shortest_edge"], prep["crop"]
        self.mean, self.std = prep["mean"], prep["std"]
        patches = (self.crop[0] // vision.patch_size) * (self.crop[1] // vision.patch_size)
        self.tokens_per_frame = patches + 1  # + the CLS token, which videos keep

    def chat_text(self, prompt: str, video_tokens: str) -> str:
        if video_tokens:
            return f"USER: {video_tokens}\n{prompt} ASSISTANT:"
        return f"USER: {prompt} ASSISTANT:"

    def pixel_values(self, requests: Sequence[ClipRequest]) -> torch.Tensor:
        clips = []
        for request in requests:
            frames = frames_tensor(request.frames, self.device)
            frames = shortest_edge_center_crop(frames, self.shortest_edge, self.crop)
            clips.append(normalize(frames, self.mean, self.std))
        return torch.stack(clips).to(self.dtype)

    def build_inputs(self, requests: Sequence[ClipRequest]) -> dict[str, Any]:
        pixel_values = self.pixel_values(requests)
        texts = [
            self.chat_text(r.prompt, VIDEO_TOKEN * (self.tokens_per_frame * len(r.frames)))
            for r in requests
        ]
        return {**self.tokenize(texts), "pixel_values_videos": pixel_values}


def _preprocessing(config: dict[str, Any], image_size: int) -> dict[str, Any]:
    """Resize/crop/normalisation settings from a (video) preprocessor config, else CLIP's."""
    size = config.get("size") or {}
    edge = size.get("shortest_edge", image_size) if isinstance(size, dict) else int(size)
    crop = config.get("crop_size") or {"height": image_size, "width": image_size}
    if not isinstance(crop, dict):
        crop = {"height": int(crop), "width": int(crop)}
    return {
        "shortest_edge": int(edge),
        "crop": (int(crop["height"]), int(crop["width"])),
        "mean": tuple(config.get("image_mean") or CLIP_MEAN),
        "std": tuple(config.get("image_std") or CLIP_STD),
    }


@register_backend("video-llava", default_model="LanguageBind/Video-LLaVA-7B-hf")
def load_video_llava(model: str, options: BackendOptions) -> VideoLlavaBackend:
    return VideoLlavaBackend.load(model, options)
