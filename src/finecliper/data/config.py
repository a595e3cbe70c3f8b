"""Data section of the run configuration."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from finecliper.config_base import Section
from finecliper.data.readers import reader_names


class DataConfig(Section):
    dataset: str = Field("synth", description="a registered dataset (finecliper.data.readers)")
    root: str | None = Field(None, description="dataset root (for custom: the manifest CSV)")
    fold: int | None = Field(1, ge=1, le=5, description="test fold; None for fixed splits")
    dfew_frames: Literal["clip_224x224", "clip_224x224_16f"] = Field(
        "clip_224x224", description="DFEW frame folder: original length or resampled to 16"
    )
    mafw_source: Literal["frames", "video"] = "frames"
    mafw_captions: bool = False
    num_frames: int = Field(16, ge=1, le=256)
    image_size: int = Field(224, ge=16, le=1024)
    val_fraction: float = Field(0.1, ge=0.0, lt=0.5, description="validation carved from train")
    crop_scale_min: float = Field(0.8, gt=0.0, le=1.0)
    hflip_prob: float = Field(0.5, ge=0.0, le=1.0)
    faces_cache: str | None = Field(None, description="output of `finecliper prepare faces`")
    descriptions: str | None = Field(None, description="refined descriptions JSONL")
    max_missing_text: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="share of an evaluated split's clips that may lack a label-free description "
        "before train refuses to start (text branches only)",
    )
    max_unreadable: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="share of the evaluated clips that may be unreadable before eval fails "
        "(they count as wrong either way)",
    )
    packed: str | None = Field(None, description="a `finecliper pack` output: clips read from it")
    num_workers: int = Field(2, ge=0, le=64)

    @field_validator("dataset")
    @classmethod
    def _check_dataset(cls, dataset: str) -> str:
        if dataset not in reader_names():
            raise ValueError(f"unknown dataset {dataset!r} (known: {', '.join(reader_names())})")
        return dataset
