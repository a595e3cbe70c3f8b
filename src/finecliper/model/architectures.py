"""Built-in CLIP architectures, so configs, the meta-device summary and tests need no download.

The sizes are those of OpenAI's released models (and of the matching ``openai/clip-vit-*`` hub
configs): QuickGELU activations, LayerNorm eps 1e-5, 77-token context, 49,408-token BPE vocabulary
whose last two ids are the start- and end-of-text tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import CLIPConfig

from finecliper.errors import ConfigError

OPENAI_VOCAB = 49408
OPENAI_CONTEXT = 77


@dataclass(frozen=True)
class Architecture:
    """The shape of a CLIP model; enough to build a ``transformers.CLIPConfig``."""

    vision_width: int
    vision_layers: int
    patch_size: int
    image_size: int
    text_width: int
    text_layers: int
    embed_dim: int
    vision_mlp: int = 0  # 0: 4 x width, as in every OpenAI CLIP
    text_mlp: int = 0
    vocab_size: int = OPENAI_VOCAB
    context_length: int = OPENAI_CONTEXT
    activation: str = "quick_gelu"
    head_width: int = 64  # OpenAI CLIP: heads = width // 64 in both towers
    hub_id: str = ""  # where the pretrained weights of a built-in architecture live

    def to_config(self) -> CLIPConfig:
        """A ``CLIPConfig`` for this architecture, with SDPA attention."""
        text = {
            "hidden_size": self.text_width,
            "intermediate_size": self.text_mlp or 4 * self.text_width,
            "num_attention_heads": max(1, self.text_width // self.head_width),
            "num_hidden_layers": self.text_layers,
            "vocab_size": self.vocab_size,
            "max_position_embeddings": self.context_length,
            "hidden_act": self.activation,
            # OpenAI's vocabulary ends with <|startoftext|>, <|endoftext|>; the tokenizer pads
            # with <|endoftext|>, so the first end-of-text token is the one to pool.
            "bos_token_id": self.vocab_size - 2,
            "eos_token_id": self.vocab_size - 1,
            "pad_token_id": self.vocab_size - 1,
        }
        vision = {
            "hidden_size": self.vision_width,
            "intermediate_size": self.vision_mlp or 4 * self.vision_width,
            "num_attention_heads": max(1, self.vision_width // self.head_width),
            "num_hidden_layers": self.vision_layers,
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "hidden_act": self.activation,
        }
        config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=self.embed_dim)
        config._attn_implementation = "sdpa"
        return config


_VIT_B_16 = Architecture(768, 12, 16, 224, 512, 12, 512, hub_id="openai/clip-vit-base-patch16")
_VIT_B_32 = Architecture(768, 12, 32, 224, 512, 12, 512, hub_id="openai/clip-vit-base-patch32")
_VIT_L_14 = Architecture(1024, 24, 14, 224, 768, 12, 768, hub_id="openai/clip-vit-large-patch14")

# Every spelling users meet: HF hub ids, OpenAI's names and open_clip's.
KNOWN_ARCHITECTURES: dict[str, Architecture] = {
    "openai/clip-vit-base-patch16": _VIT_B_16,
    "openai/clip-vit-base-patch32": _VIT_B_32,
    "openai/clip-vit-large-patch14": _VIT_L_14,
    "ViT-B/16": _VIT_B_16,
    "ViT-B/32": _VIT_B_32,
    "ViT-L/14": _VIT_L_14,
    "ViT-B-16": _VIT_B_16,
    "ViT-B-32": _VIT_B_32,
    "ViT-L-14": _VIT_L_14,
}


def known_architecture(name: str) -> Architecture | None:
    return KNOWN_ARCHITECTURES.get(name)


def architecture_config(name: str) -> CLIPConfig:
    """The built-in ``CLIPConfig`` of a known architecture name; a clear error otherwise."""
    architecture = known_architecture(name)
    if architecture is None:
        known = ", ".join(KNOWN_ARCHITECTURES)
        raise ConfigError(f"unknown CLIP architecture {name!r} (known: {known})")
    return architecture.to_config()
