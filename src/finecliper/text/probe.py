"""Stage (b) of the refinement: counterfactual verification of the label leak.

A text-only probe tries to read the label off the descriptions. The classifier is TF-IDF (word
1-2 grams) + logistic regression, cross-validated with stratified k-fold on the training
descriptions; descriptions made for evaluation (split "test") are scored by a probe fit on all
training descriptions. Its accuracy is reported against chance (the majority-class rate and
1/C), on the generated texts (before) and on the refined ones (after). A refined text whose
out-of-fold prediction is its own label with probability >= the threshold is flagged; so is one
an optional LLM judge (any backend with text completion) names the right class for. Flagged
texts go to a CSV for manual review; the reviewed CSV comes back with a decision per row: keep
(refined text stays), edit (reviewed_text replaces it) or drop (no description: the clip's text
modality is missing).

A probe well above chance after refinement does not prove a leak by itself: movements such as
raised lip corners do predict expressions. What refinement must remove is the part of the
accuracy that words naming or interpreting the emotion add; that is what the before/after
comparison and the flagged texts show.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from finecliper.errors import ConfigError, FineCLIPERError
from finecliper.io import atomic_open, read_text

REVIEW_COLUMNS = (
    "clip_id",
    "prompt_id",
    "split",
    "label",
    "flagged_by",
    "probe_prediction",
    "probe_confidence",
    "judge_prediction",
    "text",
    "refined_text",
    "decision",
    "reviewed_text",
)
DECISIONS = ("keep", "edit", "drop")
JUDGE_PROMPT = (
    "Here is a description of a person's face in a video:\n\n{text}\n\n"
    "Which one of these expressions does the person show: {classes}? "
    "Answer with exactly one word from the list."
)


@dataclass
class ProbeResult:
    """Per-text probe outputs (aligned with the input) and the summary figures."""

    predictions: list[str | None]
    confidences: list[float]
    summary: dict[str, Any]


@dataclass
class ReviewRow:
    decision: str
    reviewed_text: str
    line: int


@dataclass
class ProbeInput:
    """The texts to probe, with labels and whether each is a training description."""

    texts: list[str]
    labels: list[str]
    training: list[bool] = field(default_factory=list)


def chance_levels(labels: Sequence[str]) -> dict[str, float]:
    counts = Counter(labels)
    return {
        "majority": max(counts.values()) / len(labels) if labels else 0.0,
        "uniform": 1.0 / len(counts) if counts else 0.0,
    }


def _classifier(seed: int) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True),
        LogisticRegression(max_iter=2000, C=4.0, random_state=seed),
    )


def run_probe(data: ProbeInput, *, folds: int = 5, seed: int = 0) -> ProbeResult:
    """Out-of-fold predictions for training texts, fit-on-all predictions for the others."""
    from threadpoolctl import threadpool_limits

    # The problem is sparse and small per step: BLAS threads only add overhead (6x here).
    with threadpool_limits(limits=1):
        return _run_probe(data, folds, seed)


def _run_probe(data: ProbeInput, folds: int, seed: int) -> ProbeResult:
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    n = len(data.texts)
    training = np.array(data.training or [True] * n)
    train_idx = np.flatnonzero(training)
    labels = np.array(data.labels, dtype=object)
    counts = Counter(labels[train_idx])
    k = min(folds, min(counts.values()) if counts else 0)
    if len(counts) < 2 or k < 2:
        reason = f"need >= 2 classes with >= 2 training texts each (have {dict(counts)})"
        return ProbeResult([None] * n, [0.0] * n, {"skipped": reason})
    texts = np.array([t or "" for t in data.texts], dtype=object)
    if not any(texts[train_idx]):
        return ProbeResult([None] * n, [0.0] * n, {"skipped": "every training text is empty"})
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    probabilities = np.zeros((n, len(counts)))
    probabilities[train_idx] = _safe_proba(
        lambda: cross_val_predict(
            _classifier(seed),
            texts[train_idx],
            labels[train_idx],
            cv=splitter,
            method="predict_proba",
        ),
        len(train_idx),
        len(counts),
    )
    classes = sorted(counts)
    held_out = np.flatnonzero(~training)
    if len(held_out):
        model = _classifier(seed).fit(texts[train_idx], labels[train_idx])
        probabilities[held_out] = model.predict_proba(texts[held_out])
    best = probabilities.argmax(axis=1)
    predictions = [classes[i] for i in best]
    confidences = probabilities.max(axis=1).tolist()
    summary = _summary(labels, predictions, training, k, classes)
    return ProbeResult(predictions, confidences, summary)


def _safe_proba(fit_predict: Any, rows: int, classes: int) -> np.ndarray:
    """Cross-validated probabilities; texts with no usable words get the uniform distribution."""
    try:
        return fit_predict()
    except ValueError as exc:
        if "empty vocabulary" not in str(exc):
            raise
        return np.full((rows, classes), 1.0 / classes)


def _summary(labels, predictions, training, folds: int, classes: list[str]) -> dict[str, Any]:
    from sklearn.metrics import balanced_accuracy_score

    predicted = np.array(predictions, dtype=object)
    summary: dict[str, Any] = {"classes": classes, "folds": folds}
    for name, mask in (("train_cv", training), ("held_out", ~training)):
        if not mask.any():
            continue
        truth = labels[mask]
        summary[name] = {
            "n": int(mask.sum()),
            "accuracy": float((predicted[mask] == truth).mean()),
            "balanced_accuracy": float(balanced_accuracy_score(truth, predicted[mask])),
            "chance": chance_levels(list(truth)),
        }
    return summary


def flag_confident(labels: Sequence[str], result: ProbeResult, threshold: float) -> list[bool]:
    """Texts whose probe prediction is their own label with probability >= ``threshold``."""
    return [
        prediction == label and confidence >= threshold
        for label, prediction, confidence in zip(
            labels, result.predictions, result.confidences, strict=True
        )
    ]


def judge_texts(
    backend: Any, texts: Sequence[str], classes: Sequence[str], batch_size: int = 16
) -> list[str | None]:
    """The class an LLM names for each text (None when its answer names none or failed)."""
    from tqdm import tqdm

    prompts = [JUDGE_PROMPT.format(text=t, classes=", ".join(classes)) for t in texts]
    answers: list[str | None] = []
    for start in tqdm(range(0, len(prompts), batch_size), desc="LLM judge", unit="batch"):
        replies = backend.complete(prompts[start : start + batch_size])
        answers.extend(parse_judgement(reply.text or "", classes) for reply in replies)
    return answers


def parse_judgement(answer: str, classes: Sequence[str]) -> str | None:
    """The first class named in ``answer`` (case-insensitive, whole word)."""
    best: tuple[int, str] | None = None
    for name in classes:
        match = re.search(rf"\b{re.escape(name)}\b", answer, re.IGNORECASE)
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), name)
    return best[1] if best else None


def judge_summary(labels: Sequence[str], answers: Sequence[str | None]) -> dict[str, Any]:
    correct = sum(a == label for a, label in zip(answers, labels, strict=True))
    return {
        "n": len(labels),
        "accuracy": correct / len(labels) if labels else 0.0,
        "unanswered": sum(a is None for a in answers),
        "chance": chance_levels(list(labels)),
    }


def export_review(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write flagged rows (dicts with REVIEW_COLUMNS keys) for manual review."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=REVIEW_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: row.get(key, "") for key in REVIEW_COLUMNS})


def import_review(path: Path) -> dict[tuple[str, str], ReviewRow]:
    """Reviewed decisions by (clip_id, prompt_id); rows with no decision are left out."""
    if not path.is_file():
        raise FineCLIPERError(f"{path}: review file does not exist")
    decisions: dict[tuple[str, str], ReviewRow] = {}
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    missing = {"clip_id", "decision", "reviewed_text"} - set(reader.fieldnames or ())
    if missing:
        raise ConfigError(f"{path}: review CSV lacks column(s) {', '.join(sorted(missing))}")
    for line, row in enumerate(reader, start=2):
        decision = (row.get("decision") or "").strip().lower()
        if not decision:
            continue
        if decision not in DECISIONS:
            raise ConfigError(
                f"{path}:{line}: decision {decision!r} (expected {', '.join(DECISIONS)})"
            )
        reviewed = (row.get("reviewed_text") or "").strip()
        if decision == "edit" and not reviewed:
            raise ConfigError(f"{path}:{line}: decision 'edit' with an empty reviewed_text")
        key = (row["clip_id"], row.get("prompt_id") or "")
        decisions[key] = ReviewRow(decision, reviewed, line)
    return decisions
