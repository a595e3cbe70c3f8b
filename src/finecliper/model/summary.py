"""Parameter counts of a FineCLIPER variant, built on the meta device (no weights, no memory).

The backbone's architecture comes from the built-in definitions, a config directory or a
checkpoint's shapes (:func:`finecliper.model.backbone.backbone_config`); the model is built under
``torch.device("meta")``, so even ViT-L/14 takes well under a second and no memory.
"""

from __future__ import annotations

import torch
from pydantic import ValidationError
from transformers import CLIPModel

from finecliper.errors import ConfigError
from finecliper.model.backbone import backbone_config
from finecliper.model.config import ModelConfig
from finecliper.model.network import FineCLIPER

# The paper's tunable parameter counts at ViT-B/16 (docs/method.md 2.6).
PAPER_TUNABLE = {"base": 13_000_000, "mid": 19_000_000, "high": 14_000_000, "full": 20_000_000}
PAPER_NAMES = {
    "base": "FineCLIPER",
    "mid": "FineCLIPER*",
    "high": "FineCLIPER†",
    "full": "FineCLIPER*†",
}
PAPER_BACKBONES = ("openai/clip-vit-base-patch16", "ViT-B/16", "ViT-B-16")


def build_meta_model(
    variant: str, backbone: str, config: ModelConfig | None = None, num_frames: int = 16
) -> FineCLIPER:
    """A FineCLIPER whose tensors all live on the meta device (shapes only)."""
    base = (config or ModelConfig()).model_dump()
    try:
        config = ModelConfig.model_validate({**base, "variant": variant, "backbone": backbone})
    except ValidationError as exc:
        raise ConfigError(
            f"model summary: {exc.errors()[0]['msg']} (variant={variant!r})"
        ) from None
    clip_config = backbone_config(backbone, config.backbone_activation)
    with torch.device("meta"):
        clip = CLIPModel._from_config(clip_config, attn_implementation="sdpa")
        return FineCLIPER(config, clip, num_frames)


def summarize_parameters(
    variant: str, backbone: str, config: ModelConfig | None = None, num_frames: int = 16
) -> dict:
    """``{"variant", "backbone", "tunable_params", "frozen_params", "components"}``."""
    model = build_meta_model(variant, backbone, config, num_frames)
    tunable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return {
        "variant": variant,
        "backbone": backbone,
        "tunable_params": tunable,
        "frozen_params": frozen,
        "components": model.component_parameter_counts(),
    }


def _millions(count: int) -> str:
    return f"{count / 1e6:.2f}M"


def format_summary(summary: dict) -> str:
    """A readable table; at ViT-B/16 the paper's tunable count is shown next to ours."""
    variant, backbone = summary["variant"], summary["backbone"]
    lines = [f"{PAPER_NAMES.get(variant, variant)} (variant {variant}) on {backbone}", ""]
    lines.append(f"{'component':<26}{'parameters':>14}")
    for name, count in summary["components"].items():
        if count:
            lines.append(f"{name:<26}{count:>14,}{_millions(count):>10}")
    tunable, frozen = summary["tunable_params"], summary["frozen_params"]
    lines.append("")
    lines.append(f"{'tunable':<26}{tunable:>14,}{_millions(tunable):>10}")
    lines.append(f"{'frozen':<26}{frozen:>14,}{_millions(frozen):>10}")
    paper = PAPER_TUNABLE.get(variant)
    if paper is not None and backbone in PAPER_BACKBONES:
        difference = tunable - paper
        lines.append(
            f"{'paper (tunable)':<26}{paper:>14,}{_millions(paper):>10}"
            f"   ours {'+' if difference >= 0 else '-'}{_millions(abs(difference))}"
        )
    return "\n".join(lines)
