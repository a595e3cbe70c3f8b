"""``data check``: per-split counts, label histograms and frame statistics, then every problem."""

from __future__ import annotations

import statistics
from typing import Any

from finecliper.data.records import ClipRecord, DatasetIndex

# Clips shorter than this need padding to the 16 frames the model samples.
SHORT_CLIP_FRAMES = 16


def _frame_stats(records: list[ClipRecord]) -> dict[str, float] | None:
    """min/median/max/mean over clips whose frames could be counted (None when there are none)."""
    counts = [r.num_frames for r in records if r.num_frames]
    if not counts:
        return None
    return {
        "min": min(counts),
        "median": statistics.median(counts),
        "max": max(counts),
        "mean": round(statistics.fmean(counts), 2),
    }


def _split_summary(records: list[ClipRecord], classes: tuple[str, ...]) -> dict[str, Any]:
    label_counts = dict.fromkeys(classes, 0)
    for record in records:
        label_counts[classes[record.label]] += 1
    return {
        "clips": len(records),
        "label_counts": label_counts,
        "short_clips": sum(1 for r in records if r.num_frames and r.num_frames < SHORT_CLIP_FRAMES),
        "unreadable_clips": sum(1 for r in records if not r.num_frames),
        "frames": _frame_stats(records),
    }


def summarize(index: DatasetIndex) -> dict[str, Any]:
    """The JSON-ready summary printed by ``data check --json``.

    ``short_clips`` counts clips with 1..15 frames; clips whose frames could not be counted at
    all (missing or empty folder, unreadable video) are ``unreadable_clips`` and left out of the
    frame statistics. Every problem is listed with its path.
    """
    return {
        "dataset": index.dataset,
        "root": str(index.root),
        "source": index.source,
        "classes": list(index.classes),
        "splits": {
            name: _split_summary(records, index.classes) for name, records in index.splits.items()
        },
        "problems": [{"path": p.path, "problem": p.problem} for p in index.problems]
        + _empty_split_problems(index),
    }


def _empty_split_problems(index: DatasetIndex) -> list[dict[str, str]]:
    """A dataset must have train and test clips: ``train`` would otherwise fail only at the end."""
    problems = []
    for role in ("train", "test"):
        names = [name for name in index.splits if name == role or name.endswith(f"/{role}")]
        if not names:
            problems.append({"path": str(index.root), "problem": f"no {role} split"})
        problems += [
            {"path": str(index.root), "problem": f"split {name} has no clips"}
            for name in names
            if not index.splits[name]
        ]
    return problems


def _format_frames(frames: dict[str, float] | None) -> str:
    if frames is None:
        return "-"
    return f"{frames['min']}/{frames['median']:g}/{frames['mean']:.1f}/{frames['max']}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned first column, right-aligned others, two spaces apart."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines


def format_report(summary: dict[str, Any]) -> str:
    """A readable report: split table, label histogram (classes x splits), then problems."""
    splits = summary["splits"]
    lines = [f"{summary['dataset']} at {summary['root']} (source: {summary['source'] or '-'})", ""]
    short = f"<{SHORT_CLIP_FRAMES} frames"
    header = ["split", "clips", short, "unreadable", "frames min/med/mean/max"]
    rows = [
        [
            name,
            str(split["clips"]),
            str(split["short_clips"]),
            str(split["unreadable_clips"]),
            _format_frames(split["frames"]),
        ]
        for name, split in splits.items()
    ]
    lines += _table(header, rows)
    lines += ["", "labels:"]
    class_rows = [
        [name, *(str(split["label_counts"][name]) for split in splits.values())]
        for name in summary["classes"]
    ]
    lines += _table(["class", *splits], class_rows)
    problems = summary["problems"]
    lines += ["", f"problems: {len(problems) or 'none'}"]
    lines += [f"  {problem['path']}: {problem['problem']}" for problem in problems]
    return "\n".join(lines)
