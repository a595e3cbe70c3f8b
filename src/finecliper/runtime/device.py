"""Device choice and mixed precision, the same for training, evaluation, predict and bench."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from finecliper.errors import FineCLIPERError


def resolve_device(name: str | torch.device, setting: str = "device") -> torch.device:
    """``auto`` is CUDA when there is one, else CPU; asking for CUDA without one is an error.

    ``setting`` names the option the value came from, for the error message.
    """
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FineCLIPERError(f"{setting}={name}: no CUDA device is available")
    return device


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """bf16 autocast on CUDA (``precision`` auto or bf16); plain fp32 elsewhere."""
    use_bf16 = device.type == "cuda" and precision in ("auto", "bf16")
    return torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else nullcontext()
