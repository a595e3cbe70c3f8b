"""Tiny CLIP backbones with real transformers classes, for tests and smoke runs.

A letter-level CLIP BPE tokenizer and a 2-layer CLIP of width 32: real ``CLIPModel`` and
``CLIPTokenizer`` objects, randomly initialised, small enough to train a few steps on a CPU
in a test. ``save_tiny_backbone`` writes them as a Hugging Face directory, the layout a real
backbone has, so the same loading code runs.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from transformers import CLIPModel, CLIPTokenizer

from finecliper.model.architectures import Architecture

TINY_CONTEXT = 40


def tiny_bpe_tokenizer() -> CLIPTokenizer:
    """A real CLIP BPE tokenizer over letters and '.', ',' with OpenAI's special-token layout.

    Built from in-memory vocab/merges (``vocab_file=`` is silently empty in transformers v5).
    """
    pieces = list(string.ascii_lowercase) + [c + "</w>" for c in string.ascii_lowercase]
    pieces += [".", ".</w>", ",</w>", "no</w>", "th", "the</w>"]
    vocab = {piece: i for i, piece in enumerate(pieces)}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    merges = [("n", "o</w>"), ("t", "h"), ("th", "e</w>")]
    return CLIPTokenizer(vocab=vocab, merges=merges)


def tiny_architecture(vocab_size: int, image_size: int = 32) -> Architecture:
    return Architecture(
        vision_width=32,
        vision_layers=2,
        patch_size=8,
        image_size=image_size,
        text_width=32,
        text_layers=2,
        embed_dim=16,
        vocab_size=vocab_size,
        context_length=TINY_CONTEXT,
        head_width=16,
    )


def tiny_clip(vocab_size: int, image_size: int = 32, seed: int = 0) -> CLIPModel:
    torch.manual_seed(seed)
    config = tiny_architecture(vocab_size, image_size).to_config()
    return CLIPModel._from_config(config, attn_implementation="sdpa").eval()


def save_tiny_backbone(directory: str | Path, image_size: int = 32, seed: int = 0) -> Path:
    """Write a tiny random CLIP and its tokenizer as a Hugging Face directory."""
    directory = Path(directory)
    tokenizer = tiny_bpe_tokenizer()
    tiny_clip(len(tokenizer), image_size, seed).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
