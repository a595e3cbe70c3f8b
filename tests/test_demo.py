"""The main job at a small size: generation, the dataset check, the parameter budget."""

from __future__ import annotations

import json

from finecliper.cli import main


def test_demo_runs_and_prints_its_json(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--clips", "14", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["clips"] == 14
    assert summary["problems"] == 0
    assert summary["tunable_params"] == 21_073_409  # FineCLIPER*† at ViT-B/16
    report = json.loads((out / "demo.json").read_text())
    assert report["check"]["dataset"] == "synth"
    splits = report["check"]["splits"]
    assert splits["fold1/train"]["clips"] + splits["fold1/test"]["clips"] == 14
