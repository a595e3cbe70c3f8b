"""Description backends: video MLLMs through transformers, a chat-completions server, a template.

Every backend turns a batch of :class:`ClipRequest` (clip id, prompt, sampled frames or clip
folder) into one :class:`Reply` per request, in order. A failure of one clip (a server timeout,
a malformed reply, a clip without landmarks) is that clip's ``error``; the job records it and
goes on. Heavy libraries are imported only when a backend is created.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from finecliper.errors import ConfigError

BACKENDS: tuple[str, ...] = (
    "video-llava",
    "qwen2-vl",
    "openai-compatible",
    "template",
    "mafw-captions",
)
DEFAULT_MODELS: dict[str, str] = {
    "video-llava": "LanguageBind/Video-LLaVA-7B-hf",
    "qwen2-vl": "Qwen/Qwen2-VL-7B-Instruct",
    "openai-compatible": "Qwen/Qwen2-VL-7B-Instruct",
    "template": "finecliper-landmark-template",
    "mafw-captions": "mafw-with-caption-lists",
}


@dataclass(frozen=True)
class ClipRequest:
    """One clip to describe. ``frames`` is (T, H, W, 3) uint8 RGB for frame-reading backends."""

    clip_id: str
    prompt: str
    frames: np.ndarray | None = None


@dataclass(frozen=True)
class Reply:
    """The text a backend produced for one request, or why it could not."""

    text: str | None
    error: str | None = None
    frame_indices: list[int] | None = None  # set by backends that choose their own frames


@dataclass
class BackendOptions:
    """Settings shared by the backends; each one reads the fields it needs."""

    model: str | None = None
    revision: str | None = None
    device: str | None = None  # default: cuda when available, else cpu
    dtype: str | None = None  # default: bfloat16 on cuda, float32 on cpu
    max_new_tokens: int = 100  # the prompt's requirement 6: "Max 100 tokens"
    temperature: float = 0.0  # 0 = greedy decoding
    static_cache: bool = False
    compile: bool = False
    pad_to_multiple_of: int = 64  # stable prompt lengths -> fewer recompilations
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    timeout_s: float = 120.0
    retries: int = 3
    backoff_s: float = 1.0
    jpeg_quality: int = 90
    landmarks_root: Path | None = None
    dataset_root: Path | None = None  # mafw-captions: the MAFW root whose captions it reads
    extra: dict[str, Any] = field(default_factory=dict)  # further generate() settings


class Backend(Protocol):
    """What the describe job and the LLM judge need from a backend."""

    name: str
    model_id: str
    revision: str | None
    needs_frames: bool  # False: the backend reads what it needs itself (template)
    uses_prompt: bool  # False: the prompt (and so the label) never reaches the backend

    def settings(self) -> dict[str, Any]:
        """Generation settings recorded with every description."""
        ...

    def describe(self, requests: Sequence[ClipRequest]) -> list[Reply]: ...

    def complete(self, prompts: Sequence[str]) -> list[Reply]:
        """Text-only generation (the LLM judge of the leakage probe)."""
        ...


def create_backend(name: str, options: BackendOptions) -> Backend:
    """Build backend ``name``; ``options.model`` defaults to :data:`DEFAULT_MODELS`."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
    model = options.model or DEFAULT_MODELS[name]
    if name == "video-llava":
        from finecliper.text.backends.video_llava import VideoLlavaBackend

        return VideoLlavaBackend.load(model, options)
    if name == "qwen2-vl":
        from finecliper.text.backends.qwen2_vl import Qwen2VLBackend

        return Qwen2VLBackend.load(model, options)
    if name == "openai-compatible":
        from finecliper.text.backends.openai_compatible import OpenAICompatibleBackend

        return OpenAICompatibleBackend(model, options)
    if name == "mafw-captions":
        from finecliper.text.backends.mafw_captions import MafwCaptionsBackend

        return MafwCaptionsBackend.from_options(options)
    from finecliper.text.backends.template import TemplateBackend

    return TemplateBackend(options)
