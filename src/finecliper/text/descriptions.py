"""Descriptions for the model's fine-grained text branch, by clip id.

Reads any descriptions JSONL (``finecliper describe`` or ``refine`` output, SynthDFER's
``descriptions.jsonl``): a line's text is its ``refined_text`` when the line has one, else its
``text``. A line with an error or an empty text gives no description: that clip's text modality
is missing (the model drops it from the fusion), which is not an error.

A clip can have two descriptions, one made with its label shown (for use as a training clip)
and one without (for evaluation); ``load_descriptions(path, split=...)`` picks per split:
training splits prefer the labelled one, any other split gets only label-free descriptions
unless ``allow_label_leak`` reproduces the paper, which showed labels everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finecliper.errors import FineCLIPERError
from finecliper.io import read_text
from finecliper.text.prompts import is_training_split


def read_jsonl(path: str | Path, required: tuple[str, ...] = ("clip_id",)) -> list[dict[str, Any]]:
    """Every line of a JSONL file as a dict; a malformed line is an error naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise FineCLIPERError(f"{path}: descriptions file does not exist")
    rows = []
    for number, line in enumerate(read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, parse_constant=_refuse_constant)
        except ValueError as exc:
            raise FineCLIPERError(f"{path}:{number}: not valid JSON ({exc})") from None
        if not isinstance(row, dict):
            raise FineCLIPERError(f"{path}:{number}: expected a JSON object")
        missing = [key for key in required if key not in row]
        if missing:
            raise FineCLIPERError(f"{path}:{number}: missing field(s) {', '.join(missing)}")
        row["clip_id"] = str(row["clip_id"])
        rows.append(row)
    return rows


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not standard JSON")


def description_text(row: dict[str, Any]) -> str | None:
    """The text a line gives the text branch, or None (missing modality)."""
    if row.get("error"):
        return None
    text = row["refined_text"] if "refined_text" in row else row.get("text")
    return text.strip() if isinstance(text, str) and text.strip() else None


def load_descriptions(
    path: str | Path, *, split: str | None = None, allow_label_leak: bool = False
) -> dict[str, str]:
    """{clip_id: description} for clips of ``split`` (None: any split, label-free preferred)."""
    shown: dict[str, str] = {}
    hidden: dict[str, str] = {}
    for row in read_jsonl(path):
        text = description_text(row)
        if text is not None:
            (shown if row.get("label_shown") else hidden)[row["clip_id"]] = text
    if split is not None and is_training_split(split):
        return {**hidden, **shown}
    if allow_label_leak:
        return {**hidden, **shown}
    return hidden if split is not None else {**shown, **hidden}
