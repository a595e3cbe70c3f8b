"""The report's PNG plots, drawn with matplotlib's object API and written atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from finecliper.errors import FineCLIPERError
from finecliper.io import atomic_open
from finecliper.train.paper import (
    ADAPTIVE_DFEW,
    FIXED_WEIGHT_DFEW,
    PaperScore,
)
from finecliper.train.report.common import pct
from finecliper.train.selection import best_epoch, check_history

DPI = 120


def save_png(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=DPI, bbox_inches="tight")
    return path


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
        title = f"{title}\nUAR {pct(uar)} %   WAR {pct(war)} %"
    ax.set_title(title)
    return save_png(fig, path)


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
    return save_png(fig, path)


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
        ax.axvline(100 * uar, color="tab:green", linestyle=":", label=f"UAR ({pct(uar, 1)} %)")
    ax.set_xlim(0, 112)
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel("recall (%): share of the class's test clips predicted correctly")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return save_png(fig, path)


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
    return save_png(fig, path)


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
    return save_png(fig, path)


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
