"""FineCLIPER: fine-grained multi-modal CLIP with adapters for dynamic facial expressions."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Predictor", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy: ``import finecliper`` stays light (no torch) until the Predictor is asked for.
    if name == "Predictor":
        from finecliper.serve.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'finecliper' has no attribute {name!r}")
