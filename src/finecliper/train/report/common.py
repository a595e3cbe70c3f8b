"""What the report modules share: percent formatting and the names of the selection rules."""

from __future__ import annotations

RULE_TITLES = {
    "last": "last epoch",
    "best_val": "best epoch on validation",
    "best_test_optimistic": "best epoch on test (optimistic)",
}
OPTIMISTIC_NOTE = (
    "**Optimistic:** *best epoch on test* picks the epoch by looking at the test split itself, "
    "so it overstates what the model would score on unseen data. It is shown because most "
    "published DFER numbers are obtained this way; *last epoch* and *best epoch on validation* "
    "are the clean numbers."
)


def pct(value: float | None, digits: int = 2) -> str:
    """A 0..1 fraction as a percent string; an en dash for None."""
    return "–" if value is None else f"{100 * value:.{digits}f}"
