"""Model selection: which epoch of a run is reported, by one rule used everywhere.

Epochs are ranked by UAR, the primary DFER metric; ties go to the EARLIEST epoch, as early
stopping would keep it. The headline is the best epoch on the validation split carved from the
training fold (the last epoch when there is none, or in label-free zero-shot, which may not
look at validation labels). Each rule reports the TEST metrics of the
epoch it chooses; ``best_test_optimistic`` looks at the test split itself and is flagged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from finecliper.errors import FineCLIPERError

SELECTION_RULES = ("last", "best_val", "best_test_optimistic")


def check_history(history: Sequence[dict]) -> None:
    if not history:
        raise FineCLIPERError("the training history is empty: no epoch to report")
    for entry in history:
        if "epoch" not in entry:
            raise FineCLIPERError(f"history entry without an 'epoch': {entry}")


def _pick(entry: dict, **extra: Any) -> dict:
    test = entry["test"]
    return {"epoch": entry["epoch"], "uar": test["uar"], "war": test["war"], **extra}


def best_epoch(entries: Sequence[dict], split: str) -> dict:
    """The entry with the best ``split`` UAR; ties go to the earliest (max keeps the first)."""
    return max(entries, key=lambda h: h[split]["uar"])


def model_selection(history: Sequence[dict]) -> dict:
    """Test UAR/WAR under three rules (see the module docstring):
    ``last``: the last epoch evaluated on test; ``best_val``: the epoch with the best validation
    UAR among those evaluated on both splits (None without validation); ``best_test_optimistic``:
    the epoch with the best test UAR, flagged ``optimistic``."""
    check_history(history)
    tested = [h for h in history if h.get("test")]
    if not tested:
        raise FineCLIPERError("no epoch of the training history was evaluated on the test split")
    validated = [h for h in tested if h.get("val")]
    best_val = None
    if validated:
        chosen = best_epoch(validated, "val")
        best_val = _pick(chosen, val_uar=chosen["val"]["uar"], val_war=chosen["val"]["war"])
    return {
        "last": _pick(tested[-1]),
        "best_val": best_val,
        "best_test_optimistic": _pick(best_epoch(tested, "test"), optimistic=True),
    }


def headline_rule(selection: dict[str, Any], *, label_free: bool = False) -> str:
    """best_val, or last without validation or when selection may not look at labels."""
    return "best_val" if selection["best_val"] and not label_free else "last"


def improves_best_val(history: Sequence[dict]) -> bool:
    """Whether the newest epoch is the best on validation so far (a tie is not: earliest wins)."""
    validated = [h for h in history if h.get("val")]
    return bool(history[-1].get("val")) and best_epoch(validated, "val") is history[-1]
