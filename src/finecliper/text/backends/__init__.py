"""Description backends: video MLLMs through transformers, a chat-completions server, a template.

Every backend turns a batch of :class:`ClipRequest` (clip id, prompt, sampled frames or clip
folder) into one :class:`Reply` per request, in order. A failure of one clip (a server timeout,
a malformed reply, a clip without landmarks) is that clip's ``error``; the job records it and
goes on. Heavy libraries are imported only when a backend is created.

Adding a backend is one new module in this package whose factory (a class or function called as
``factory(model, options)``) carries ``@register_backend("name", default_model="...")``; add
``judge=False`` when it cannot serve as the LLM judge (text-only ``complete``). ``finecliper
describe --backend`` and ``refine --judge-backend`` then offer it, and its module is imported only
when the backend is created (see :mod:`finecliper.registry`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from finecliper.errors import ConfigError
from finecliper.registry import Registry

if TYPE_CHECKING:  # numpy is not needed to list the backends (finecliper --help)
    import numpy as np


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


BackendFactory = Callable[[str, BackendOptions], Backend]
BACKENDS: Registry[BackendFactory] = Registry("backend", __name__, "register_backend")


def register_backend(
    name: str, *, default_model: str, judge: bool = True
) -> Callable[[BackendFactory], BackendFactory]:
    """Decorator: create backend ``name`` with ``factory(model, options)``; ``default_model``
    is used when ``options.model`` is not set; ``judge`` says whether it can be the LLM judge."""
    return BACKENDS.register(name, default_model=default_model, judge=judge)


def backend_names(*, judge: bool = False) -> tuple[str, ...]:
    """The registered backends, sorted; with ``judge``, those that can be the LLM judge."""
    return tuple(
        name for name in BACKENDS.names() if not judge or BACKENDS.info(name).get("judge", True)
    )


def create_backend(name: str, options: BackendOptions) -> Backend:
    """Build backend ``name``; ``options.model`` defaults to the backend's ``default_model``."""
    backend = BACKENDS.get(name)
    if backend is None:
        raise ConfigError(f"unknown backend {name!r} (choose from {', '.join(backend_names())})")
    return backend.target(options.model or backend.info["default_model"], options)
