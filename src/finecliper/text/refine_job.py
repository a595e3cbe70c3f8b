"""``finecliper refine``: cleaning, manual-review import, leakage probe, flagged export.

Input: any JSONL whose lines have ``clip_id`` and ``text`` (optional ``label``, ``split``,
``prompt_id``). Output: the same lines, every input field kept, plus ``refined_text`` (stage a,
then the reviewers' decisions), ``leak_flagged`` when the probe ran, and ``review`` for lines a
reviewer decided on. Alongside: a JSON leakage report (probe accuracy before/after against
chance, emotion-word counts, flagged count) and a CSV of the flagged, not yet reviewed lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finecliper.errors import ConfigError
from finecliper.io import atomic_open, dumps_json, write_json
from finecliper.text import probe
from finecliper.text.descriptions import read_jsonl
from finecliper.text.prompts import is_training_split
from finecliper.text.refine import emotion_words, refine_text


@dataclass
class RefineOptions:
    probe: bool = True
    threshold: float = 0.6
    folds: int = 5
    seed: int = 0
    review_in: Path | None = None
    review_out: Path | None = None
    judge: Any = None  # a backend with complete(), or None


def row_key(row: dict[str, Any]) -> tuple[str, str]:
    return (row["clip_id"], str(row.get("prompt_id") or ""))


def run_refine(
    in_path: Path, out_path: Path, report_path: Path, options: RefineOptions
) -> dict[str, Any]:
    rows = read_jsonl(in_path, required=("clip_id", "text"))
    removed = clean_rows(rows)
    report: dict[str, Any] = {
        "input": str(in_path),
        "output": str(out_path),
        "lines": len(rows),
        "described": sum(isinstance(r.get("text"), str) and bool(r["text"]) for r in rows),
        "clauses_removed": removed,
        "texts_with_emotion_words": _emotion_counts(rows),
    }
    if options.review_in is not None:
        report["review"] = apply_review(rows, options.review_in)
    if options.probe:
        report["probe"] = verify(rows, options)
    _write_jsonl(out_path, rows)
    write_json(report_path, report)
    return report


def clean_rows(rows: list[dict[str, Any]]) -> int:
    """Stage (a) on every line; returns how many clauses were removed in all."""
    removed = 0
    for row in rows:
        text = row.get("text")
        if isinstance(text, str) and text.strip():
            refined = refine_text(text)
            row["refined_text"] = refined.text
            row["_removed"] = refined.removed
            removed += len(refined.removed)
        else:
            row["refined_text"] = None
    return removed


def _emotion_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    def count(field: str) -> int:
        return sum(bool(emotion_words(r.get(field) or "")) for r in rows)

    return {"before": count("text"), "after": count("refined_text")}


def apply_review(rows: list[dict[str, Any]], review_csv: Path) -> dict[str, Any]:
    """Apply reviewers' keep/edit/drop decisions; unknown lines in the CSV are an error."""
    decisions = probe.import_review(review_csv)
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        by_key.setdefault(row_key(row), []).append(row)
    counts = {decision: 0 for decision in probe.DECISIONS}
    still_emotional = []
    for key, review in decisions.items():
        if key not in by_key:
            raise ConfigError(
                f"{review_csv}:{review.line}: no line with clip_id {key[0]!r} and prompt_id "
                f"{key[1]!r} in the input"
            )
        for row in by_key[key]:
            if review.decision == "edit":
                row["refined_text"] = review.reviewed_text
                if emotion_words(review.reviewed_text):
                    still_emotional.append(f"{review_csv}:{review.line}")
            elif review.decision == "drop":
                row["refined_text"] = ""
            row["review"] = {"keep": "kept", "edit": "edited", "drop": "dropped"}[review.decision]
        counts[review.decision] += 1
    return {"file": str(review_csv), **counts, "edits_with_emotion_words": still_emotional}


def verify(rows: list[dict[str, Any]], options: RefineOptions) -> dict[str, Any]:
    """Probe before/after, flag confident recoveries, export the unreviewed flagged lines."""
    probed = [r for r in rows if r.get("label") is not None and r.get("refined_text") is not None]
    if not probed:
        return {"skipped": "no line has both a label and a text"}
    labels = [str(r["label"]) for r in probed]
    has_splits = any("split" in r for r in probed)
    training = [is_training_split(str(r.get("split"))) or not has_splits for r in probed]
    results = {}
    for stage, field in (("before", "text"), ("after", "refined_text")):
        data = probe.ProbeInput([r[field] or "" for r in probed], labels, training)
        results[stage] = probe.run_probe(data, folds=options.folds, seed=options.seed)
    probe_flags = probe.flag_confident(labels, results["after"], options.threshold)
    summary: dict[str, Any] = {
        "threshold": options.threshold,
        "before": results["before"].summary,
        "after": results["after"].summary,
    }
    judged: list[str | None] = [None] * len(probed)
    if options.judge is not None:
        summary["judge"], judged = _judge(probed, labels, options.judge)
    judge_flags = [answer == label for answer, label in zip(judged, labels, strict=True)]
    flagged_rows = _mark_flags(probed, probe_flags, judge_flags, results["after"], judged)
    summary["flagged"] = sum(p or j for p, j in zip(probe_flags, judge_flags, strict=True))
    summary["flagged_unreviewed"] = len(flagged_rows)
    if flagged_rows and options.review_out is not None:
        probe.export_review(options.review_out, flagged_rows)
        summary["review_csv"] = str(options.review_out)
    return summary


def _judge(
    probed: list[dict[str, Any]], labels: list[str], judge: Any
) -> tuple[dict[str, Any], list[str | None]]:
    classes = sorted(set(labels))
    report = {}
    answers: list[str | None] = []
    for stage, field in (("before", "text"), ("after", "refined_text")):
        answers = probe.judge_texts(judge, [r[field] or "" for r in probed], classes)
        report[stage] = probe.judge_summary(labels, answers)
    return report, answers


def _mark_flags(
    probed: list[dict[str, Any]],
    probe_flags: list[bool],
    judge_flags: list[bool],
    after: probe.ProbeResult,
    judged: list[str | None],
) -> list[dict[str, Any]]:
    """Set ``leak_flagged`` on the lines; return review rows for the unreviewed flagged ones."""
    review_rows = []
    for i, row in enumerate(probed):
        by = [name for name, hit in (("probe", probe_flags[i]), ("judge", judge_flags[i])) if hit]
        row["leak_flagged"] = bool(by)
        if not by or "review" in row:
            continue
        review_rows.append(
            {
                **row,
                "flagged_by": "+".join(by),
                "probe_prediction": after.predictions[i],
                "probe_confidence": f"{after.confidences[i]:.3f}",
                "judge_prediction": judged[i] or "",
                "label": row_label(row),
                "decision": "",
                "reviewed_text": row["refined_text"],
            }
        )
    return review_rows


def row_label(row: dict[str, Any]) -> str:
    return str(row["label"])


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            clean = {key: value for key, value in row.items() if not key.startswith("_")}
            handle.write(dumps_json(clean, ensure_ascii=False) + "\n")
