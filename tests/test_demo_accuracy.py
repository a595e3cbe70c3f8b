"""`finecliper demo` at full size, run as a new user runs it: its accuracy floor.

The demo's inputs are measured by the pipeline (MediaPipe landmarks and parsing, template text from
them), so its accuracy is that of the method on real inputs, not of text from true landmarks:
UAR/WAR 0.750 on 2026-12-06 with change tokens in the temporal module (0.764 without them, with the
third-stage backbone; 0.729 before it, with template version 2; 0.707 with version 1; 0.564 with
the first-stage backbone and T = 1; the oracle-text demo before gave 0.850). The floor below is
that figure less a margin for library differences; issue #13 asks for 0.80, which this backbone
does not reach (README, "Results on SynthDFER"). About three minutes on two idle cores. Its speed
is not asserted here (it is measured by the demo itself, `seconds` in its JSON, and recorded in
docs/benchmarks.md); its accuracy is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_full_demo_reaches_the_accuracy_target(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "finecliper", "demo", "--out", str(tmp_path), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["variant"] == "full"
    assert summary["uar"] >= 0.72 and summary["war"] >= 0.72, summary
    assert summary["faces_cache"] == str(tmp_path / "faces")  # inputs from the pipeline
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test_clips"] == metrics["evaluated_clips"] == 140
    assert metrics["headline"] == "best_val"  # chosen on validation, never on the test split
