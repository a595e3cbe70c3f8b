"""Every text or JSON file the project reads back names the file and line of a bad byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finecliper.errors import FineCLIPERError
from finecliper.face.cache import read_manifest, read_status
from finecliper.text.describe import read_finished
from finecliper.train.report.predictions_csv import read_predictions_csv

BAD = b"\xff\xfe not utf-8"


def _write(path: Path, first: bytes, then: bytes = BAD) -> Path:
    path.write_bytes(first + b"\n" + then + b"\n")
    return path


@pytest.mark.parametrize(
    ("name", "reader"),
    [
        ("status.json", lambda p: read_status(p.parent)),
        ("manifest.json", lambda p: read_manifest(p.parent)),
        ("predictions.csv", read_predictions_csv),
        ("descriptions.jsonl", read_finished),
    ],
)
def test_a_bad_byte_is_named_by_file_and_line(tmp_path, name, reader):
    good = json.dumps({"clip_id": "a", "prompt_id": "p", "text": "t"}).encode()
    path = _write(tmp_path / name, good)
    with pytest.raises(FineCLIPERError, match=rf"{name}:2: not valid utf-8"):
        reader(path)
