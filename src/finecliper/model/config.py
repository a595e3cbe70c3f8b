"""Model section of the run configuration (method.md section 2)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from finecliper.config_base import Section

Variant = Literal["base", "mid", "high", "full"]


class ModelConfig(Section):
    variant: Variant = Field("full", description="base=FineCLIPER, mid=*, high=†, full=*†")
    backbone: str = Field(
        "openai/clip-vit-base-patch16",
        description="HF hub id or directory, OpenAI .pt file, or open_clip state dict",
    )
    objective: Literal["supervised", "zero_shot"] = "supervised"
    video_adapter_ratio: float = Field(0.25, gt=0.0, le=4.0)
    parsing_adapter_ratio: float = Field(0.125, gt=0.0, le=4.0)
    landmark_adapter_ratio: float = Field(0.125, gt=0.0, le=4.0)
    label_adapter_ratio: float = Field(0.25, gt=0.0, le=4.0)
    text_adapter_ratio: float = Field(0.25, gt=0.0, le=4.0)
    mlp_adapter_scale: float = Field(0.5, ge=0.0)
    temporal: Literal["transformer", "mean"] = "transformer"
    temporal_layers: int = Field(1, ge=1, le=12)
    logits: Literal["pn", "positive"] = "pn"
    positive_template: str = "A person with an expression of {label}."
    negative_template: str = "A person with an expression of no {label}."
    tau_init: float = Field(0.01, gt=0.0, lt=1.0)
    weighting: Literal["adaptive", "fixed"] = "adaptive"
    fixed_video_weight: float = Field(0.5, gt=0.0, lt=1.0)
    weight_temperature: float = Field(1.0, gt=0.0)
    learnable_weight_temperature: bool = False
    modality_dropout: float = Field(0.1, ge=0.0, lt=1.0)
    lambda_align: float = Field(0.1, ge=0.0)
