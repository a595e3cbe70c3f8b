"""Tiny CLIP backbones and tokenizers for the model tests (real transformers classes)."""

from __future__ import annotations

import string

import pytest
import torch
from transformers import CLIPModel, CLIPTokenizer

from finecliper.model.architectures import Architecture
from finecliper.model.config import ModelConfig
from finecliper.model.network import FineCLIPER, ModelInputs
from finecliper.model.tokenizer import TextTokenizer

CLASS_NAMES = ["happiness", "sadness", "neutral"]
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


def tiny_architecture(vocab_size: int) -> Architecture:
    return Architecture(
        vision_width=32,
        vision_layers=2,
        patch_size=8,
        image_size=32,
        text_width=32,
        text_layers=2,
        embed_dim=16,
        vocab_size=vocab_size,
        context_length=TINY_CONTEXT,
        head_width=16,
    )


@pytest.fixture
def bpe() -> CLIPTokenizer:
    return tiny_bpe_tokenizer()


@pytest.fixture
def tokenizer(bpe: CLIPTokenizer) -> TextTokenizer:
    return TextTokenizer(bpe, len(bpe), TINY_CONTEXT, "tiny")


@pytest.fixture
def clip(tokenizer: TextTokenizer) -> CLIPModel:
    torch.manual_seed(0)
    config = tiny_architecture(len(tokenizer.tokenizer)).to_config()
    return CLIPModel._from_config(config, attn_implementation="sdpa").eval()


@pytest.fixture
def make_model(clip: CLIPModel, tokenizer: TextTokenizer):
    """Build a FineCLIPER on the shared tiny CLIP with config overrides."""

    def make(num_frames: int = 4, **overrides) -> FineCLIPER:
        torch.manual_seed(1)
        model = FineCLIPER(ModelConfig(**overrides), clip, num_frames, tokenizer)
        model.set_class_names(CLASS_NAMES)
        return model

    return make


DESCRIPTIONS = [
    "the brows rise and the mouth opens.",
    "the lips press, the eyes narrow.",
    "no movement.",
    "the head turns and the chin drops slowly.",
]


@pytest.fixture
def make_inputs(tokenizer: TextTokenizer):
    """Random CLIP-sized inputs for a batch of clips, every modality present."""

    def make(batch: int = 2, frames: int = 4, size: int = 32, seed: int = 0) -> ModelInputs:
        generator = torch.Generator().manual_seed(seed)
        shape = (batch, frames, 3, size, size)
        tokens = tokenizer([DESCRIPTIONS[i % len(DESCRIPTIONS)] for i in range(batch)])
        return ModelInputs(
            frames=torch.randn(shape, generator=generator),
            parsing=torch.randn(shape, generator=generator),
            landmarks=torch.randn(shape, generator=generator),
            description_ids=tokens.input_ids,
            description_mask=tokens.attention_mask,
        )

    return make
