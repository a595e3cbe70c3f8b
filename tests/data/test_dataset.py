"""Clip samples: sampled frames with their middle-level rows; broken clips become records."""

from __future__ import annotations

import json
import shutil

import av
import numpy as np
import pytest
import torch
from PIL import Image

from finecliper.data.dataset import (
    ClipDataset,
    cache_middle_locator,
    collate_clips,
    synth_middle_locator,
)
from finecliper.data.readers import read_dataset
from finecliper.data.records import ClipRecord
from finecliper.data.transforms import ClipTransform


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


def test_cache_of_a_frame_subset_lines_up_with_its_frames(tmp_path):
    """`prepare faces --max-frames` on face-crop folders keeps every other frame here: the
    sampled frames must be the ones the landmark rows were measured on."""
    folder = tmp_path / "clip" / "frames"
    folder.mkdir(parents=True)
    for frame in range(12):  # frame k is uniformly grey 20 * k
        Image.fromarray(np.full((16, 16, 3), 20 * frame, np.uint8)).save(
            folder / f"{frame:03d}.png"
        )
    kept = list(range(0, 12, 2))
    cached = tmp_path / "cache" / "clips" / "c1"
    cached.mkdir(parents=True)
    points = np.zeros((len(kept), 68, 2), np.float32)
    points[:, :, 0] = np.asarray(kept)[:, None]  # each row remembers its source frame
    np.save(cached / "landmarks.npy", points)
    np.savez_compressed(cached / "parsing.npz", maps=np.zeros((len(kept), 16, 16), np.uint8))
    status = {"status": "ok", "frames": len(kept), "frames_dir": None, "source_indices": kept}
    (cached / "status.json").write_text(json.dumps(status))
    record = ClipRecord("c1", folder, 0, "train", num_frames=12)
    clips = ClipDataset(
        [record],
        transform=ClipTransform(16, train=False),
        num_frames=4,
        train=False,
        middle=cache_middle_locator(tmp_path / "cache"),
    )
    item = clips[0]
    source_frame = item["landmarks"][:, 0, 0]
    grey = item["frames"].float().mean(dim=(1, 2, 3))
    assert set(source_frame.tolist()) <= set(kept)
    assert torch.allclose(grey, 20 * source_frame, atol=2)


def test_cropped_cache_of_a_frame_subset_samples_among_its_crops(tmp_path):
    """`prepare faces --max-frames 6` on a raw 24-frame video: the crop folder holds 6 frames,
    so sampling must happen over those 6, never over the video's 24 (issue #14)."""
    pytest.importorskip("mediapipe")
    skimage_data = pytest.importorskip("skimage.data")
    from finecliper.face.analysis import FacesSettings
    from finecliper.face.pipeline import run_faces

    photo = np.asarray(Image.fromarray(skimage_data.astronaut()).resize((192, 192)))
    video = tmp_path / "astronaut.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 192, 192, "yuv420p"
        for shift in range(24):  # the face drifts right, one pixel a frame
            frame = np.roll(photo, shift, axis=1)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    record = ClipRecord("astronaut", video, 0, "test", num_frames=24)
    cache = tmp_path / "cache"
    settings = FacesSettings(max_frames=6, crop_size=64)
    summary = run_faces([record], cache, settings, dataset="custom", progress=False)
    assert summary.ok == 1
    status = json.loads((cache / "clips" / "astronaut" / "status.json").read_text())
    assert status["frames_dir"] == "frames" and len(status["source_indices"]) == 6
    clips = ClipDataset(
        [record],
        transform=ClipTransform(32, train=False),
        num_frames=4,
        train=False,
        middle=cache_middle_locator(cache),
    )
    item = clips[0]
    assert "error" not in item, item.get("error")
    assert item["frames"].shape == (4, 3, 32, 32) and item["landmarks"].shape == (4, 68, 2)
    training = ClipDataset(
        [record],
        transform=ClipTransform(32, train=True),
        num_frames=8,  # more than the cache holds: rows repeat, none out of range
        train=True,
        middle=cache_middle_locator(cache),
    )
    assert "error" not in training[0], training[0].get("error")
