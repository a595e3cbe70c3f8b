"""Cross-validation: fold aggregation and the Markdown page beside the paper's numbers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from finecliper.errors import FineCLIPERError
from finecliper.train.paper import (
    DATASET_NAMES,
    PAPER_PROTOCOL,
    TABLE1,
    VARIANT_METHOD,
    paper_score,
)
from finecliper.train.report.common import OPTIMISTIC_NOTE, RULE_TITLES, pct
from finecliper.train.selection import SELECTION_RULES


def _mean_std(values: list[float]) -> dict[str, float | None]:
    array = np.asarray(values, dtype=np.float64)
    std = float(array.std(ddof=1)) if len(array) > 1 else None
    return {"mean": float(array.mean()), "std": std}


def aggregate_folds(folds: Sequence[dict]) -> dict:
    """Mean and SAMPLE standard deviation (ddof=1; None for a single fold) over folds of each
    rule's test UAR/WAR, as fractions. A rule missing in some folds (no validation split) is
    averaged over the folds that have it, with ``folds`` saying how many; None if in none."""
    if not folds:
        raise FineCLIPERError("no folds to aggregate")
    result: dict[str, Any] = {"num_folds": len(folds), "std": "sample (ddof=1)"}
    for rule in SELECTION_RULES:
        chosen = [fold[rule] for fold in folds if fold.get(rule)]
        if not chosen:
            result[rule] = None
            continue
        result[rule] = {
            "folds": len(chosen),
            "uar": _mean_std([c["uar"] for c in chosen]),
            "war": _mean_std([c["war"] for c in chosen]),
        }
    return result


def _mean_pm_std(stats: dict[str, float | None]) -> str:
    std = stats["std"]
    return pct(stats["mean"]) + ("" if std is None else f" ± {pct(std)}")


def _fold_cell(selected: dict | None) -> str:
    if not selected:
        return "–"
    return f"{pct(selected['uar'])} / {pct(selected['war'])} (ep {selected['epoch']})"


def _delta(ours: float, paper: float) -> str:
    return f"{100 * ours - paper:+.2f}"


def cv_markdown(dataset: str, variant: str, folds: Sequence[dict], zero_shot: bool = False) -> str:
    """A Markdown results page: per-fold table, mean ± std per selection rule, the paper's number
    for this dataset and variant (Table 3 when ``zero_shot``) and Table 1's other methods."""
    method = VARIANT_METHOD.get(variant, variant)
    dataset_name = DATASET_NAMES.get(dataset, dataset)
    stats = aggregate_folds(folds)
    lines = [
        f"# Cross-validation: {method} (variant `{variant}`) on {dataset_name}",
        "",
        f"{len(folds)} fold(s). Each fold is scored on its whole test split; numbers are "
        "percent, UAR / WAR. ± is the sample standard deviation over folds (ddof=1).",
        "",
        "## Per fold",
        "",
        "| fold | " + " | ".join(RULE_TITLES[r] for r in SELECTION_RULES) + " |",
        "|---|---|---|---|",
    ]
    for fold in folds:
        cells = [_fold_cell(fold.get(rule)) for rule in SELECTION_RULES]
        name = "official split" if fold.get("fold") is None else fold["fold"]  # e.g. FERV39k
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", OPTIMISTIC_NOTE, "", "## Against the paper", ""]
    lines += _paper_comparison(dataset, variant, stats, zero_shot)
    lines += ["", *_table1_context(dataset)]
    return "\n".join(lines) + "\n"


def _paper_comparison(dataset: str, variant: str, stats: dict, zero_shot: bool) -> list[str]:
    score = paper_score(dataset, variant, zero_shot) if variant in VARIANT_METHOD else None
    lines = [
        "| | folds | UAR | WAR | UAR − paper | WAR − paper |",
        "|---|---|---|---|---|---|",
    ]
    for rule in SELECTION_RULES:
        rule_stats = stats[rule]
        if rule_stats is None:
            lines.append(f"| ours, {RULE_TITLES[rule]} | 0 | – | – | – | – |")
            continue
        uar, war = rule_stats["uar"], rule_stats["war"]
        deltas = (
            ["–", "–"]
            if score is None
            else [_delta(uar["mean"], score.uar), _delta(war["mean"], score.war)]
        )
        lines.append(
            f"| ours, {RULE_TITLES[rule]} | {rule_stats['folds']} | {_mean_pm_std(uar)} | "
            f"{_mean_pm_std(war)} | {deltas[0]} | {deltas[1]} |"
        )
    if score is None:
        return [*lines, "", f"The paper reports no number for `{variant}` on `{dataset}`."]
    table = "Table 3, zero-shot" if zero_shot else "Table 1"
    protocol = PAPER_PROTOCOL.get(dataset, "")
    name = VARIANT_METHOD[variant]
    lines.append(f"| **paper** ({table}, {name}) | | {score.uar:.2f} | {score.war:.2f} | | |")
    return [
        *lines,
        "",
        f"The paper's numbers are the {protocol}; it does not say which model "
        "selection rule it used.",
    ]


def _table1_context(dataset: str) -> list[str]:
    rows = [m for m in TABLE1 if dataset in m.scores]
    if not rows:
        return []
    lines = [
        f"## Paper Table 1 on {DATASET_NAMES[dataset]}, for context",
        "",
        "| method | tunable params | UAR | WAR |",
        "|---|---|---|---|",
    ]
    for method in rows:
        score = method.scores[dataset]
        lines.append(f"| {method.name} | {method.tunable} | {score.uar:.2f} | {score.war:.2f} |")
    return lines
