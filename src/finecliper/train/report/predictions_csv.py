"""predictions.csv: one row per test clip, written by a run and read back by tools."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from finecliper.errors import FineCLIPERError
from finecliper.io import atomic_open, read_text

FIXED_COLUMNS = ("clip_id", "label", "prediction", "correct")


@dataclass(frozen=True)
class PredictionTable:
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


def read_predictions_csv(path: str | Path) -> PredictionTable:
    """Read back a file written by write_predictions_csv."""
    path = Path(path)
    try:
        rows = list(csv.reader(io.StringIO(read_text(path), newline="")))
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
    return PredictionTable(
        clip_ids=clip_ids,
        labels=np.asarray(labels, dtype=np.int64),
        predictions=np.asarray(predictions, dtype=np.int64),
        probabilities=values[:, : len(classes)],
        classes=classes,
        weights=values[:, len(classes) :] if modalities else None,
        modalities=modalities,
    )
