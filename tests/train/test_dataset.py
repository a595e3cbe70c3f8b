"""Clip samples: sampled frames with their middle-level rows; broken clips become records."""

from __future__ import annotations

import shutil

from finecliper.data.readers import read_dataset
from finecliper.data.transforms import ClipTransform
from finecliper.train.dataset import ClipDataset, collate_clips, synth_middle_locator


def dataset(root, train=False):
    records = read_dataset("synth", root, fold=1).records("train", 1)
    return ClipDataset(
        records,
        transform=ClipTransform(32, train=train),
        num_frames=4,
        train=train,
        middle=synth_middle_locator,
        seed=3,
    )


def test_samples_carry_frames_parsing_and_landmarks(tiny_synth):
    item = dataset(tiny_synth)[0]
    assert item["frames"].shape == (4, 3, 32, 32)
    assert item["parsing"].shape == (4, 32, 32) and item["landmarks"].shape == (4, 68, 2)
    batch = collate_clips([item, dataset(tiny_synth)[1]])
    assert batch.has_middle.tolist() == [True, True] and batch.failed == []


def test_training_draws_are_fixed_by_seed_and_epoch(tiny_synth):
    first, second = dataset(tiny_synth, train=True), dataset(tiny_synth, train=True)
    assert (first[2]["frames"] == second[2]["frames"]).all()
    second.set_epoch(1)
    assert not (first[2]["frames"] == second[2]["frames"]).all()


def test_damaged_middle_data_is_a_recorded_failure(tmp_path, tiny_synth):
    root = tmp_path / "synth"
    shutil.copytree(tiny_synth, root)
    clips = dataset(root)
    (clips.records[0].path.parent / "parsing.npz").write_bytes(b"not a zip archive")
    item = clips[0]
    assert "damaged" in item["error"] and clips.records[0].clip_id in item["error"]
    batch = collate_clips([item, clips[1]])
    assert [index for index, _ in batch.failed] == [0] and len(batch.labels) == 1
