"""``finecliper data check``: the summary, the text report and the CLI's JSON and exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fixtures import build_dfew, build_ferv39k, build_mafw, write_csv, write_frames

from finecliper.cli import main
from finecliper.data import official
from finecliper.data.check import format_report, summarize
from finecliper.data.classes import DFEW_CLASSES, MAFW_CLASSES
from finecliper.data.official import count_differences
from finecliper.data.readers import read_dataset
from finecliper.data.records import ClipRecord, DatasetIndex

FOLD_SPLITS = [f"fold{k}/{s}" for k in range(1, 6) for s in ("train", "test")]


@pytest.fixture(scope="module")
def dfew_tree(tmp_path_factory):
    return build_dfew(tmp_path_factory.mktemp("dfew"))


def run_check(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["data", "check", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_shape_and_counts_for_dfew(capsys, dfew_tree):
    code, out, _ = run_check(capsys, "dfew", str(dfew_tree.root), "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["dataset"] == "dfew"
    assert summary["source"] == "clip_224x224"
    assert list(summary["splits"]) == FOLD_SPLITS
    assert summary["problems"] == []
    for name, split in summary["splits"].items():
        expected = dfew_tree.split_clips(name)
        assert split["clips"] == len(expected)
        assert list(split["label_counts"]) == list(DFEW_CLASSES)
        assert split["label_counts"] == {c: dfew_tree.label_counts(name)[c] for c in DFEW_CLASSES}
        assert split["short_clips"] == sum(1 for c in expected if c.frames < 16)
        frames = sorted(c.frames for c in expected)
        assert (split["frames"]["min"], split["frames"]["max"]) == (frames[0], frames[-1])


def test_json_lists_problems_and_keeps_broken_clips(capsys, dfew_tree, tmp_path):
    root = tmp_path / "dfew"
    shutil.copytree(dfew_tree.root, root)
    missing = dfew_tree.split_clips("fold1/test")[0].clip_id
    shutil.rmtree(root / "Clip" / "clip_224x224" / missing)
    code, out, _ = run_check(capsys, "dfew", str(root), "--fold", "1", "--json")
    assert code == 0
    summary = json.loads(out)
    assert list(summary["splits"]) == ["fold1/train", "fold1/test"]
    test = summary["splits"]["fold1/test"]
    assert test["clips"] == len(dfew_tree.split_clips("fold1/test"))
    assert test["unreadable_clips"] == 1
    [problem] = summary["problems"]
    assert problem["path"] == str(root / "Clip" / "clip_224x224" / missing)
    assert problem["problem"].startswith("missing clip")


def test_text_report_shows_splits_labels_and_problems(capsys, tmp_path):
    tree = build_mafw(tmp_path / "mafw")
    empty = tree.split_clips("fold2/test")[0].clip_id
    shutil.rmtree(tree.root / "data/frames/frames_crop_align_224" / empty)
    (tree.root / "data/frames/frames_crop_align_224" / empty).mkdir()
    code, out, _ = run_check(capsys, "mafw", str(tree.root), "--fold", "2")
    assert code == 0
    assert "fold2/train" in out and "fold2/test" in out
    for name in MAFW_CLASSES:
        assert any(line.split()[:1] == [name] for line in out.splitlines()), name
    assert "problems: 1" in out
    assert f"{empty}: empty clip folder" in out


def test_wrong_layout_exits_2_with_a_message(capsys, dfew_tree):
    code, out, err = run_check(capsys, "ferv39k", str(dfew_tree.root), "--json")
    assert code == 2
    assert out == ""
    assert "not a FERV39k root" in err
    code, _, err = run_check(capsys, "mafw", str(dfew_tree.root / "nowhere"))
    assert code == 2
    assert "no such file or folder" in err


def test_zero_indexed_dfew_exits_2(capsys, tmp_path):
    build_dfew(tmp_path / "dfew0", zero_indexed=True)
    code, _, err = run_check(capsys, "dfew", str(tmp_path / "dfew0"))
    assert code == 2
    assert "0-indexed" in err


def test_option_of_another_dataset_is_refused(capsys, dfew_tree):
    code, _, err = run_check(capsys, "dfew", str(dfew_tree.root), "--mafw-source", "video")
    assert code == 2
    assert "mafw_source" in err


def test_custom_manifest_check(capsys, tmp_path):
    write_frames(tmp_path / "a", 20)
    write_frames(tmp_path / "b", 9)
    rows = [["a", "calm", "train"], ["b", "tense", "test"], ["c", "calm", "test"]]
    write_csv(tmp_path / "clips.csv", ["path", "label", "split"], rows)
    code, out, _ = run_check(capsys, "custom", str(tmp_path / "clips.csv"), "--deep", "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["splits"]["test"]["label_counts"] == {"calm": 1, "tense": 1}
    assert summary["splits"]["test"]["short_clips"] == 1
    assert [p["path"] for p in summary["problems"]] == [str(tmp_path / "c")]


def test_ferv39k_json(capsys, tmp_path):
    tree = build_ferv39k(tmp_path / "ferv39k")
    code, out, _ = run_check(capsys, "ferv39k", str(tree.root), "--json")
    assert code == 0
    splits = json.loads(out)["splits"]
    assert list(splits) == ["train", "test"]
    assert splits["test"]["short_clips"] == sum(
        1 for c in tree.split_clips("test") if c.frames < 16
    )


def _index_with(dataset: str, split: str, frame_counts: list[int]) -> DatasetIndex:
    records = [
        ClipRecord(f"{i:05d}", Path(f"{i:05d}"), i % 7, split.rpartition("/")[2], frames)
        for i, frames in enumerate(frame_counts)
    ]
    return DatasetIndex(dataset, Path("/data"), DFEW_CLASSES, {split: records})


def test_summary_frame_statistics_leave_out_unreadable_clips():
    summary = summarize(_index_with("custom", "test", [0, 5, 20, 30, 15]))
    split = summary["splits"]["test"]
    assert split["clips"] == 5
    assert split["short_clips"] == 2
    assert split["unreadable_clips"] == 1
    assert split["frames"] == {"min": 5, "median": 17.5, "max": 30, "mean": 17.5}
    assert split["label_counts"] == {
        "Happy": 1,
        "Sad": 1,
        "Neutral": 1,
        "Angry": 1,
        "Surprise": 1,
        "Disgust": 0,
        "Fear": 0,
    }
    assert "5/17.5/17.5/30" in format_report(summary)


def test_count_differences_only_for_nearly_complete_splits():
    [note] = count_differences(_index_with("dfew", "fold1/test", [20] * 2339))
    assert note.problem == "fold1/test: 2339 clips, official 2341"
    assert count_differences(_index_with("dfew", "fold1/test", [20] * 2341)) == []
    assert count_differences(_index_with("dfew", "fold1/test", [20] * 200)) == []
    assert count_differences(_index_with("custom", "test", [20] * 2339)) == []


def test_readers_report_count_differences(monkeypatch, dfew_tree):
    # Treat the small fixture as "complete" so its split sizes are compared with the official.
    monkeypatch.setattr(official, "COMPLETE_FRACTION", 0.0)
    index = read_dataset("dfew", dfew_tree.root, fold=1)
    test_size = len(dfew_tree.split_clips("fold1/test"))
    notes = {p.problem for p in index.problems if p.path == str(dfew_tree.root)}
    assert f"fold1/test: {test_size} clips, official 2341" in notes
