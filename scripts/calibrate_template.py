"""Calibrate the landmark template backend's amplitude words for MediaPipe-measured points.

The template backend (``finecliper describe --backend template``, ``predict``) turns how far
each face measure moves from its start value into "slightly", "clearly" or "strongly". Measured
by MediaPipe on video frames, some measures move more or less than the true points do (drawn
brows are tracked weakly, mouth width noisily). On a SynthDFER folder (true landmarks) and its
``prepare faces`` cache (MediaPipe's), this script measures, per measure, the spread of the
clips' largest changes in both, and the gain: the factor that, dividing the measured changes,
makes their degree word ("none", "slightly", "clearly", "strongly") equal the true points' on the
most clips (searched over 0.25-4 on a log grid; the ratio of spreads is printed beside it).
``template.MEDIAPIPE_GAINS`` holds those gains. It also prints the correlation of measured and
true changes, and the word agreement without gains and with the package's gains.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/calibrate_template.py SYNTH_ROOT FACES_CACHE
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from finecliper.data.synth import read_synth
from finecliper.face.arrays import read_landmarks
from finecliper.face.cache import clip_dir
from finecliper.face.pipeline import unique_records
from finecliper.text.backends.template import (
    MEDIAPIPE_GAINS,
    THRESHOLDS,
    calibrate,
    face_measures,
    measure_change,
    smooth_jitter,
)

RELATIVE = ("eye_open", "mouth_width")
# The measure whose thresholds grade each series (head position is graded as one shift).
GRADED_BY = {key: key for key in MEDIAPIPE_GAINS} | {"head_x": "head_shift", "head_y": "head_shift"}


def largest_changes(measures: dict[str, np.ndarray]) -> dict[str, float]:
    return {key: measure_change(measures[key], key in RELATIVE).delta for key in MEDIAPIPE_GAINS}


def degree_level(delta: float, key: str) -> int:
    """0 (no word) to 3 ("strongly")."""
    return sum(abs(delta) >= limit for limit in THRESHOLDS[GRADED_BY[key]])


def clip_changes(root: Path, cache: Path) -> tuple[list[dict], list[dict], list[dict]]:
    """Largest changes per clip: true, measured, measured and calibrated."""
    index = read_synth(root)
    true_rows, measured_rows, calibrated_rows = [], [], []
    for clip_id in sorted(record.clip_id for record in unique_records(index)):
        truth = read_landmarks(root / "clips" / clip_id).astype(np.float64)
        measured = read_landmarks(clip_dir(cache, clip_id)).astype(np.float64)
        found = np.isfinite(measured).all(axis=(1, 2))
        if found.sum() < 2:
            continue
        true_rows.append(largest_changes(face_measures(truth[found])))
        measures = smooth_jitter(face_measures(measured[found]))
        measured_rows.append(largest_changes(measures))
        calibrated_rows.append(largest_changes(calibrate(measures, MEDIAPIPE_GAINS)))
    return true_rows, measured_rows, calibrated_rows


def report(root: Path, cache: Path) -> dict:
    true_rows, measured_rows, calibrated_rows = clip_changes(root, cache)
    table = {}
    for key in MEDIAPIPE_GAINS:
        truth = np.array([row[key] for row in true_rows])
        measured = np.array([row[key] for row in measured_rows])
        calibrated = np.array([row[key] for row in calibrated_rows])
        true_words = [degree_level(v, key) for v in truth]
        table[key] = {
            "gain": best_gain(true_words, measured, key),
            "spread_ratio": round(float(measured.std() / truth.std()), 3),
            "correlation": round(float(np.corrcoef(truth, measured)[0, 1]), 3),
            "word_agreement_uncalibrated": _agreement(true_words, measured, key),
            "word_agreement_calibrated": _agreement(true_words, calibrated, key),
        }
    return {"synth": str(root), "cache": str(cache), "clips": len(true_rows), "measures": table}


def best_gain(true_words: list[int], measured: np.ndarray, key: str) -> float:
    """The gain of the grid whose calibrated words agree most with the true ones (the one
    nearest 1 among ties)."""
    grid = np.round(np.exp(np.linspace(np.log(0.25), np.log(4.0), 49)), 3)
    scores = [(_agreement(true_words, measured / g, key), -abs(np.log(g)), g) for g in grid]
    return float(max(scores)[2])


def _agreement(true_words: list[int], values: np.ndarray, key: str) -> float:
    words = [degree_level(v, key) for v in values]
    return round(float(np.mean([a == b for a, b in zip(true_words, words, strict=True)])), 3)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("synth", type=Path, help="a SynthDFER folder")
    parser.add_argument("cache", type=Path, help="its `finecliper prepare faces` cache")
    args = parser.parse_args(argv)
    print(json.dumps(report(args.synth, args.cache), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
