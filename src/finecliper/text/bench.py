"""Throughput of the describe stage with random weights: no checkpoint needed, real code path.

Builds a ``VideoLlavaForConditionalGeneration`` of Video-LLaVA-7B's shape (LLaMA-7B language
model, CLIP ViT-L/14 video tower at 224 px: 8 frames = 2,056 video tokens) or a tiny one, with
random weights and a word-level tokenizer that holds the prompt's words, then times
:class:`VideoLlavaBackend.describe` (the production path: prompt building, placeholder tokens,
plain-torch preprocessing, batched ``generate``, decoding) on synthetic 8-frame clips.
Generation is forced to its full length (``min_new_tokens``) because random weights would stop
at a random end-of-sequence token.
"""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np
import torch

from finecliper.text.backends import BackendOptions, ClipRequest
from finecliper.text.prompts import FIG3_LABELLED

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")


def build_word_tokenizer(texts: list[str], extra_tokens: list[str], vocab_size: int) -> Any:
    """A fast word-level tokenizer over the words of ``texts`` plus ``extra_tokens``."""
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for text in texts for w in re.findall(r"\w+|[^\w\s]+", text)})
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for word in words:
        vocab.setdefault(word, len(vocab))
    reserved = len(extra_tokens)
    if len(vocab) + reserved > vocab_size:
        raise ValueError(f"vocab_size {vocab_size} < {len(vocab) + reserved} tokens needed")
    while len(vocab) < vocab_size - reserved:
        vocab[f"w{len(vocab)}"] = len(vocab)
    model = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    model.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=model,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(extra_tokens)})
    return tokenizer


def video_llava_config(size: str, vocab_size: int, video_token_id: int, image_token_id: int):
    """Video-LLaVA-7B's architecture ("7b") or a tiny one for CPU checks ("tiny")."""
    from transformers import CLIPVisionConfig, LlamaConfig, VideoLlavaConfig

    if size == "7b":
        vision = CLIPVisionConfig(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=224,
            patch_size=14,
            projection_dim=768,
        )
        text = LlamaConfig(
            hidden_size=4096,
            intermediate_size=11008,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            vocab_size=vocab_size,
            max_position_embeddings=4096,
        )
    elif size == "tiny":
        vision = CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=56,
            patch_size=14,
            projection_dim=32,
        )
        text = LlamaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            vocab_size=vocab_size,
            max_position_embeddings=1024,
        )
    else:
        raise ValueError(f"size must be '7b' or 'tiny', got {size!r}")
    return VideoLlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token_id,
        video_token_index=video_token_id,
    )


def build_random_backend(size: str, options: BackendOptions) -> Any:
    """A VideoLlavaBackend around a random-weight model of the given size."""
    from transformers import VideoLlavaForConditionalGeneration

    from finecliper.text.backends.hf import pick_device, pick_dtype
    from finecliper.text.backends.video_llava import VideoLlavaBackend

    vocab_size = 32064 if size == "7b" else 512
    prompt = FIG3_LABELLED.render("Happy")
    tokenizer = build_word_tokenizer(
        [prompt, "USER: ASSISTANT:"], ["<image>", "<video>"], vocab_size
    )
    tokenizer.padding_side = "left"
    config = video_llava_config(
        size,
        vocab_size,
        video_token_id=tokenizer.convert_tokens_to_ids("<video>"),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
    )
    config.text_config.pad_token_id = tokenizer.pad_token_id
    device = pick_device(options)
    dtype = pick_dtype(options, device)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = VideoLlavaForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    return VideoLlavaBackend(model.eval(), tokenizer, f"random-video-llava-{size}", options)


def synthetic_requests(count: int, frames: int, size: int, seed: int = 0) -> list[ClipRequest]:
    rng = np.random.default_rng(seed)
    prompt = FIG3_LABELLED.render("Happy")
    return [
        ClipRequest(f"clip{i:05d}", prompt, rng.integers(0, 256, (frames, size, size, 3), np.uint8))
        for i in range(count)
    ]


def time_describe(
    backend: Any, requests: list[ClipRequest], batch_size: int, warmup_batches: int = 1
) -> dict[str, Any]:
    """clips/s of backend.describe over ``requests`` after ``warmup_batches`` untimed batches."""
    batches = [requests[i : i + batch_size] for i in range(0, len(requests), batch_size)]
    for batch in batches[:warmup_batches]:
        backend.describe(batch)
    _synchronize(backend.device)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    replies = [reply for batch in batches for reply in backend.describe(batch)]
    _synchronize(backend.device)
    seconds = time.perf_counter() - start
    sample = backend.build_inputs(requests[:1])
    return {
        "clips": len(requests),
        "batch_size": batch_size,
        "seconds": round(seconds, 3),
        "clips_per_s": round(len(requests) / seconds, 3),
        "prompt_tokens": int(sample["input_ids"].shape[1]),
        "video_tokens_per_clip": backend.tokens_per_frame * len(requests[0].frames),
        "new_tokens": backend.options.max_new_tokens,
        "errors": sum(reply.error is not None for reply in replies),
        "peak_memory_gib": _peak_memory_gib(backend.device),
    }


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
