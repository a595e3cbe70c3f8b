"""The published split lists of DFEW, FERV39k and MAFW: per-clip metadata and official counts.

``data/reference/*.tsv.gz`` hold, for every clip of the standard protocols, its id (FERV39k: its
``Scene/Emotion/id`` path), frame count, label and test fold (FERV39k: split). They come from the
annotation lists of a public DFER codebase; no images. ``data check`` compares a full dataset's
split sizes with them, and the test fixtures draw real ids, lengths and labels from them.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections import Counter
from functools import cache
from importlib import resources

from finecliper.data.records import DatasetIndex, Problem

REFERENCE_DATASETS = ("dfew", "ferv39k", "mafw")

# Below this share of an official split, a split is a subset on purpose (a fixture, a sample):
# differences are not worth reporting.
COMPLETE_FRACTION = 0.9


@cache
def reference_rows(dataset: str) -> tuple[dict[str, str], ...]:
    """Rows of ``reference/<dataset>.tsv.gz`` as dicts keyed by the TSV header."""
    if dataset not in REFERENCE_DATASETS:
        raise KeyError(f"no reference split list for {dataset!r} (have: {REFERENCE_DATASETS})")
    blob = resources.files("finecliper.data").joinpath(f"reference/{dataset}.tsv.gz").read_bytes()
    text = gzip.decompress(blob).decode("utf-8")
    return tuple(csv.DictReader(io.StringIO(text), delimiter="\t"))


@cache
def official_split_counts(dataset: str) -> dict[str, int]:
    """Clips per split name (``foldK/train``, ``foldK/test`` or ``train``, ``test``)."""
    rows = reference_rows(dataset)
    if dataset == "ferv39k":
        return dict(Counter(row["split"] for row in rows))
    test_sizes = Counter(int(row["test_fold"]) for row in rows)
    counts = {}
    for fold in sorted(test_sizes):
        counts[f"fold{fold}/train"] = len(rows) - test_sizes[fold]
        counts[f"fold{fold}/test"] = test_sizes[fold]
    return counts


def count_differences(index: DatasetIndex) -> list[Problem]:
    """A problem per split of a (nearly) complete dataset whose size differs from the official."""
    if index.dataset not in REFERENCE_DATASETS:
        return []
    official = official_split_counts(index.dataset)
    problems = []
    for split, records in index.splits.items():
        expected = official.get(split)
        found = len(records)
        if expected is None or found == expected or found < COMPLETE_FRACTION * expected:
            continue
        problems.append(Problem(str(index.root), f"{split}: {found} clips, official {expected}"))
    return problems
