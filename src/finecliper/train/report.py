"""Run reports: predictions CSV, PNG plots, model selection and cross-validation tables.

Conventions:
- Metrics (uar, war, recall) are fractions in 0..1 as finecliper.train.metrics returns them;
  plots and Markdown show them in percent, next to the paper's percentages (train/paper.py).
- A history is a list of per-epoch dicts ``{"epoch", "train_loss", "lr", "val", "test"}`` where
  ``val`` / ``test`` are ``{"uar", "war"}`` or None (not evaluated that epoch).
- Model selection ranks epochs by UAR, the primary DFER metric; ties go to the EARLIEST epoch,
  as early stopping would keep it. Selected rules report the TEST metrics of the chosen epoch.
- Plots use matplotlib's object API (``Figure``) and never pyplot, so no backend or global state
  is touched; PNGs are rendered by Agg into a temporary file and moved into place atomically.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from finecliper.errors import FineCLIPERError
from finecliper.io import atomic_open, write_json, write_text
from finecliper.train.metrics import classification_report
from finecliper.train.paper import (
    ADAPTIVE_DFEW,
    DATASET_NAMES,
    FIXED_WEIGHT_DFEW,
    PAPER_PROTOCOL,
    TABLE1,
    VARIANT_METHOD,
    PaperScore,
    paper_score,
)
from finecliper.train.selection import SELECTION_RULES, best_epoch, check_history, model_selection

DPI = 120
FIXED_COLUMNS = ("clip_id", "label", "prediction", "correct")
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


def _pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}"


def _save_png(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=DPI, bbox_inches="tight")
    return path


# ---- predictions CSV ------------------------------------------------------------------------


@dataclass(frozen=True)
class Predictions:
    """The content of a predictions CSV; labels and predictions are class indices."""

    clip_ids: list[str]
    labels: np.ndarray  # (N,) int64
    predictions: np.ndarray  # (N,) int64
    probabilities: np.ndarray  # (N, C) float64
    classes: list[str]
    weights: np.ndarray | None  # (N, M) float64 adaptive modality weights
    modalities: list[str] = field(default_factory=list)


def _check_prediction_arrays(
    n: int,
    labels: np.ndarray,
    predictions: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    weights: np.ndarray | None,
    modalities: Sequence[str],
) -> None:
    if len(set(classes)) != len(classes):
        raise FineCLIPERError(f"duplicate class names in {list(classes)}")
    if labels.shape != (n,) or predictions.shape != (n,):
        raise FineCLIPERError(
            f"{n} clip ids but labels {labels.shape} and predictions {predictions.shape}"
        )
    if probabilities.shape != (n, len(classes)):
        raise FineCLIPERError(
            f"probabilities have shape {probabilities.shape}, expected ({n}, {len(classes)})"
        )
    if weights is not None and weights.shape != (n, len(modalities)):
        raise FineCLIPERError(
            f"weights have shape {weights.shape}, expected ({n}, {len(modalities)}) "
            f"for modalities {list(modalities)}"
        )
    for name, values in (("label", labels), ("prediction", predictions)):
        if n and (values.min() < 0 or values.max() >= len(classes)):
            raise FineCLIPERError(f"{name} index outside 0..{len(classes) - 1}")


def write_predictions_csv(
    path: str | Path,
    clip_ids: Sequence[str],
    labels: Sequence[int] | np.ndarray,
    predictions: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    weights: np.ndarray | None = None,
    modalities: Sequence[str] = (),
) -> Path:
    """One row per clip: clip_id, label, prediction (class names), correct (0/1), p_<class>
    probabilities and, when given, w_<modality> adaptive weights (both rounded to 6 decimals)."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    weights = None if weights is None else np.asarray(weights, dtype=np.float64)
    modalities = list(modalities) if weights is not None else []
    _check_prediction_arrays(
        len(clip_ids), labels, predictions, probabilities, classes, weights, modalities
    )
    header = [*FIXED_COLUMNS, *(f"p_{c}" for c in classes), *(f"w_{m}" for m in modalities)]
    path = Path(path)
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i, clip_id in enumerate(clip_ids):
            floats = list(probabilities[i]) + ([] if weights is None else list(weights[i]))
            writer.writerow(
                [
                    clip_id,
                    classes[labels[i]],
                    classes[predictions[i]],
                    int(labels[i] == predictions[i]),
                    *(f"{value:.6f}" for value in floats),
                ]
            )
    return path


def _split_header(path: Path, header: list[str]) -> tuple[list[str], list[str]]:
    if header[: len(FIXED_COLUMNS)] != list(FIXED_COLUMNS):
        raise FineCLIPERError(
            f"{path}: not a predictions CSV (the header starts {header[:4]}, "
            f"expected {list(FIXED_COLUMNS)})"
        )
    rest = header[len(FIXED_COLUMNS) :]
    classes = [name[2:] for name in rest if name.startswith("p_")]
    modalities = [name[2:] for name in rest[len(classes) :] if name.startswith("w_")]
    if len(classes) + len(modalities) != len(rest) or not classes:
        raise FineCLIPERError(
            f"{path}: expected p_<class> columns then w_<modality> columns, got {rest}"
        )
    return classes, modalities


def read_predictions_csv(path: str | Path) -> Predictions:
    """Read back a file written by write_predictions_csv."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise FineCLIPERError(f"cannot read predictions file {path}: {exc}") from None
    if not rows:
        raise FineCLIPERError(f"{path}: empty file, expected a predictions CSV header")
    classes, modalities = _split_header(path, rows[0])
    index = {name: i for i, name in enumerate(classes)}
    clip_ids, labels, predictions, floats = [], [], [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            raise FineCLIPERError(f"{path}:{line}: {len(row)} fields, expected {len(rows[0])}")
        try:
            labels.append(index[row[1]])
            predictions.append(index[row[2]])
            floats.append([float(value) for value in row[len(FIXED_COLUMNS) :]])
        except (KeyError, ValueError) as exc:
            raise FineCLIPERError(f"{path}:{line}: bad value {exc}") from None
        clip_ids.append(row[0])
    values = np.asarray(floats, dtype=np.float64).reshape(len(clip_ids), -1)
    return Predictions(
        clip_ids=clip_ids,
        labels=np.asarray(labels, dtype=np.int64),
        predictions=np.asarray(predictions, dtype=np.int64),
        probabilities=values[:, : len(classes)],
        classes=classes,
        weights=values[:, len(classes) :] if modalities else None,
        modalities=modalities,
    )


# ---- plots ----------------------------------------------------------------------------------


def plot_confusion(
    confusion: Sequence[Sequence[int]] | np.ndarray,
    classes: Sequence[str],
    path: str | Path,
    title: str = "Confusion matrix (test)",
    uar: float | None = None,
    war: float | None = None,
) -> Path:
    """Colours: share of each true class (row) predicted as each class; cells: count and share."""
    counts = np.asarray(confusion, dtype=np.int64)
    if counts.shape != (len(classes), len(classes)):
        raise FineCLIPERError(
            f"confusion matrix {counts.shape} does not fit {len(classes)} classes"
        )
    support = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, support, out=np.zeros(counts.shape), where=support > 0)
    size = 2.5 + 0.8 * len(classes)
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.add_subplot()
    image = ax.imshow(shares * 100, cmap="Blues", vmin=0, vmax=100)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="% of the true class")
    for (row, col), count in np.ndenumerate(counts):
        colour = "white" if shares[row, col] > 0.55 else "black"
        text = f"{count}\n{shares[row, col]:.0%}" if support[row, 0] else "–"
        ax.text(col, row, text, ha="center", va="center", color=colour, fontsize=8)
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, labels=list(classes), rotation=40, ha="right", rotation_mode="anchor")
    ax.set_yticks(
        ticks, labels=[f"{c} (n={n})" for c, n in zip(classes, support[:, 0], strict=True)]
    )
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if uar is not None and war is not None:
        title = f"{title}\nUAR {_pct(uar)} %   WAR {_pct(war)} %"
    ax.set_title(title)
    return _save_png(fig, path)


def plot_training_curves(history: Sequence[dict], path: str | Path) -> Path:
    """Left: training loss and learning rate; right: val/test UAR and WAR, best-val epoch marked."""
    check_history(history)
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    loss_ax, metric_ax = fig.subplots(1, 2)
    for ax in (loss_ax, metric_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
    _loss_panel(loss_ax, history)
    _metric_panel(metric_ax, history)
    return _save_png(fig, path)


def _loss_panel(ax: Any, history: Sequence[dict]) -> None:
    xs, ys = _points(history, "train_loss")
    ax.plot(xs, ys, "o-", color="tab:red", markersize=3, label="training loss")
    ax.set_ylabel("training loss", color="tab:red")
    lr_ax = ax.twinx()
    lr_ax.plot(*_points(history, "lr"), "--", color="tab:gray")
    lr_ax.set_ylabel("learning rate (end of epoch)", color="tab:gray")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    ax.plot([], [], "--", color="tab:gray", label="learning rate (right axis)")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("Training loss and learning rate")


def _points(history: Sequence[dict], key: str) -> tuple[list[int], list[float]]:
    kept = [h for h in history if h.get(key) is not None]
    return [h["epoch"] for h in kept], [h[key] for h in kept]


def _metric_panel(ax: Any, history: Sequence[dict]) -> None:
    colours = {"val": "tab:blue", "test": "tab:orange"}
    for split, marker in (("val", "o"), ("test", "s")):
        for metric, line in (("uar", "-"), ("war", "--")):
            kept = [h for h in history if h.get(split)]
            xs = [h["epoch"] for h in kept]
            ys = [100 * h[split][metric] for h in kept]
            label = f"{split} {metric.upper()}"
            if xs:
                ax.plot(xs, ys, marker + line, color=colours[split], markersize=3, label=label)
    validated = [h for h in history if h.get("val")]
    if validated:
        # The epoch model_selection picks; before any test evaluation, among all validated.
        best = best_epoch([h for h in validated if h.get("test")] or validated, "val")
        label = f"best val UAR (epoch {best['epoch']})"
        ax.axvline(best["epoch"], color="tab:green", linestyle=":", linewidth=2, label=label)
    ax.set_ylabel("UAR / WAR (%)")
    ax.set_title("UAR / WAR on validation and test")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)


def plot_per_class_recall(
    per_class_recall: dict[str, float | None],
    path: str | Path,
    support: dict[str, int],
    uar: float | None = None,
    title: str = "Per-class recall (test)",
) -> Path:
    """Horizontal bars, one per class in the given order; chance = 1 / number of classes."""
    classes = list(per_class_recall)
    if not classes:
        raise FineCLIPERError("no classes: cannot plot per-class recall")
    fig = Figure(figsize=(7.5, 1.2 + 0.45 * len(classes)))
    ax = fig.add_subplot()
    rows = np.arange(len(classes))
    values = [100 * (per_class_recall[c] or 0.0) for c in classes]
    ax.barh(rows, values, color="tab:blue", height=0.65)
    for row, name in enumerate(classes):
        recall = per_class_recall[name]
        text = "no test clips" if recall is None else f"{100 * recall:.1f} %"
        ax.text(values[row] + 1, row, text, va="center", fontsize=8)
    labels = [f"{name} (n={support.get(name, 0)})" for name in classes]
    ax.set_yticks(rows, labels=labels)
    ax.invert_yaxis()  # first class at the top, as in the confusion matrix
    chance = 100 / len(classes)
    ax.axvline(chance, color="tab:gray", linestyle="--", label=f"chance ({chance:.1f} %)")
    if uar is not None:
        ax.axvline(100 * uar, color="tab:green", linestyle=":", label=f"UAR ({_pct(uar, 1)} %)")
    ax.set_xlim(0, 112)
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel("recall (%): share of the class's test clips predicted correctly")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return _save_png(fig, path)


def mean_weights_per_class(
    weights: np.ndarray, labels: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """(C, M) mean weight per true class (NaN rows for classes with no clip) and (C,) counts.
    NaN weights (a modality missing for a clip) count as 0, the weight it had in the fusion."""
    weights = np.nan_to_num(np.asarray(weights, dtype=np.float64), nan=0.0)
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=num_classes)
    sums = np.zeros((num_classes, weights.shape[1]))
    np.add.at(sums, labels, weights)
    means = np.divide(
        sums, counts[:, None], out=np.full(sums.shape, np.nan), where=counts[:, None] > 0
    )
    return means, counts


def plot_modality_weights(
    weights: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    classes: Sequence[str],
    modalities: Sequence[str],
    path: str | Path,
) -> Path:
    """Stacked bars: mean adaptive weight of each modality for the clips of each true class,
    plus a bar over all clips."""
    weights = np.asarray(weights, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    _check_weights(weights, labels, len(classes), len(modalities))
    means, counts = mean_weights_per_class(weights, labels, len(classes))
    rows = np.vstack([means, np.nan_to_num(weights, nan=0.0).mean(axis=0)[None]])
    names = [f"{c} (n={n})" for c, n in zip(classes, counts, strict=True)]
    names.append(f"all clips (n={len(labels)})")
    fig = Figure(figsize=(8, 1.8 + 0.45 * len(names)), layout="constrained")
    ax = fig.add_subplot()
    _stacked_bars(ax, names, rows, modalities)
    for row in np.flatnonzero(np.isnan(rows[:, 0])):
        ax.text(0.01, row, "no clips of this class", va="center", fontsize=8, color="tab:gray")
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("mean adaptive modality weight (a clip's weights sum to 1)")
    ax.set_title("How much each modality counts, per true class (test)")
    fig.legend(loc="outside lower center", ncol=len(modalities), fontsize=8)
    return _save_png(fig, path)


def _check_weights(weights: np.ndarray, labels: np.ndarray, classes: int, modalities: int) -> None:
    if weights.ndim != 2 or weights.shape != (len(labels), modalities):
        raise FineCLIPERError(
            f"weights {weights.shape} do not fit {len(labels)} clips x {modalities} modalities"
        )
    if not len(labels):
        raise FineCLIPERError("no clips: cannot plot mean modality weights")
    if labels.min() < 0 or labels.max() >= classes:
        raise FineCLIPERError(f"label index outside 0..{classes - 1}")


def _stacked_bars(ax: Any, names: list[str], rows: np.ndarray, modalities: Sequence[str]) -> None:
    left = np.zeros(len(names))
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink"]
    for m, modality in enumerate(modalities):
        width = np.nan_to_num(rows[:, m])
        ax.barh(names, width, left=left, color=colours[m % len(colours)], label=modality)
        for row in np.flatnonzero(width >= 0.07):  # label segments wide enough for text
            centre = left[row] + width[row] / 2
            text = f"{width[row]:.2f}"
            ax.text(centre, row, text, ha="center", va="center", color="white", fontsize=8)
        left += width


def plot_fixed_weight_sweep(
    points: Sequence[dict],
    adaptive: dict | None,
    path: str | Path,
    paper: bool = True,
) -> Path:
    """UAR/WAR against a fixed video weight (other modalities share the rest), with adaptive
    weighting as horizontal lines; with ``paper``, the paper's DFEW curve (Fig. 1) beside it."""
    if not points:
        raise FineCLIPERError("fixed-weight sweep has no points to plot")
    fig = Figure(figsize=(12 if paper else 6.5, 5), layout="constrained")
    axes = fig.subplots(1, 2 if paper else 1, squeeze=False)[0]
    ordered = sorted(points, key=lambda p: p["video_weight"])
    ours = {
        "uar": [p["uar"] * 100 for p in ordered],
        "war": [p["war"] * 100 for p in ordered],
    }
    ours_adaptive = (
        None if adaptive is None else PaperScore(adaptive["uar"] * 100, adaptive["war"] * 100)
    )
    _sweep_panel(axes[0], [p["video_weight"] for p in ordered], ours, ours_adaptive, "This run")
    if paper:
        weights = sorted(FIXED_WEIGHT_DFEW)
        curve = {
            "uar": [FIXED_WEIGHT_DFEW[w].uar for w in weights],
            "war": [FIXED_WEIGHT_DFEW[w].war for w in weights],
        }
        _sweep_panel(axes[1], weights, curve, ADAPTIVE_DFEW, "Paper, DFEW (seed Fig. 1)")
    return _save_png(fig, path)


def _sweep_panel(
    ax: Any,
    weights: Sequence[float],
    curve: dict[str, list[float]],
    adaptive: PaperScore | None,
    title: str,
) -> None:
    for metric, colour in (("uar", "tab:blue"), ("war", "tab:orange")):
        ax.plot(
            weights, curve[metric], "o-", color=colour, label=f"fixed weights, {metric.upper()}"
        )
        for x, y in zip(weights, curve[metric], strict=True):
            ax.annotate(
                f"{y:.1f}",
                (x, y),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=7,
            )
        if adaptive is not None:
            level = getattr(adaptive, metric)
            ax.axhline(
                level,
                color=colour,
                linestyle="--",
                label=f"adaptive weights, {metric.upper()} ({level:.2f})",
            )
    ax.set_xticks(list(weights))
    ax.set_xlabel("fixed weight of the video modality (the others share the rest)")
    ax.set_ylabel("UAR / WAR (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)


# ---- model selection and cross-validation ---------------------------------------------------


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
    return _pct(stats["mean"]) + ("" if std is None else f" ± {_pct(std)}")


def _fold_cell(selected: dict | None) -> str:
    if not selected:
        return "–"
    return f"{_pct(selected['uar'])} / {_pct(selected['war'])} (ep {selected['epoch']})"


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


# ---- one run's report -----------------------------------------------------------------------


@dataclass(frozen=True)
class RunReport:
    metrics: dict  # what metrics.json holds
    files: dict[str, Path]  # name -> written file


def write_run_report(
    out_dir: str | Path,
    *,
    clip_ids: Sequence[str],
    labels: Sequence[int] | np.ndarray,
    predictions: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    weights: np.ndarray | None = None,
    modalities: Sequence[str] = (),
    history: Sequence[dict] | None = None,
    dataset: str | None = None,
    variant: str | None = None,
    title: str = "Run report",
) -> RunReport:
    """Write metrics.json, predictions.csv, the PNGs and an index.md embedding them into
    ``out_dir``. The predictions are those of the model being reported (the epoch the caller
    chose; say which in ``title``); ``history`` adds the training curves and the
    model-selection table."""
    out_dir = Path(out_dir)
    report = classification_report(labels, predictions, classes)
    selection = model_selection(history) if history else None
    score = paper_score(dataset, variant) if dataset and variant in VARIANT_METHOD else None
    files = {
        "predictions": write_predictions_csv(
            out_dir / "predictions.csv",
            clip_ids,
            labels,
            predictions,
            probabilities,
            classes,
            weights,
            modalities,
        ),
        "confusion": plot_confusion(
            report.confusion, classes, out_dir / "confusion.png", uar=report.uar, war=report.war
        ),
        "per_class_recall": plot_per_class_recall(
            report.per_class_recall, out_dir / "per_class_recall.png", report.support, report.uar
        ),
    }
    if weights is not None:
        files["modality_weights"] = plot_modality_weights(
            weights, labels, classes, modalities, out_dir / "modality_weights.png"
        )
    if history:
        files["training_curves"] = plot_training_curves(history, out_dir / "training_curves.png")
    metrics = {
        "num_clips": len(clip_ids),
        "test": report.to_dict(),
        "selection": selection,
        "paper": None if score is None else _paper_entry(dataset, variant, score),
    }
    files["metrics"] = out_dir / "metrics.json"
    write_json(files["metrics"], metrics)
    files["index"] = out_dir / "index.md"
    write_text(files["index"], _index_markdown(title, metrics, files, dataset, variant))
    return RunReport(metrics=metrics, files=files)


def _paper_entry(dataset: str, variant: str, score: PaperScore) -> dict:
    return {
        "source": "Table 1",
        "method": VARIANT_METHOD[variant],
        "protocol": PAPER_PROTOCOL[dataset],
        "uar": score.uar,
        "war": score.war,
        "unit": "%",
    }


def _index_markdown(
    title: str, metrics: dict, files: dict[str, Path], dataset: str | None, variant: str | None
) -> str:
    test = metrics["test"]
    lines = [
        f"# {title}",
        "",
        f"Test split: {metrics['num_clips']} clips, {len(test['support'])} classes"
        + (f", dataset {DATASET_NAMES.get(dataset, dataset)}" if dataset else "")
        + (f", variant `{variant}` ({VARIANT_METHOD.get(variant, variant)})" if variant else "")
        + ".",
        "",
        f"**UAR {_pct(test['uar'])} %** (mean of the per-class recalls) · "
        f"**WAR {_pct(test['war'])} %** (share of all clips classified correctly)",
    ]
    if metrics["paper"]:
        paper = metrics["paper"]
        lines += [
            "",
            f"Paper ({paper['source']}, {paper['method']}, {paper['protocol']}): "
            f"UAR {paper['uar']:.2f} % · WAR {paper['war']:.2f} %.",
        ]
    if metrics["selection"]:
        lines += [
            "",
            "## Model selection (test metrics of the chosen epoch)",
            "",
            "| rule | epoch | UAR | WAR |",
            "|---|---|---|---|",
        ]
        for rule in SELECTION_RULES:
            chosen = metrics["selection"][rule]
            if chosen:
                lines.append(
                    f"| {RULE_TITLES[rule]} | {chosen['epoch']} | "
                    f"{_pct(chosen['uar'])} | {_pct(chosen['war'])} |"
                )
        lines += ["", OPTIMISTIC_NOTE]
    lines += _figure_sections(files)
    lines += [
        "",
        "## Files",
        "",
        "- `predictions.csv`: one row per test clip (true and predicted "
        "class, class probabilities, modality weights)",
        "- `metrics.json`: the numbers above, machine-readable",
    ]
    return "\n".join(lines) + "\n"


FIGURE_CAPTIONS = {
    "confusion": (
        "Confusion matrix",
        "Rows are the true class, columns the predicted class. "
        "Each cell shows the number of clips and the share of its row; the diagonal "
        "is what was classified correctly.",
    ),
    "per_class_recall": (
        "Per-class recall",
        "How often the clips of each class were "
        "recognised; the dashed line is chance, the dotted line the UAR.",
    ),
    "modality_weights": (
        "Modality weights",
        "How much the model relied on each input "
        "modality when fusing them, averaged over the clips of each true class.",
    ),
    "training_curves": (
        "Training curves",
        "Left: training loss and learning rate per epoch. "
        "Right: UAR and WAR on the validation and test splits; the dotted line "
        "marks the epoch with the best validation UAR.",
    ),
}


def _figure_sections(files: dict[str, Path]) -> list[str]:
    lines: list[str] = []
    for key, (heading, caption) in FIGURE_CAPTIONS.items():
        if key in files:
            lines += ["", f"## {heading}", "", caption, "", f"![{heading}]({files[key].name})"]
    return lines
