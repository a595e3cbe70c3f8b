"""Shared by the transformers video-MLLM backends: loading, frame preprocessing, generation.

The processors that transformers ships for these models resize videos with torchvision, which does
not import next to every torch build (environment.md). So the backends build the model inputs
themselves in plain torch: placeholder tokens expanded in the prompt text, frames resized with
bicubic antialiasing, centre-cropped or patchified, and normalised, on the model's device.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from finecliper.errors import ConfigError
from finecliper.io import read_text
from finecliper.runtime.device import resolve_device
from finecliper.text.backends import BackendOptions, ClipRequest, Reply

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device(options: BackendOptions) -> torch.device:
    return resolve_device(options.device or "auto", "--device")


def pick_dtype(options: BackendOptions, device: torch.device) -> torch.dtype:
    if options.dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if options.dtype not in _DTYPES:
        raise ConfigError(f"dtype {options.dtype!r}: expected one of {', '.join(_DTYPES)}")
    return _DTYPES[options.dtype]


def read_model_json(model: str, filename: str, revision: str | None) -> dict[str, Any] | None:
    """A JSON file of a model directory or hub repository, or None where it has none."""
    from transformers.utils import cached_file

    try:
        path = cached_file(
            model,
            filename,
            revision=revision,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
    except OSError:
        return None
    if path is None:
        return None
    return json.loads(read_text(path))


def load_tokenizer(model: str, revision: str | None) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model, revision=revision)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the tokenizer of {model}: {exc}") from exc
    tokenizer.padding_side = "left"  # decoder-only batched generation continues on the right
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def load_model(model_class: Any, model: str, options: BackendOptions) -> Any:
    device = pick_device(options)
    try:
        loaded = model_class.from_pretrained(
            model, revision=options.revision, dtype=pick_dtype(options, device)
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load model {model}: {exc}") from exc
    return loaded.to(device).eval()


def token_id(tokenizer: Any, token: str, expected: int, model_id: str) -> int:
    """Check that the tokenizer maps ``token`` to the id the model's config expects."""
    found = tokenizer.convert_tokens_to_ids(token)
    if found != expected:
        raise ConfigError(
            f"{model_id}: tokenizer maps {token!r} to {found}, the model config expects {expected}"
        )
    return found


def frames_tensor(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, H, W) float32 in [0, 255] on ``device``."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3) RGB, got shape {frames.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).to(device, non_blocking=True)
    return tensor.permute(0, 3, 1, 2).float()


def resize(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bicubic resize of (T, 3, H, W) float frames in [0, 255], antialiased when shrinking."""
    if frames.shape[-2:] == (height, width):
        return frames
    shrinking = height < frames.shape[-2] or width < frames.shape[-1]
    resized = F.interpolate(
        frames, size=(height, width), mode="bicubic", align_corners=False, antialias=shrinking
    )
    return resized.clamp_(0.0, 255.0)


def normalize(frames: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """[0, 255] frames -> (x / 255 - mean) / std per channel."""
    mean_t = torch.tensor(mean, device=frames.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=frames.device).view(1, 3, 1, 1)
    return (frames / 255.0 - mean_t) / std_t


def shortest_edge_center_crop(
    frames: torch.Tensor, edge: int, crop: tuple[int, int]
) -> torch.Tensor:
    """CLIP-style preprocessing: scale the shorter side to ``edge``, then centre-crop ``crop``."""
    height, width = frames.shape[-2:]
    scale = edge / min(height, width)
    new_h, new_w = max(crop[0], round(height * scale)), max(crop[1], round(width * scale))
    frames = resize(frames, new_h, new_w)
    top, left = (new_h - crop[0]) // 2, (new_w - crop[1]) // 2
    return frames[:, :, top : top + crop[0], left : left + crop[1]]


class TransformersBackend:
    """Batched ``generate`` and decoding for a transformers vision-language model.

    Subclasses turn requests into the model's keyword inputs (:meth:`build_inputs`) and write the
    chat text around a prompt (:meth:`chat_text`).
    """

    name = ""
    needs_frames = True
    uses_prompt = True
    model_class = ""  # the transformers class name, imported only when loading

    def __init__(self, model: Any, tokenizer: Any, model_id: str, options: BackendOptions):
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.options = options
        self.revision = options.revision or getattr(model.config, "_commit_hash", None)
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype

    @classmethod
    def load(cls, model: str, options: BackendOptions) -> Any:
        """The model, its tokenizer and its (video) preprocessing settings from a dir or hub id."""
        import transformers

        loaded = load_model(getattr(transformers, cls.model_class), model, options)
        preprocessing = read_model_json(
            model, "video_preprocessor_config.json", options.revision
        ) or read_model_json(model, "preprocessor_config.json", options.revision)
        tokenizer = load_tokenizer(model, options.revision)
        return cls(loaded, tokenizer, model, options, preprocessing)  # type: ignore[call-arg]

    def settings(self) -> dict[str, Any]:
        import transformers

        return {
            "max_new_tokens": self.options.max_new_tokens,
            "do_sample": self.options.temperature > 0,
            "temperature": self.options.temperature,
            "num_beams": 1,
            "static_cache": self.options.static_cache,
            "compile": self.options.compile,
            "dtype": str(self.dtype).removeprefix("torch."),
            "transformers": transformers.__version__,
            **self.options.extra,
        }

    def chat_text(self, prompt: str, video_tokens: str) -> str:
        raise NotImplementedError

    def build_inputs(self, requests: Sequence[ClipRequest]) -> dict[str, Any]:
        raise NotImplementedError

    def describe(self, requests: Sequence[ClipRequest]) -> list[Reply]:
        missing = [r.clip_id for r in requests if r.frames is None]
        if missing:
            raise ValueError(f"{self.name} needs frames; none given for {missing[0]}")
        inputs = self.build_inputs(requests)
        return self._generate(inputs)

    def complete(self, prompts: Sequence[str]) -> list[Reply]:
        texts = [self.chat_text(prompt, "") for prompt in prompts]
        return self._generate(self.tokenize(texts))

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(
            list(texts),
            return_tensors="pt",
            padding=True,
            pad_to_multiple_of=self.options.pad_to_multiple_of or None,
            add_special_tokens=True,
        )
        return {key: value.to(self.device) for key, value in encoded.items()}

    def generation_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.options.max_new_tokens,
            "do_sample": self.options.temperature > 0,
            "num_beams": 1,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if self.options.temperature > 0:
            kwargs["temperature"] = self.options.temperature
        if self.options.static_cache:
            kwargs["cache_implementation"] = "static"
            # transformers compiles the decoding step for static caches on GPU by itself.
            kwargs["disable_compile"] = not self.options.compile
        kwargs.update(self.options.extra)
        return kwargs

    @torch.inference_mode()
    def _generate(self, inputs: dict[str, Any]) -> list[Reply]:
        kwargs = {**self.generation_kwargs(), **inputs}
        output = self.model.generate(**kwargs)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [
            Reply(text=text.strip()) if text.strip() else Reply(None, "the model produced no text")
            for text in texts
        ]
