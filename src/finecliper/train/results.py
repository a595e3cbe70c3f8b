"""The end of a run: the reported model's test predictions, metrics.json, CSV and plots.

metrics.json is written once per run, here (``write_results``) for training and by
``runs.evaluate_checkpoint`` for ``eval``; :func:`report_predictions` returns its content.

The headline model is the best epoch on the validation split carved from the training fold
(the last epoch when there is none); metrics.json also lists the last epoch and, flagged as
optimistic, the best epoch on the test split, which is what most published DFER numbers use.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from finecliper.io import write_json
from finecliper.train.evaluate import Predictions
from finecliper.train.report.page import write_run_report
from finecliper.train.run import Run, load_epoch_predictions
from finecliper.train.selection import headline_rule, model_selection


def write_results(run: Run, history: list[dict[str, Any]]) -> dict[str, Any]:
    selection = model_selection(history)
    rule = headline_rule(selection, label_free=run.config.model.zero_shot_label_free)
    epoch = selection[rule]["epoch"]
    predictions = load_epoch_predictions(run.out, epoch)
    config = run.config
    metrics = report_predictions(
        run.out,
        run.data.test,
        predictions,
        run.data.classes,
        run.model.modalities,
        history=history,
        dataset=config.data.dataset,
        variant=config.model.variant,
        title=f"{config.data.dataset} fold {config.data.fold}, {config.model.variant}, "
        f"epoch {epoch} ({rule.replace('_', ' ')})",
    )
    metrics.update(
        {
            "headline": rule,
            "headline_epoch": epoch,
            "fold": config.data.fold,
            "source": run.data.index.source,
            "train_clips": len(run.data.train),
            "val_clips": len(run.data.val),
            "unusable_train_clips": run.data.unusable,
        }
    )
    write_json(run.out / "metrics.json", metrics)
    return metrics


def report_predictions(
    out, records, predictions: Predictions, classes, modalities, **report_options
) -> dict[str, Any]:
    """Write the run report for ``predictions`` over ``records``; returns metrics.json's content
    for the caller to complete and write."""
    labels = np.array([records[i].label for i in predictions.indices], dtype=np.int64)
    unreadable = [(records[i].clip_id, records[i].label, error) for i, error in predictions.skipped]
    report = write_run_report(
        out,
        clip_ids=[records[i].clip_id for i in predictions.indices],
        labels=labels,
        predictions=predictions.probabilities.argmax(axis=1),
        probabilities=predictions.probabilities,
        classes=classes,
        weights=predictions.weights,
        modalities=modalities,
        unreadable=unreadable,
        **report_options,
    )
    test = report.metrics["test"]
    metrics = {
        "uar": test["uar"],
        "war": test["war"],
        "dataset": report_options.get("dataset"),
        "variant": report_options.get("variant"),
        "classes": list(classes),
        "modalities": list(modalities),
        "test_clips": len(records),
        "evaluated_clips": len(predictions.indices),
        # Counted as wrong in uar/war above: the split is scored in full.
        "skipped_test_clips": [
            {"clip_id": clip_id, "error": error} for clip_id, _, error in unreadable
        ],
        **report.metrics,
    }
    return metrics
