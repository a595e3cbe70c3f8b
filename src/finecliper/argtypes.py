"""Argument types for numeric CLI options: a value out of range is a one-line usage error.

``type=int`` alone takes ``--clips -5`` or ``--fold 99`` and fails later with a traceback or,
worse, runs; ``type=float`` also takes ``nan`` and ``inf``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An integer in ``low..high`` (no upper bound when ``high`` is None)."""
    shown = f"{low}..{high}" if high is not None else f">= {low}"

    def parse(text: str) -> int:
        stripped = text.strip()
        digits = stripped.lstrip("+-")
        if not (digits.isascii() and digits.isdigit()):
            raise argparse.ArgumentTypeError(f"expected an integer {shown}, got {text!r}")
        value = int(stripped)
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected an integer {shown}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def float_range(
    low: float, high: float | None = None, *, low_open: bool = False
) -> Callable[[str], float]:
    """A finite number at least ``low`` (above it when ``low_open``) and at most ``high``."""
    shown = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'}"
    shown += "]" if high is not None else ")"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a number in {shown}, got {text!r}"
            ) from None
        too_low = value <= low if low_open else value < low
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected a number in {shown}, got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


COUNT = int_range(1)
NON_NEGATIVE = int_range(0)
FOLD = int_range(1, 5)
