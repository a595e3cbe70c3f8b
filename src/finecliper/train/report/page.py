"""One run's report: predictions.csv, the plots and an index.md that embeds them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from finecliper.io import write_text
from finecliper.train.metrics import classification_report
from finecliper.train.paper import (
    DATASET_NAMES,
    PAPER_PROTOCOL,
    VARIANT_METHOD,
    PaperScore,
    paper_score,
)
from finecliper.train.report.common import OPTIMISTIC_NOTE, RULE_TITLES, pct
from finecliper.train.report.plots import (
    plot_confusion,
    plot_modality_weights,
    plot_per_class_recall,
    plot_training_curves,
)
from finecliper.train.report.predictions_csv import write_predictions_csv
from finecliper.train.selection import SELECTION_RULES, model_selection


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
    unreadable: Sequence[tuple[str, int, str]] = (),
) -> RunReport:
    """Write predictions.csv, the PNGs and an index.md embedding them into ``out_dir``.

    The returned metrics are what the caller writes to metrics.json (once, with its own keys).
    The predictions are those of the model being reported (the epoch the caller chose; say which
    in ``title``); ``history`` adds the training curves and the model-selection table.
    ``unreadable`` lists the clips that could not be read as (clip id, label, error): they
    count as wrong in UAR/WAR and are listed on the page."""
    out_dir = Path(out_dir)
    unreadable_labels = [label for _, label, _ in unreadable]
    report = classification_report(labels, predictions, classes, unreadable=unreadable_labels)
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
        "num_clips": len(clip_ids) + len(unreadable),
        "test": report.to_dict(),
        "selection": selection,
        "paper": None if score is None else _paper_entry(dataset, variant, score),
    }
    files["index"] = out_dir / "index.md"
    page = _index_markdown(title, metrics, files, dataset, variant, unreadable, classes)
    write_text(files["index"], page)
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
    title: str,
    metrics: dict,
    files: dict[str, Path],
    dataset: str | None,
    variant: str | None,
    unreadable: Sequence[tuple[str, int, str]],
    classes: Sequence[str],
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
        f"**UAR {pct(test['uar'])} %** (mean of the per-class recalls) · "
        f"**WAR {pct(test['war'])} %** (share of all clips classified correctly)",
    ]
    lines += _unreadable_section(unreadable, classes)
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
                    f"{pct(chosen['uar'])} | {pct(chosen['war'])} |"
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


def _unreadable_section(
    unreadable: Sequence[tuple[str, int, str]], classes: Sequence[str]
) -> list[str]:
    if not unreadable:
        return []
    lines = [
        "",
        f"## Unreadable test clips ({len(unreadable)}, counted as wrong)",
        "",
        "These clips could not be read; UAR and WAR count each as misclassified, so the test "
        "split is scored in full. The confusion matrix and predictions.csv hold the read clips.",
        "",
        "| clip | true class | error |",
        "|---|---|---|",
    ]
    for clip_id, label, error in unreadable:
        lines.append(f"| `{clip_id}` | {classes[label]} | {error.replace('|', '/')} |")
    return lines


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
