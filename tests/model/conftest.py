"""Tiny CLIP backbones and tokenizers for the model tests (real transformers classes)."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPModel, CLIPTokenizer

from finecliper.model.batch import ModelInputs
from finecliper.model.config import ModelConfig
from finecliper.model.network import FineCLIPER
from finecliper.model.tiny import TINY_CONTEXT, tiny_architecture, tiny_bpe_tokenizer
from finecliper.model.tokenizer import TextTokenizer

CLASS_NAMES = ["happiness", "sadness", "neutral"]


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
