"""Model section of the run configuration (docs/method.md sections 2 and 4).

Defaults are the paper's choices where it states them and ours elsewhere (docs/method.md tags); the
adapter bottleneck ratios and the temporal module's size are the ones that put the tunable
parameter counts at ViT-B/16 within 1.5M of the paper's 13/19/14/20M (docs/method.md 2.7).
"""

from __future__ import annotations

from string import Formatter
from typing import Literal

from pydantic import Field, field_validator, model_validator

from finecliper.config_base import Section

Variant = Literal["base", "mid", "high", "full"]
_TEMPLATE_FIELDS = {"label", "negation"}


def _template_fields(template: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(template) if name is not None}


class ModelConfig(Section):
    variant: Variant = Field("full", description="base=FineCLIPER, mid=*, high=†, full=*†")
    backbone: str = Field(
        "openai/clip-vit-base-patch16",
        description="HF hub id or directory, OpenAI .pt file, or open_clip state dict",
    )
    tokenizer: str | None = Field(
        None,
        description="CLIP tokenizer directory or hub id; default: the backbone's own directory, "
        "or the bundled CLIP BPE vocabulary (clip-bpe) for .pt / open_clip files and directories "
        "without tokenizer files",
    )
    backbone_activation: Literal["quick_gelu", "gelu"] = Field(
        "quick_gelu",
        description="MLP activation of converted .pt / open_clip checkpoints (OpenAI's are "
        "quick_gelu; most LAION open_clip models use gelu); HF directories carry their own",
    )
    objective: Literal["supervised", "zero_shot"] = "supervised"
    zero_shot_label_free: bool = Field(
        False,
        description="zero_shot without any label: label-free descriptions for every clip, the "
        "last epoch reported, label prompts encoded by the description adapters",
    )
    video_adapter_ratio: float = Field(0.25, gt=0.0, le=4.0)
    parsing_adapter_ratio: float = Field(0.125, gt=0.0, le=4.0)
    landmark_adapter_ratio: float = Field(0.125, gt=0.0, le=4.0)
    label_adapter_ratio: float = Field(0.25, gt=0.0, le=4.0)
    text_adapter_ratio: float = Field(0.25, gt=0.0, le=4.0)
    mlp_adapter_scale: float = Field(0.5, ge=0.0, le=10.0, description="s in docs/method.md 2.2")
    text_adapter_position: Literal["attention", "mlp"] = Field(
        "attention",
        description="where the one adapter per text block sits: serial after the attention, "
        "or parallel to the MLP (scaled by mlp_adapter_scale)",
    )
    temporal: Literal["transformer", "mean"] = "transformer"
    temporal_layers: int = Field(1, ge=1, le=12)
    temporal_mlp_ratio: float = Field(2.0, gt=0.0, le=8.0)
    temporal_motion: bool = Field(
        False,
        description="the temporal transformer also reads each frame's change from the first "
        "frame as extra tokens (docs/method.md 2.3)",
    )
    shared_temporal: bool = Field(
        True, description="one temporal module for the video, parsing and landmark branches"
    )
    logits: Literal["pn", "positive"] = "pn"
    positive_template: str = "A person with an expression of {label}."
    negative_template: str = "A person with an expression of {negation} {label}."
    negation_word: str = Field("no", min_length=1, max_length=40)
    tau_init: float = Field(0.01, gt=0.0, lt=1.0)
    weighting: Literal["adaptive", "fixed"] = "adaptive"
    fixed_video_weight: float = Field(0.5, gt=0.0, lt=1.0)
    weight_temperature: float = Field(
        1.0,
        gt=0.0,
        le=100.0,
        description="T of the adaptive weights softmax(max logits / T); the logits are already "
        "divided by tau, so T=1 is nearly one-hot (the demo uses 16: docs/method.md 2.5 and 7)",
    )
    learnable_weight_temperature: bool = False
    fusion: Literal["features", "logits"] = Field(
        "features",
        description="what the modality weights mix: the normalised features, then scored "
        "against the labels, or each modality's label logits (docs/method.md 2.5)",
    )
    modality_dropout: float = Field(0.1, ge=0.0, lt=1.0)
    lambda_align: float = Field(0.1, ge=0.0, le=100.0)

    @field_validator("positive_template", "negative_template")
    @classmethod
    def _check_template(cls, template: str) -> str:
        try:
            fields = _template_fields(template)
        except ValueError as exc:
            raise ValueError(f"bad template {template!r}: {exc}") from None
        if "label" not in fields:
            raise ValueError(f"template {template!r} has no {{label}} placeholder")
        unknown = fields - _TEMPLATE_FIELDS
        if unknown:
            raise ValueError(
                f"template {template!r}: unknown placeholders {sorted(unknown)} "
                "(allowed: {label}, {negation})"
            )
        return template

    @model_validator(mode="after")
    def _check_label_free(self) -> ModelConfig:
        if self.zero_shot_label_free and self.objective != "zero_shot":
            raise ValueError("zero_shot_label_free needs model.objective=zero_shot")
        return self

    @model_validator(mode="after")
    def _check_motion(self) -> ModelConfig:
        if self.temporal_motion and self.temporal != "transformer":
            raise ValueError(
                "temporal_motion needs model.temporal=transformer (mean pooling has "
                "no tokens to add the changes to)"
            )
        return self
