"""SynthDFER: determinism, balance, exact landmarks, parsing, emotion-free text, reader, CLI."""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from finecliper.cli import main
from finecliper.data.synth import CLASSES, generate_synth, read_synth
from finecliper.data.synth import describe as describe_module
from finecliper.data.synth.generate import assign_folds, assign_labels
from finecliper.errors import FineCLIPERError, InputError, LayoutError
from finecliper.face.schema import LANDMARK_GROUPS, PARSING_INDEX
from finecliper.text.lexicon import find_emotion_words

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CLIPS, FRAMES, SIZE, SEED = 14, 8, 64, 3
P = PARSING_INDEX


def _generate(out: Path, workers: int, seed: int = SEED):
    return generate_synth(
        out, clips=CLIPS, seed=seed, size=SIZE, frames=FRAMES, workers=workers, progress=False
    )


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    result = _generate(out, workers=1)
    assert (result.clips, result.frames, result.rendered) == (CLIPS, FRAMES, CLIPS)
    return out


def _clip_dirs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "clips").iterdir() if p.is_dir())


def _all_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _manifest(root: Path) -> list[dict[str, str]]:
    with (root / "manifest.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _clip_data(clip: Path):
    landmarks = np.load(clip / "landmarks.npy")
    with np.load(clip / "parsing.npz") as archive:
        maps = archive["maps"]
    params = json.loads((clip / "params.json").read_text(encoding="utf-8"))
    return landmarks, maps, params


# --- layout, determinism --------------------------------------------------------------------


def test_layout_and_shapes(synth: Path):
    assert (synth / "classes.txt").read_text().split() == list(CLASSES)
    meta = json.loads((synth / "meta.json").read_text())
    assert meta["complete"] and (meta["seed"], meta["clips"], meta["size"]) == (SEED, CLIPS, SIZE)
    clips = _clip_dirs(synth)
    assert len(clips) == CLIPS
    for clip in clips:
        frames = sorted((clip / "frames").glob("*.jpg"))
        assert [f.name for f in frames] == [f"{t:05d}.jpg" for t in range(FRAMES)]
        assert Image.open(frames[0]).size == (SIZE, SIZE)
        landmarks, maps, params = _clip_data(clip)
        assert landmarks.dtype == np.float32 and landmarks.shape == (FRAMES, 68, 2)
        assert maps.dtype == np.uint8 and maps.shape == (FRAMES, SIZE, SIZE)
        assert np.array(params["au"]).shape == (FRAMES, len(params["au_names"]))
    assert not list((synth / "clips").glob(".tmp-*"))


def test_same_seed_same_bytes_for_any_worker_count(synth: Path, tmp_path: Path):
    again = tmp_path / "again"
    _generate(again, workers=2)
    assert _all_bytes(again) == _all_bytes(synth)
    other = tmp_path / "other"
    _generate(other, workers=1, seed=SEED + 1)
    assert (other / "descriptions.jsonl").read_bytes() != (
        synth / "descriptions.jsonl"
    ).read_bytes()
    first = "clips/synth_00000/landmarks.npy"
    assert (other / first).read_bytes() != (synth / first).read_bytes()


def test_rerun_keeps_finished_clips_and_refuses_foreign_folders(synth: Path, tmp_path: Path):
    copy = tmp_path / "copy"
    shutil.copytree(synth, copy)
    (copy / "manifest.csv").unlink()  # as if interrupted before the end
    shutil.rmtree(copy / "clips" / "synth_00004")
    result = _generate(copy, workers=1)
    assert result.rendered == 1
    assert _all_bytes(copy) == _all_bytes(synth)
    with pytest.raises(FineCLIPERError, match="other settings"):
        generate_synth(copy, clips=CLIPS + 7, seed=SEED, size=SIZE, frames=FRAMES, progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FineCLIPERError, match="not a SynthDFER folder"):
        _generate(foreign, workers=1)


# --- balance and folds ----------------------------------------------------------------------


@pytest.mark.parametrize("clips", [14, 23, 700])
def test_labels_balanced_and_folds_stratified(clips: int):
    labels = assign_labels(clips, seed=0)
    folds = assign_folds(labels, seed=0)
    counts = np.bincount(labels, minlength=len(CLASSES))
    assert counts.max() - counts.min() <= 1
    per_fold = np.bincount(folds, minlength=6)[1:]
    assert per_fold.max() - per_fold.min() <= 1
    for label in range(len(CLASSES)):
        spread = np.bincount(folds[labels == label], minlength=6)[1:]
        assert spread.max() - spread.min() <= 1


def test_manifest_puts_each_clip_in_one_test_fold(synth: Path):
    rows = _manifest(synth)
    assert len(rows) == 5 * CLIPS
    by_clip: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        by_clip.setdefault(row["path"], []).append((row["fold"], row["split"]))
    assert len(by_clip) == CLIPS
    for entries in by_clip.values():
        assert sorted(fold for fold, _ in entries) == ["1", "2", "3", "4", "5"]
        assert Counter(split for _, split in entries) == {"test": 1, "train": 4}
    labels = Counter(row["label"] for row in rows if row["fold"] == "1")
    assert set(labels) == set(CLASSES) and set(labels.values()) == {2}


# --- landmarks and parsing are the drawn features --------------------------------------------

EXPECTED_PARSING = {
    "right_brow": {P["right_brow"]},
    "left_brow": {P["left_brow"]},
    "nose": {P["nose"]},
    "right_eye": {P["right_eye"]},
    "left_eye": {P["left_eye"]},
    "outer_lips": {P["upper_lip"], P["lower_lip"]},
    "inner_lips": {P["upper_lip"], P["lower_lip"], P["inner_mouth"]},
}


def _near(maps: np.ndarray, x: float, y: float, radius: int) -> set[int]:
    xi, yi = round(x), round(y)
    window = maps[max(yi - radius, 0) : yi + radius + 1, max(xi - radius, 0) : xi + radius + 1]
    return set(np.unique(window).tolist())


def _inside(x: float, y: float, margin: int) -> bool:
    return margin <= round(x) < SIZE - margin and margin <= round(y) < SIZE - margin


def test_landmarks_lie_on_their_parsing_regions(synth: Path):
    checked = 0
    for clip in _clip_dirs(synth):
        landmarks, maps, _ = _clip_data(clip)
        for t in range(FRAMES):
            for group, classes in EXPECTED_PARSING.items():
                for index in LANDMARK_GROUPS[group]:
                    near = _near(maps[t], *landmarks[t, index], radius=1)
                    assert near & classes, (clip.name, t, index, near)
                    checked += 1
            for index in LANDMARK_GROUPS["jaw"]:  # on the face outline, unless out of the frame
                if not _inside(*landmarks[t, index], margin=2):
                    continue
                checked += 1
                near = _near(maps[t], *landmarks[t, index], radius=2)
                assert P["skin"] in near, (clip.name, t, index, near)
                if 4 <= index <= 12:  # below the ears (skin too): the outline meets non-skin
                    assert near - {P["skin"]}, (clip.name, t, index, near)
    assert checked > 0.95 * CLIPS * FRAMES * 68


def test_parsing_regions_sit_where_the_landmarks_are(synth: Path):
    for clip in _clip_dirs(synth):
        landmarks, maps, params = _clip_data(clip)
        for t in range(FRAMES):
            present = set(np.unique(maps[t]).tolist())
            face_parts = {"background", "skin", "nose", "upper_lip", "lower_lip"}
            assert {P[name] for name in face_parts} <= present
            assert (P["hair"] in present) == (params["identity"]["hair_style"] != "none")
            for group in ("right_eye", "left_eye", "right_brow", "left_brow", "nose"):
                (cls,) = EXPECTED_PARSING[group]
                ys, xs = np.nonzero(maps[t] == cls)
                centre = landmarks[t, list(LANDMARK_GROUPS[group])].mean(axis=0)
                assert np.hypot(xs.mean() - centre[0], ys.mean() - centre[1]) < 3.0


def test_frame_pixels_show_brows_and_lash_lines_at_their_landmarks(synth: Path):
    for clip in _clip_dirs(synth):
        landmarks, maps, _ = _clip_data(clip)
        t = FRAMES - 1
        frame = np.asarray(Image.open(clip / "frames" / f"{t:05d}.jpg"), np.float32)
        skin = np.median(frame[maps[t] == P["skin"]], axis=0)
        points = landmarks[t, [*range(17, 27), 37, 38, 43, 44]]  # brows, upper lid lash lines
        colours = np.array([frame[round(y), round(x)] for x, y in points])
        cheeks = landmarks[t, [2, 14]] * 0.65 + landmarks[t, [31, 35]] * 0.35
        cheek_colours = np.array([frame[round(y), round(x)] for x, y in cheeks])
        feature_gap = np.abs(colours - skin).sum(axis=1).mean()
        cheek_gap = np.abs(cheek_colours - skin).sum(axis=1).mean()
        assert feature_gap > 40 and feature_gap > 2 * cheek_gap, (clip.name, feature_gap, cheek_gap)


def test_expressions_unfold_from_neutral_to_apex(synth: Path):
    rows = {}
    for clip in _clip_dirs(synth):
        _, _, params = _clip_data(clip)
        au = np.array(params["au"])
        rows[clip.name] = params
        assert au.min() >= 0 and au.max() <= 1
        if params["label"] != "Neutral" and params["kind"] == "normal":
            assert au[0].max() < 0.2 and au[-1].max() > 0.4, clip.name
            assert 0 <= params["onset_frame"] < params["apex_frame"] <= FRAMES - 1
    assert {p["label"] for p in rows.values()} == set(CLASSES)


# --- descriptions ---------------------------------------------------------------------------


def test_lexicon_finds_emotion_words_only():
    text = "Happily, he looks SURPRISED and mad; she made a smile and a frown, not sad-looking."
    assert find_emotion_words(text) == ["happily", "surprised", "mad", "sad"]
    assert find_emotion_words("The brows lower and the lips press together.") == []


def test_descriptions_name_movements_and_no_emotion(synth: Path):
    lines = [json.loads(line) for line in (synth / "descriptions.jsonl").read_text().splitlines()]
    assert [line["clip_id"] for line in lines] == [clip.name for clip in _clip_dirs(synth)]
    for line in lines:
        assert find_emotion_words(line["text"]) == [], line
        params = json.loads((synth / "clips" / line["clip_id"] / "params.json").read_text())
        assert line["label"] == params["label"] and line["text"] == params["description"]
    assert len({line["text"] for line in lines}) == len(lines)


def test_every_description_phrase_is_emotion_free():
    phrases = [p for options in describe_module.CLAUSES.values() for p in options]
    for _, options in describe_module.ADVERBS + describe_module.WHEN:
        phrases += options
    for table in (describe_module.BLINKS, describe_module.DISTRACTORS, describe_module.PACE):
        phrases += [p for options in table.values() for p in options]
    phrases += [*describe_module.OPENERS, *describe_module.STILL]
    phrases += [*describe_module.RELAXES, *describe_module.HOLDS]
    assert [p for p in phrases if find_emotion_words(p)] == []


# --- reader and CLI -------------------------------------------------------------------------


def test_read_synth_uses_clip_ids_and_folds(synth: Path):
    index = read_synth(synth, fold=2)
    assert index.dataset == "synth" and index.classes == CLASSES
    assert set(index.splits) == {"fold2/train", "fold2/test"}
    records = index.splits["fold2/train"] + index.splits["fold2/test"]
    assert sorted(r.clip_id for r in records) == [clip.name for clip in _clip_dirs(synth)]
    assert all(r.num_frames == FRAMES and r.path.name == "frames" for r in records)
    assert index.problems == []


def test_data_check_cli_counts(synth: Path, capsys):
    assert main(["data", "check", "synth", str(synth), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["problems"] == []
    tests = [summary["splits"][f"fold{k}/test"]["clips"] for k in range(1, 6)]
    trains = [summary["splits"][f"fold{k}/train"]["clips"] for k in range(1, 6)]
    assert (
        sum(tests) == CLIPS and [a + b for a, b in zip(tests, trains, strict=True)] == [CLIPS] * 5
    )
    counts = summary["splits"]["fold1/train"]["label_counts"]
    test_counts = summary["splits"]["fold1/test"]["label_counts"]
    assert {name: counts[name] + test_counts[name] for name in CLASSES} == dict.fromkeys(CLASSES, 2)


def test_layout_errors_name_what_is_missing(synth: Path, tmp_path: Path, capsys):
    (tmp_path / "stuff.txt").write_text("not a dataset")
    with pytest.raises(LayoutError, match=r"meta\.json"):
        read_synth(tmp_path)
    assert main(["data", "check", "synth", str(tmp_path)]) == 2
    assert "meta.json" in capsys.readouterr().err
    partial = tmp_path / "partial"
    shutil.copytree(synth, partial)
    (partial / "manifest.csv").unlink()
    with pytest.raises(LayoutError, match=r"manifest\.csv"):
        read_synth(partial)


def test_synth_cli_prints_json_summary(tmp_path: Path, capsys):
    out = tmp_path / "cli"
    argv = ["synth", str(out), "--clips", "7", "--seed", "1", "--size", "48", "--frames", "4"]
    assert main([*argv, "--workers", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["clips"], summary["frames"], summary["size"]) == (7, 4, 48)
    assert summary["seconds"] > 0
    assert main(["synth", str(tmp_path / "bad"), "--clips", "3"]) != 0


# The third clip's arrays, or descriptions.jsonl after classes.txt was written.
@pytest.mark.parametrize(("failing", "nth"), [("write_arrays", 3), ("write_text", 2)])
def test_disk_full_leaves_no_temporary_folder_and_is_one_line(
    tmp_path: Path, capsys, monkeypatch, failing: str, nth: int
):
    from finecliper.data.synth import generate

    real = getattr(generate, failing)
    calls = []

    def fill_the_disk(*args, **kwargs):
        calls.append(args)
        if len(calls) == nth:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(generate, failing, fill_the_disk)
    out = tmp_path / "full"
    argv = ["synth", str(out), "--clips", "6", "--size", "32", "--frames", "2", "--workers", "1"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    # The progress bar precedes it; the error itself is one line.
    [line] = [line for line in err.splitlines() if "error" in line]
    assert "Traceback" not in err
    assert line.startswith(f"finecliper: error: synth: writing {out} failed (No space left")
    assert not list((out / "clips").glob(".tmp-*"))
    assert not list(out.glob(".*.tmp"))
    monkeypatch.setattr(generate, failing, real)
    assert main(argv) == 0  # the rerun resumes and completes
    assert read_synth(out).problems == []


def test_bad_utf8_in_synth_index_files_names_file_and_line(synth: Path, tmp_path: Path):
    copy = tmp_path / "copy"
    shutil.copytree(synth, copy)
    classes = copy / "classes.txt"
    classes.write_bytes(classes.read_bytes().replace(b"Sad", b"S\xe4d"))
    line = CLASSES.index("Sad") + 1
    with pytest.raises(InputError, match=f"classes.txt:{line}: not valid utf-8 text"):
        read_synth(copy)


def test_synth_manifest_fold_beyond_five_is_a_problem(synth: Path, tmp_path: Path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(synth, copy)
    manifest = copy / "manifest.csv"
    lines = manifest.read_text().splitlines()
    lines.append(lines[-1].rsplit(",", 1)[0] + ",6")
    manifest.write_text("\n".join(lines) + "\n")
    assert main(["data", "check", "synth", str(copy), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    [problem] = summary["problems"]
    assert problem["path"] == f"{manifest}:{len(lines)}"
    assert problem["problem"].startswith("fold 6 out of range 1..5")
    assert "fold6/train" not in summary["splits"] and "fold6/test" not in summary["splits"]
