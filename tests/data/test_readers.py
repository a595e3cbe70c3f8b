"""Dataset readers on small trees in the official layouts, traps included."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures import (
    CAPTION_ZH,
    MAFW_CLIPS,
    MAFW_FRAMES,
    build_dfew,
    build_ferv39k,
    build_mafw,
    dfew_list,
    image_bytes,
    mafw_list,
    write_csv,
    write_ferv39k_list,
    write_frames,
    write_video,
)

from finecliper.data.classes import (
    DFEW_CLASSES,
    MAFW_CLASSES,
    class_order,
    mapping_table,
    order_mapping,
    remap_labels,
    remap_probabilities,
)
from finecliper.data.official import official_split_counts, reference_rows
from finecliper.data.readers import read_custom, read_dataset
from finecliper.data.records import DatasetIndex
from finecliper.errors import ConfigError, InputError, LayoutError

FOLD_SPLITS = [f"fold{k}/{s}" for k in range(1, 6) for s in ("train", "test")]


def label_counts(index: DatasetIndex, split: str) -> Counter[str]:
    return Counter(index.classes[r.label] for r in index.splits[split])


def problems_of(index: DatasetIndex) -> dict[str, str]:
    return {p.path: p.problem for p in index.problems}


@pytest.fixture(scope="module")
def dfew_tree(tmp_path_factory):
    return build_dfew(tmp_path_factory.mktemp("dfew"))


@pytest.fixture
def dfew_copy(dfew_tree, tmp_path):
    """A private copy of the DFEW tree that a test may damage."""
    shutil.copytree(dfew_tree.root, tmp_path / "dfew")
    return tmp_path / "dfew"


@pytest.fixture(scope="module")
def mafw_tree(tmp_path_factory):
    return build_mafw(tmp_path_factory.mktemp("mafw"))


@pytest.fixture(scope="module")
def ferv39k_tree(tmp_path_factory):
    return build_ferv39k(tmp_path_factory.mktemp("ferv39k"))


# --- class orders -------------------------------------------------------------------------


def test_mafw_orders_map_to_the_canonical_one_and_back():
    to_canonical = mapping_table("mafw", "dfew_like", "canonical")
    dfew_like = class_order("mafw", "dfew_like")
    for index, name in enumerate(dfew_like):
        assert MAFW_CLASSES[to_canonical[index]] == name
    back = mapping_table("mafw", "canonical", "dfew_like")
    labels = np.arange(11)
    assert np.array_equal(remap_labels(remap_labels(labels, to_canonical), back), labels)
    # happiness is 0 in the DFEW-like order, 3 canonically; contempt stays at 7.
    assert remap_labels(0, to_canonical) == 3
    assert remap_labels(7, to_canonical) == 7


def test_ferv39k_alphabetical_probabilities_reorder_to_canonical():
    alphabetical = class_order("ferv39k", "alphabetical")
    assert alphabetical[0] == "Angry"
    mapping = mapping_table("ferv39k", "alphabetical", "canonical")
    scores = torch.eye(7)[[alphabetical.index("Fear"), alphabetical.index("Happy")]]
    remapped = remap_probabilities(scores, mapping)
    assert remapped.argmax(dim=1).tolist() == [DFEW_CLASSES.index("Fear"), 0]
    as_numpy = remap_probabilities(scores.numpy(), mapping)
    assert np.array_equal(as_numpy, remapped.numpy())


def test_order_mapping_matches_across_spellings_and_rejects_other_sets():
    # DFEW adjectives and MAFW nouns name the same seven emotions.
    mapping = order_mapping(DFEW_CLASSES, MAFW_CLASSES[:7])
    assert [MAFW_CLASSES[i] for i in mapping][:4] == ["happiness", "sadness", "neutral", "anger"]
    with pytest.raises(ConfigError, match="contempt"):
        order_mapping(MAFW_CLASSES, DFEW_CLASSES)
    with pytest.raises(ConfigError, match=r"0\.\.6"):
        remap_labels([7], mapping)
    with pytest.raises(ConfigError, match="unknown class order"):
        class_order("dfew", "dfew_like")


def test_official_counts_come_from_the_packaged_lists():
    dfew = official_split_counts("dfew")
    assert [dfew[f"fold{k}/test"] for k in range(1, 6)] == [2341, 2341, 2340, 2339, 2336]
    assert dfew["fold1/train"] == 9356
    assert official_split_counts("ferv39k") == {"train": 31088, "test": 7847}
    assert sum(official_split_counts("mafw")[f"fold{k}/test"] for k in range(1, 6)) == 9172
    assert {row["label"] for row in reference_rows("mafw")} == set(MAFW_CLASSES)


# --- DFEW -------------------------------------------------------------------------------------


def test_dfew_counts_labels_and_frames_per_fold(dfew_tree):
    index = read_dataset("dfew", dfew_tree.root)
    assert list(index.splits) == FOLD_SPLITS
    assert index.source == "clip_224x224"
    assert index.classes == DFEW_CLASSES
    for split in FOLD_SPLITS:
        assert label_counts(index, split) == dfew_tree.label_counts(split), split
        for record in index.splits[split]:
            assert record.num_frames == dfew_tree.clip(record.clip_id).frames
            assert record.path == dfew_tree.root / "Clip" / "clip_224x224" / record.clip_id
    assert index.problems == []
    short = [c for c in dfew_tree.clips if c.frames < 16]
    assert len(short) == 1
    # The short clip is kept in its test split (never dropped).
    test_ids = {r.clip_id for r in index.splits[f"fold{short[0].group}/test"]}
    assert short[0].clip_id in test_ids


def test_dfew_16f_folder_is_explicit_and_recorded(dfew_tree):
    index = read_dataset("dfew", dfew_tree.root, fold=2, dfew_frames="clip_224x224_16f")
    assert list(index.splits) == ["fold2/train", "fold2/test"]
    assert index.source == "clip_224x224_16f"
    assert {r.num_frames for r in index.splits["fold2/train"]} == {16}
    assert label_counts(index, "fold2/test") == dfew_tree.label_counts("fold2/test")


def test_dfew_without_the_chosen_frame_folder_points_to_the_other(dfew_copy):
    shutil.rmtree(dfew_copy / "Clip" / "clip_224x224_16f")
    with pytest.raises(LayoutError, match="clip_224x224_16f") as error:
        read_dataset("dfew", dfew_copy, dfew_frames="clip_224x224_16f")
    assert "--dfew-frames clip_224x224" in str(error.value)


def test_dfew_zero_indexed_copy_is_refused(tmp_path):
    root = tmp_path / "dfew0"
    build_dfew(root, zero_indexed=True)
    with pytest.raises(LayoutError, match="0-indexed") as error:
        read_dataset("dfew", root, fold=3)
    assert str(dfew_list(root, 3, "test")) in str(error.value)


def test_dfew_label_out_of_range_is_a_problem_with_line(dfew_copy):
    csv_path = dfew_list(dfew_copy, 1, "test")
    with csv_path.open("a", encoding="utf-8") as handle:
        handle.write("99999,8\n")
    index = read_dataset("dfew", dfew_copy, fold=1)
    lines = len(csv_path.read_text().splitlines())
    assert problems_of(index)[f"{csv_path}:{lines}"] == "label 8 out of range 1..7"
    assert "99999" not in {r.clip_id for r in index.splits["fold1/test"]}


def test_dfew_missing_empty_and_corrupt_clips_stay_in_their_split(dfew_copy, dfew_tree):
    frames = dfew_copy / "Clip" / "clip_224x224"
    test_ids = [c.clip_id for c in dfew_tree.split_clips("fold4/test")]
    missing, empty, corrupt = test_ids
    shutil.rmtree(frames / missing)
    shutil.rmtree(frames / empty)
    (frames / empty).mkdir()
    last = frames / corrupt / f"{dfew_tree.clip(corrupt).frames}.jpg"
    last.write_bytes(b"not a jpeg")
    zero_byte = frames / corrupt / "2.jpg"
    zero_byte.write_bytes(b"")
    index = read_dataset("dfew", dfew_copy, fold=4)
    assert {r.clip_id for r in index.splits["fold4/test"]} == set(test_ids)
    found = problems_of(index)
    assert found[str(frames / missing)].startswith("missing clip")
    assert "set_4.csv" in found[str(frames / missing)]
    assert found[str(frames / empty)].startswith("empty clip folder")
    assert found[str(last)].startswith("unreadable frame")
    assert found[str(zero_byte)] == "empty frame file (0 bytes)"
    assert len(index.problems) == 4


def test_dfew_deep_check_finds_a_corrupt_middle_frame(dfew_copy, dfew_tree):
    clip = dfew_tree.split_clips("fold5/test")[0]
    middle = dfew_copy / "Clip" / "clip_224x224" / clip.clip_id / "3.jpg"
    middle.write_bytes(image_bytes("JPEG")[:40])
    assert read_dataset("dfew", dfew_copy, fold=5).problems == []
    deep = read_dataset("dfew", dfew_copy, fold=5, deep=True)
    assert [p.path for p in deep.problems] == [str(middle)]


def test_dfew_16f_clip_with_wrong_length_is_flagged(dfew_copy, dfew_tree):
    clip = dfew_tree.split_clips("fold1/test")[0]
    (dfew_copy / "Clip" / "clip_224x224_16f" / clip.clip_id / "16.jpg").unlink()
    index = read_dataset("dfew", dfew_copy, fold=1, dfew_frames="clip_224x224_16f")
    folder = str(dfew_copy / "Clip" / "clip_224x224_16f" / clip.clip_id)
    assert problems_of(index)[folder] == "15 frames in clip_224x224_16f (expected 16)"


def test_dfew_root_of_another_dataset_is_a_layout_error(ferv39k_tree):
    with pytest.raises(LayoutError, match="not a DFEW root"):
        read_dataset("dfew", ferv39k_tree.root)


# --- FERV39k ----------------------------------------------------------------------------------


def test_ferv39k_counts_and_labels(ferv39k_tree):
    index = read_dataset("ferv39k", ferv39k_tree.root)
    assert list(index.splits) == ["train", "test"]
    for split in ("train", "test"):
        assert label_counts(index, split) == ferv39k_tree.label_counts(split)
    short = [r for r in index.splits["test"] if r.num_frames < 16]
    assert [r.clip_id for r in short] == [c.clip_id for c in ferv39k_tree.clips if c.frames < 16]
    assert index.problems == []


def test_ferv39k_spelling_mismatch_and_unknown_labels(tmp_path):
    tree = build_ferv39k(tmp_path / "ferv39k")
    first, second, third, *rest = tree.split_clips("test")
    wrong = "Sad" if first.label != "Sad" else "Happy"
    lines = [
        f"{first.clip_id} {wrong}\n",
        f"{second.clip_id} {second.label.lower()}\n",
        f"{third.clip_id} Bored\n",
        *(f"{c.clip_id} {c.label}\n" for c in rest),
    ]
    list_path = write_ferv39k_list(tree.root, "test", lines)
    index = read_dataset("ferv39k", tree.root)
    found = problems_of(index)
    assert f"disagrees with the emotion folder '{first.label}'" in found[f"{list_path}:1"]
    assert found[f"{list_path}:3"].startswith("unknown label 'Bored'")
    assert len(found) == 2
    labels = {r.clip_id: index.classes[r.label] for r in index.splits["test"]}
    assert labels[first.clip_id] == wrong  # the list's annotation is kept, and reported
    assert labels[second.clip_id] == second.label
    assert third.clip_id not in labels


def test_ferv39k_has_no_folds(ferv39k_tree):
    with pytest.raises(ConfigError, match="fixed train/test split"):
        read_dataset("ferv39k", ferv39k_tree.root, fold=1)


# --- MAFW -------------------------------------------------------------------------------------


def test_mafw_frames_counts_and_labels(mafw_tree):
    index = read_dataset("mafw", mafw_tree.root)
    assert index.source == MAFW_FRAMES.as_posix()
    assert index.classes == MAFW_CLASSES
    for split in FOLD_SPLITS:
        assert label_counts(index, split) == mafw_tree.label_counts(split), split
    frames = {
        r.clip_id: r.num_frames for r in index.splits["fold1/train"] + index.splits["fold1/test"]
    }
    assert frames == {c.clip_id: c.frames for c in mafw_tree.clips}
    assert index.problems == []


def test_mafw_gbk_captions_are_decoded(mafw_tree):
    index = read_dataset("mafw", mafw_tree.root, fold=1, mafw_captions=True)
    records = index.splits["fold1/test"]
    assert records
    for record in records:
        assert record.caption == mafw_tree.captions[record.clip_id]
        assert record.caption.startswith(CAPTION_ZH)
    assert label_counts(index, "fold1/test") == mafw_tree.label_counts("fold1/test")


def test_mafw_undecodable_or_missing_caption_is_a_problem(tmp_path, mafw_tree):
    root = tmp_path / "mafw"
    shutil.copytree(mafw_tree.root, root)
    path = mafw_list(root, "with_caption", 2, "test")
    first, *rest = path.read_bytes().splitlines(keepends=True)
    uncaptioned = b"\t".join(first.split(b"\t")[:2]) + b"\r\n"
    broken = b"99999.mp4\tanger\t\xff\xfe broken\r\n"
    path.write_bytes(b"".join([uncaptioned, *rest, broken]))
    index = read_dataset("mafw", root, fold=2, mafw_captions=True)
    found = problems_of(index)
    assert found[f"{path}:1"] == "no caption after the clip and label"
    assert found[f"{path}:{len(rest) + 2}"].startswith("line is not valid gbk")
    assert len(found) == 2
    # The clip without caption stays in its split.
    assert label_counts(index, "fold2/test") == mafw_tree.label_counts("fold2/test")
    captions = [r.caption for r in index.splits["fold2/test"]]
    assert captions.count(None) == 1


def test_mafw_video_source_counts_frames_and_reports_unopenable_video(tmp_path):
    tree = build_mafw(tmp_path / "mafw", source="video", list_root="Train_Test_Set")
    broken = tree.split_clips("fold3/test")[0]
    video = tmp_path / "mafw" / MAFW_CLIPS / f"{broken.clip_id}.mp4"
    video.write_bytes(b"\x00" * 64)
    index = read_dataset("mafw", tree.root, fold=3, mafw_source="video")
    assert index.source == MAFW_CLIPS.as_posix()
    frames = {
        r.clip_id: r.num_frames for r in index.splits["fold3/train"] + index.splits["fold3/test"]
    }
    expected = {c.clip_id: c.frames for c in tree.clips}
    expected[broken.clip_id] = 0
    assert frames == expected
    assert problems_of(index)[str(video)].startswith("unreadable video")


def test_mafw_frames_missing_suggests_video_source(mafw_tree, tmp_path):
    root = tmp_path / "mafw"
    shutil.copytree(mafw_tree.root / "Train & Test Set", root / "Train & Test Set")
    with pytest.raises(LayoutError, match="--mafw-source video"):
        read_dataset("mafw", root)


# --- custom manifest --------------------------------------------------------------------------


def write_custom_clips(root: Path) -> None:
    write_frames(root / "clips" / "a", 20)
    write_frames(root / "clips" / "b", 12, ".png")
    write_video(root / "clips" / "c.mkv", 18)  # Matroska: no frame count in the header
    write_frames(root.parent / "outside" / "d", 17)


def test_custom_manifest_with_classes_file(tmp_path):
    root = tmp_path / "mine"
    write_custom_clips(root)
    (root / "classes.txt").write_text("sad\nhappy\nbored\n")
    rows = [
        ["clips/a", "happy", "train"],
        ["clips/b", "sad", "test"],
        ["clips/c.mkv", "happy", "test"],
        ["../outside/d", "bored", "val"],
    ]
    write_csv(root / "manifest.csv", ["path", "label", "split"], rows)
    index = read_dataset("custom", root / "manifest.csv")
    assert index.classes == ("sad", "happy", "bored")
    assert list(index.splits) == ["train", "test", "val"]
    assert {r.clip_id: (r.label, r.num_frames) for r in index.splits["test"]} == {
        "clips/b": (0, 12),
        "clips/c.mkv": (1, 18),
    }
    assert index.splits["val"][0].path == root / "../outside/d"
    assert index.problems == []


def test_custom_manifest_folds_and_sorted_classes(tmp_path):
    root = tmp_path / "mine"
    write_custom_clips(root)
    rows = [
        ["clips/a", "happy", "train", 1],
        ["clips/b", "sad", "test", 1],
        ["clips/a", "happy", "test", 2],
        ["clips/b", "sad", "train", 2],
    ]
    write_csv(root / "m.csv", ["path", "label", "split", "fold"], rows)
    index = read_custom(root / "m.csv")
    assert index.classes == ("happy", "sad")
    assert list(index.splits) == ["fold1/train", "fold1/test", "fold2/train", "fold2/test"]
    assert [r.clip_id for r in index.splits["fold2/test"]] == ["clips/a"]
    assert index.splits["fold2/test"][0].fold == 2
    only = read_custom(root / "m.csv", fold=2)
    assert list(only.splits) == ["fold2/train", "fold2/test"]
    with pytest.raises(ConfigError, match="no rows for fold 3"):
        read_custom(root / "m.csv", fold=3)


def test_custom_manifest_row_problems_name_the_line(tmp_path):
    root = tmp_path / "mine"
    write_custom_clips(root)
    (root / "classes.txt").write_text("happy\nsad\n")
    rows = [
        ["clips/a", "happy", "train"],  # line 2
        ["clips/b", "", "test"],  # 3: missing label
        ["clips/b", "sad", "holdout"],  # 4: unknown split
        ["clips/b", "angry", "test"],  # 5: label not in classes.txt
        ["clips/nothing", "sad", "test"],  # 6: no such clip
        ["clips/a", "happy", "test"],  # 7: also in train
        ["clips/a", "happy", "train"],  # 8: twice in train
    ]
    manifest = root / "manifest.csv"
    write_csv(manifest, ["path", "label", "split"], rows)
    index = read_custom(manifest)
    found = problems_of(index)
    assert found[f"{manifest}:3"] == "missing value in column(s) label"
    assert found[f"{manifest}:4"].startswith("unknown split 'holdout'")
    assert found[f"{manifest}:5"].startswith("unknown label 'angry'")
    missing = found[str(root / "clips" / "nothing")]
    assert missing.startswith("missing clip") and f"{manifest}:6" in missing
    problems_of_a = sorted(p.problem for p in index.problems if p.path == str(root / "clips/a"))
    assert problems_of_a == [
        "listed in both train and test",
        f"listed twice in train (again at {manifest}:8)",
    ]
    assert len(index.splits["train"]) == 1
    # The missing clip stays in the test split.
    assert [r.clip_id for r in index.splits["test"]] == ["clips/nothing", "clips/a"]


def test_custom_manifest_layout_and_option_errors(tmp_path):
    manifest = tmp_path / "m.csv"
    write_csv(manifest, ["file", "label"], [["x", "y"]])
    with pytest.raises(LayoutError, match="missing column"):
        read_custom(manifest)
    with pytest.raises(LayoutError, match="no such manifest"):
        read_custom(tmp_path / "absent.csv")
    write_csv(manifest, ["path", "label", "split"], [])
    with pytest.raises(ConfigError, match="no fold column"):
        read_custom(manifest, fold=1)
    (tmp_path / "classes.txt").write_text("calm\ntense\ncalm\n")
    with pytest.raises(ConfigError, match="duplicate classes"):
        read_custom(manifest)


def test_custom_manifest_out_of_range_folds_are_problems_not_new_folds(tmp_path):
    root = tmp_path / "mine"
    write_custom_clips(root)
    rows = [["clips/a", "happy", "train", k] for k in range(1, 6)]
    rows += [["clips/b", "sad", "test", k] for k in range(1, 6)]
    rows += [["clips/b", "sad", "test", 99], ["clips/a", "happy", "test", 0]]
    rows += [["clips/a", "happy", "test", -2]]
    manifest = root / "m.csv"
    write_csv(manifest, ["path", "label", "split", "fold"], rows)
    index = read_custom(manifest)
    found = problems_of(index)
    assert found[f"{manifest}:12"].startswith("fold 99 out of range 1..5")
    assert found[f"{manifest}:13"] == "fold must be a positive integer, found '0'"
    assert found[f"{manifest}:14"] == "fold must be a positive integer, found '-2'"
    assert not any("99" in name for name in index.splits)
    # A dataset with a fixed number of folds checks against it, not against what is listed.
    fixed = read_custom(manifest, num_folds=3)
    assert problems_of(fixed)[f"{manifest}:5"].startswith("fold 4 out of range 1..3")
    assert sorted({r.fold for split in fixed.splits.values() for r in split}) == [1, 2, 3]


def test_custom_manifest_unknown_columns_and_extra_fields_are_problems(tmp_path):
    root = tmp_path / "mine"
    write_custom_clips(root)
    manifest = root / "m.csv"
    manifest.write_text(
        "path,label,split,flod,notes\n"
        "clips/a,happy,train,2,ok\n"
        "clips/b,sad,test,1,x,surplus\n"
        "clips/c.mkv,sad,test,1,x,,\n"
    )
    index = read_custom(manifest)
    found = problems_of(index)
    assert found[f"{manifest}:1"] == (
        "unknown column(s) flod, notes ignored (a manifest has path,label,split[,fold])"
    )
    assert found[f"{manifest}:3"] == "1 field(s) more than the header's columns: ['surplus']"
    assert f"{manifest}:4" not in found  # empty trailing fields are only trailing commas
    assert [r.clip_id for r in index.splits["test"]] == ["clips/c.mkv"]


def test_dfew_extra_columns_and_fields_are_problems(dfew_copy):
    path = dfew_list(dfew_copy, 1, "test")
    lines = path.read_text().splitlines()
    lines[1] += ",7"
    path.write_text("\n".join(lines) + "\n")
    found = problems_of(read_dataset("dfew", dfew_copy, fold=1))
    assert found[f"{path}:2"].startswith("expected <clip number>,<label>, found")
    path.write_text("video_name,label,extra\n" + "\n".join(lines[2:]) + "\n")
    assert problems_of(read_dataset("dfew", dfew_copy, fold=1))[f"{path}:1"] == (
        "unknown column(s) extra ignored"
    )


@pytest.mark.parametrize("name", ["m.csv", "classes.txt"])
def test_custom_text_files_with_bad_utf8_name_the_file_and_line(tmp_path, name):
    root = tmp_path / "mine"
    write_custom_clips(root)
    write_csv(root / "m.csv", ["path", "label", "split"], [["clips/a", "happy", "train"]])
    (root / "classes.txt").write_text("happy\nsad\n")
    bad = root / name
    bad.write_bytes(bad.read_bytes() + b"caf\xe9\n")
    with pytest.raises(InputError, match=re.escape(f"{bad}:3: not valid utf-8-sig text")):
        read_custom(root / "m.csv")


def test_dfew_list_with_bad_utf8_names_the_file_and_line(dfew_copy):
    path = dfew_list(dfew_copy, 2, "train")
    path.write_bytes(path.read_bytes() + b"\xff,1\n")
    lines = path.read_bytes().count(b"\n")
    with pytest.raises(InputError, match=re.escape(f"{path}:{lines}: not valid utf-8-sig")):
        read_dataset("dfew", dfew_copy, fold=2)


# --- read_dataset -----------------------------------------------------------------------------


def test_read_dataset_option_checks(dfew_tree, ferv39k_tree):
    with pytest.raises(ConfigError, match="unknown reader option"):
        read_dataset("dfew", dfew_tree.root, frames="clip_224x224")
    with pytest.raises(ConfigError, match="does not apply to dataset ferv39k"):
        read_dataset("ferv39k", ferv39k_tree.root, mafw_source="video")
    with pytest.raises(ConfigError, match="unknown dataset"):
        read_dataset("afew", dfew_tree.root)
    with pytest.raises(ConfigError, match=r"fold must be 1\.\.5"):
        read_dataset("dfew", dfew_tree.root, fold=6)
    with pytest.raises(LayoutError, match="no such file"):
        read_dataset("mafw", dfew_tree.root / "absent")
    # Another dataset's options at their defaults are what configs pass: accepted.
    index = read_dataset(
        "ferv39k", ferv39k_tree.root, dfew_frames="clip_224x224", mafw_captions=False
    )
    assert index.dataset == "ferv39k"
