"""UAR, WAR, per-class recall and the confusion matrix over a whole test split.

UAR is the mean recall over the classes that occur in the labels (as scikit-learn's balanced
accuracy); WAR is plain accuracy. Both take every clip exactly once: multi-process evaluation
gathers predictions by clip index before calling these. A clip that could not be read counts
as wrong (``unreadable`` labels): it is in its class's support but never in the diagonal, so an
evaluated split never shrinks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClassificationReport:
    uar: float
    war: float
    per_class_recall: dict[str, float | None]  # None: the class has no test clip
    confusion: list[list[int]]  # rows: true class, columns: predicted class
    support: dict[str, int]  # every clip of the class, the unreadable ones included
    unreadable: dict[str, int]  # clips of the class that could not be read (counted as wrong)

    def to_dict(self) -> dict:
        return {
            "uar": self.uar,
            "war": self.war,
            "per_class_recall": self.per_class_recall,
            "support": self.support,
            "unreadable": self.unreadable,
            "confusion": self.confusion,
        }


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(f"{labels.shape[0]} labels but {predictions.shape[0]} predictions")
    for name, values in (("label", labels), ("prediction", predictions)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} outside 0..{num_classes - 1}")
    flat = labels * num_classes + predictions
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def classification_report(
    labels: Sequence[int] | np.ndarray,
    predictions: Sequence[int] | np.ndarray,
    classes: Sequence[str],
    unreadable: Sequence[int] | np.ndarray = (),
) -> ClassificationReport:
    """Metrics of the read clips' ``predictions``, with the ``unreadable`` clips' labels
    counted as wrong; ``confusion`` holds the read clips only."""
    matrix = confusion_matrix(np.asarray(labels), np.asarray(predictions), len(classes))
    lost = np.bincount(np.asarray(unreadable, dtype=np.int64), minlength=len(classes))
    if len(lost) > len(classes):
        raise ValueError(f"unreadable clip label outside 0..{len(classes) - 1}")
    support = matrix.sum(axis=1) + lost
    if support.sum() == 0:
        raise ValueError("no clips to evaluate")
    present = support > 0
    recall = np.divide(np.diag(matrix), support, out=np.zeros(len(classes)), where=present)
    return ClassificationReport(
        uar=float(recall[present].mean()),
        war=float(np.trace(matrix) / support.sum()),
        per_class_recall={
            name: float(recall[i]) if present[i] else None for i, name in enumerate(classes)
        },
        confusion=matrix.tolist(),
        support={name: int(support[i]) for i, name in enumerate(classes)},
        unreadable={name: int(lost[i]) for i, name in enumerate(classes)},
    )
