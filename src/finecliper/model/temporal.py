"""Temporal modules: per-frame embeddings (B, T, D) -> one clip embedding (B, D)
(docs/method.md 2.3).

``transformer`` [ours]: pre-norm transformer layers (width D, D/64 heads, MLP ratio 2) over a
learnable CLS token followed by the frame embeddings plus learnable positional embeddings. At
width 512 one layer has 2.10M parameters, the ~2.1M of docs/method.md 2.7 (MLP ratio 4 would give
3.15M and push FineCLIPER*† past the paper's 20M by more than 1.5M).

The clip embedding is ``mean_t(frames) + CLS output``. The CLS token and the layers' output
projections start at zero, so before training the CLS output is exactly zero and the clip
embedding is the mean-pooled CLIP embedding, the usual zero-shot CLIP video baseline; training
then learns the temporal correction. ``mean`` is that baseline alone, with no parameters.

``motion=True`` [ours] appends one token per frame: its change from the first frame plus its own
positional embedding. Attention weights are positive, so the CLS token cannot subtract one frame
from another by attending; given the changes as tokens, it reads the movement directly.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from finecliper.errors import FineCLIPERError


class TemporalTransformer(nn.Module):
    def __init__(
        self,
        width: int,
        max_frames: int,
        layers: int = 1,
        mlp_ratio: float = 2.0,
        motion: bool = False,
    ):
        super().__init__()
        heads = max(1, width // 64)
        if width % heads:
            raise FineCLIPERError(f"temporal width {width} is not divisible into {heads} heads")
        self.max_frames = max_frames
        self.cls_token = nn.Parameter(torch.zeros(width))
        self.position = nn.Parameter(torch.randn(max_frames, width) * 0.02)
        self.motion_position = (
            nn.Parameter(torch.randn(max_frames, width) * 0.02) if motion else None
        )
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                width,
                heads,
                dim_feedforward=max(1, round(width * mlp_ratio)),
                dropout=0.0,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(layers)
        )
        for layer in self.layers:
            for output in (layer.self_attn.out_proj, layer.linear2):
                nn.init.zeros_(output.weight)
                nn.init.zeros_(output.bias)

    def no_weight_decay(self) -> set[str]:
        """Embeddings, not weight matrices: decaying them only pulls them towards zero."""
        return {"cls_token", "position", "motion_position"}

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        batch, length, width = frames.shape
        if length > self.max_frames:
            raise FineCLIPERError(
                f"clip has {length} frames but the temporal module was built for at most "
                f"{self.max_frames} (num_frames)"
            )
        cls = self.cls_token.to(frames.dtype).expand(batch, 1, width)
        tokens = [cls, frames + self.position[:length].to(frames.dtype)]
        if self.motion_position is not None:
            change = frames - frames[:, :1]
            tokens.append(change + self.motion_position[:length].to(frames.dtype))
        x = torch.cat(tokens, dim=1)
        for layer in self.layers:
            x = layer(x)
        return frames.mean(dim=1) + x[:, 0]


class MeanPool(nn.Module):
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return frames.mean(dim=1)


def build_temporal(
    kind: Literal["transformer", "mean"],
    width: int,
    max_frames: int,
    layers: int = 1,
    mlp_ratio: float = 2.0,
    motion: bool = False,
) -> nn.Module:
    if kind == "mean":
        return MeanPool()
    return TemporalTransformer(width, max_frames, layers, mlp_ratio, motion)
