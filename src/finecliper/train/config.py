"""Training section of the run configuration (method.md section 3)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from finecliper.config_base import Section


class TrainConfig(Section):
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(32, ge=1)
    effective_batch_size: int | None = Field(
        None, ge=1, description="reached by gradient accumulation when larger than batch_size"
    )
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.01, ge=0.0)
    warmup_epochs: float = Field(1.0, ge=0.0)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    compile: bool = False
    grad_checkpointing: bool = False
    out_dir: str = "runs"
    tensorboard: bool = False
