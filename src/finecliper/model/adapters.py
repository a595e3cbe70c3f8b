"""Bottleneck adapters (docs/method.md 2.2; AIM, Yang et al. ICLR 2023).

An adapter is FC-down -> GELU -> FC-up. Per encoder block an :class:`AdapterSet` holds at most
two of them, placed as in the paper's Fig. 2::

    x = x + Adapter_S(MSA(LN1(x)))                  # serial, after the attention
    x = x + MLP(LN2(x)) + s * Adapter_M(LN2(x))     # parallel to the MLP, scaled by s

The paper's "skip" belongs to the serial adapter: ``Adapter_S(a) = a + up(GELU(down(a)))``. The
parallel adapter has none, its skip being the MLP branch itself (a skip there would add
``s * LN2(x)`` and change the frozen model). Both up-projections start at zero, so each adapter
starts as the identity (serial) or as nothing (parallel) and an untrained model is plain CLIP.

Adapter modules only compute the residual ``up(GELU(down(x)))``; the encoder loop in
:mod:`finecliper.model.backbone` adds it where it belongs, so one frozen tower serves every
branch with that branch's adapter set.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Placement = Literal["attention", "mlp"]


class Adapter(nn.Module):
    """FC-down -> GELU -> FC-up; returns only the residual, which is zero before training."""

    def __init__(self, width: int, bottleneck: int) -> None:
        super().__init__()
        self.down = nn.Linear(width, bottleneck)
        self.act = nn.GELU()
        self.up = nn.Linear(bottleneck, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x)))


def bottleneck_width(width: int, ratio: float) -> int:
    """Bottleneck size for a block of ``width`` channels (768 x 0.25 = 192), at least 1."""
    return max(1, round(width * ratio))


class BlockAdapters(nn.Module):
    """The adapters of one encoder block: serial after attention and/or parallel to the MLP."""

    def __init__(self, width: int, bottleneck: int, placements: tuple[Placement, ...]) -> None:
        super().__init__()
        self.attention = Adapter(width, bottleneck) if "attention" in placements else None
        self.mlp = Adapter(width, bottleneck) if "mlp" in placements else None


class AdapterSet(nn.Module):
    """One branch's adapters for every block of a frozen tower, plus the MLP-adapter scale s."""

    def __init__(
        self,
        width: int,
        layers: int,
        ratio: float,
        placements: tuple[Placement, ...] = ("attention", "mlp"),
        mlp_scale: float = 0.5,
    ) -> None:
        super().__init__()
        if not placements:
            raise ValueError("an adapter set needs at least one placement")
        bottleneck = bottleneck_width(width, ratio)
        self.blocks = nn.ModuleList(
            BlockAdapters(width, bottleneck, placements) for _ in range(layers)
        )
        self.mlp_scale = mlp_scale

    def __len__(self) -> int:
        return len(self.blocks)

    def block(self, index: int) -> BlockAdapters:
        return self.blocks[index]  # type: ignore[return-value]
