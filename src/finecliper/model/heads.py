"""Logits, modality weighting and the contrastive loss (docs/method.md 2.4, 2.5 and 4).

PN logits [ours]: for an L2-normalised feature f and normalised label embeddings t+_c, t-_c,
``z_c = (cos(f, t+_c) - cos(f, t-_c)) / tau``; ``positive`` mode drops the negative term.
tau is learnable (stored as log tau, initialised to 0.01, kept above 1e-3) and is shared with the
video-text InfoNCE, so the zero-shot objective trains the temperature the PN logits then use.

Adaptive weighting [ours]: ``r_m = max_c z_c(f_m)``, ``w = softmax(r / T)`` over the modalities
present for each sample; absent ones get -inf before the softmax, so they get weight exactly 0
and the others renormalise (no zero-filled features in the softmax). ``fixed`` mode: video gets
``a``, the other present modalities share ``1 - a`` equally (video alone gets 1).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

MIN_TAU = 1e-3


class PNHead(nn.Module):
    """Cosine logits against the class prompt embeddings with a learnable temperature."""

    def __init__(self, tau_init: float = 0.01) -> None:
        super().__init__()
        self.log_tau = nn.Parameter(torch.tensor(math.log(tau_init)))

    @property
    def tau(self) -> torch.Tensor:
        return self.log_tau.exp().clamp(min=MIN_TAU)

    def forward(
        self,
        features: torch.Tensor,
        positive: torch.Tensor,
        negative: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (..., C) for normalised features (..., D) and class embeddings (C, D)."""
        similarity = features @ positive.t()
        if negative is not None:
            similarity = similarity - features @ negative.t()
        return similarity / self.tau


class ModalityWeighting(nn.Module):
    """Per-sample weights (B, M) over modalities, zero for the absent ones, summing to 1."""

    def __init__(
        self,
        mode: Literal["adaptive", "fixed"] = "adaptive",
        temperature: float = 1.0,
        learnable_temperature: bool = False,
        video_weight: float = 0.5,
    ) -> None:
        super().__init__()
        self.mode = mode
        self.video_weight = video_weight
        log_temperature = torch.tensor(math.log(temperature))
        if learnable_temperature:
            self.log_temperature: torch.Tensor | None = nn.Parameter(log_temperature)
        else:
            self.log_temperature = None
            self.temperature = temperature

    def forward(self, logits: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Weights from per-modality logits (B, M, C) and a boolean mask (B, M); column 0 is
        the video modality."""
        if self.mode == "fixed":
            return fixed_weights(present, self.video_weight).to(logits.dtype)
        temperature = (
            self.log_temperature.exp() if self.log_temperature is not None else self.temperature
        )
        relevance = logits.max(dim=-1).values / temperature
        relevance = relevance.masked_fill(~present, float("-inf"))
        return torch.softmax(relevance, dim=-1)


def fixed_weights(present: torch.Tensor, video_weight: float) -> torch.Tensor:
    """Video ``a``, the other present modalities ``(1 - a) / n`` each (docs/method.md 2.5 ablation).

    A sample with only video gets weight 1 on it; one without video shares 1 equally.
    """
    present = present.float()
    others = present[:, 1:]
    count = others.sum(dim=1, keepdim=True)
    video = present[:, :1]
    video_share = torch.where(count > 0, video * video_weight, video)
    other_share = (1.0 - video_share) / count.clamp(min=1.0)
    return torch.cat([video_share, others * other_share], dim=1)


def info_nce(first: torch.Tensor, second: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """Symmetric in-batch InfoNCE between matching rows of two normalised feature sets."""
    logits = first @ second.t() / tau
    targets = torch.arange(first.shape[0], device=first.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2
