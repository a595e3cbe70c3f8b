"""Stop training with a clear error when the loss or the weights stop being finite numbers.

A diverged run (``train.lr`` far too high, a broken input) would otherwise train on to all-NaN
weights and report chance-level metrics with exit 0. The check runs before the optimizer step
and before each epoch's checkpoints are written, so the last good checkpoint is kept. Under
DDP every rank takes part in each check (one all-reduce of a finite flag), so a divergence on
one rank stops all of them at the same step instead of leaving the others waiting forever in
the next collective.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from finecliper.errors import FineCLIPERError
from finecliper.train.distributed import Context


class DivergedError(FineCLIPERError):
    """Training produced a non-finite loss or non-finite weights."""


def check_finite_loss(
    loss: torch.Tensor, epoch: int, step: int, out: Path, context: Context | None = None
) -> None:
    finite = bool(torch.isfinite(loss.detach()).all())
    if _all_ranks_finite(finite, loss.device, context):
        return
    what = f"loss is {float(loss.detach())}" if not finite else "loss is not finite on another rank"
    raise DivergedError(
        f"training diverged: {what} at epoch {epoch + 1}, batch {step + 1}; {_kept(out)}; "
        "try a lower train.lr"
    )


def check_finite_weights(
    named: dict[str, torch.Tensor], epoch: int, out: Path, context: Context | None = None
) -> None:
    bad = [name for name, tensor in named.items() if not bool(torch.isfinite(tensor).all())]
    device = next(iter(named.values())).device if named else torch.device("cpu")
    if _all_ranks_finite(not bad, device, context):
        return
    where = f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})" if bad else "on another rank"
    raise DivergedError(
        f"training diverged: non-finite weights after epoch {epoch + 1} {where}; "
        f"{_kept(out)}; try a lower train.lr"
    )


def _all_ranks_finite(finite: bool, device: torch.device, context: Context | None) -> bool:
    if context is None or not context.distributed:
        return finite
    flag = torch.tensor(int(finite), device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def _kept(out: Path) -> str:
    last = out / "checkpoints" / "last.safetensors"
    return f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint written"
