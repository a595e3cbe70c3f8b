"""Stop training with a clear error when the loss or the weights stop being finite numbers.

A diverged run (``train.lr`` far too high, a broken input) would otherwise train on to all-NaN
weights and report chance-level metrics with exit 0. The check runs before the optimizer step
and before each epoch's checkpoints are written, so the last good checkpoint is kept.
"""

from __future__ import annotations

from pathlib import Path

import torch

from finecliper.errors import FineCLIPERError


class DivergedError(FineCLIPERError):
    """Training produced a non-finite loss or non-finite weights."""


def check_finite_loss(loss: torch.Tensor, epoch: int, step: int, out: Path) -> None:
    if not bool(torch.isfinite(loss.detach()).all()):
        raise DivergedError(
            f"training diverged: loss is {float(loss.detach())} at epoch {epoch + 1}, "
            f"batch {step + 1}; {_kept(out)}; try a lower train.lr"
        )


def check_finite_weights(named: dict[str, torch.Tensor], epoch: int, out: Path) -> None:
    bad = [name for name, tensor in named.items() if not bool(torch.isfinite(tensor).all())]
    if bad:
        raise DivergedError(
            f"training diverged: non-finite weights after epoch {epoch + 1} "
            f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); {_kept(out)}; "
            "try a lower train.lr"
        )


def _kept(out: Path) -> str:
    last = out / "checkpoints" / "last.safetensors"
    return f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint written"
