"""`prepare faces` end to end on H.264 clips made from a real photo, plus tracking and QC.

The clips move ``skimage.data.astronaut()`` (shift, scale, rotation) over 32 frames at 192 px,
so the true position of the hand-marked irises is known in every frame.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import signal
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("mediapipe")
skimage_data = pytest.importorskip("skimage.data")

from finecliper.data.records import ClipRecord  # noqa: E402
from finecliper.errors import ConfigError, FineCLIPERError  # noqa: E402
from finecliper.face.analysis import FacesSettings, nearest_sources  # noqa: E402
from finecliper.face.cache import clip_dir, clip_folder_name, load_clip_faces  # noqa: E402
from finecliper.face.commands import parse_shard, register  # noqa: E402
from finecliper.face.detect import FaceBox  # noqa: E402
from finecliper.face.frames import uniform_indices  # noqa: E402
from finecliper.face.pipeline import merge_caches, run_faces, settings_dict, shard_of  # noqa: E402
from finecliper.face.qc import write_qc_montage  # noqa: E402
from finecliper.face.schema import LANDMARK_COLOUR, LANDMARK_GROUPS  # noqa: E402
from finecliper.face.track import CropBox, crop_boxes, crop_square, follow_main_face  # noqa: E402

IRISES = np.array([(203.0, 102.0), (246.0, 103.0)])  # hand-marked on the photo (right, left)
FRAMES, SIZE = 32, 192


def affine(t: int, mirror: bool) -> np.ndarray:
    """2 x 3 map from clip pixel (u, v, 1) to photo pixel (x, y) for frame t."""
    angle = math.radians(6 * math.sin(2 * math.pi * t / FRAMES))
    scale = (260 / (1.0 + 0.1 * math.sin(2 * math.pi * t / FRAMES + 1))) / SIZE
    cx, cy = 224 + 20 * t / FRAMES, 140 - 10 * t / FRAMES
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    matrix = np.array([[c, -s, 0.0], [s, c, 0.0]])
    matrix[:, 2] = np.array([cx, cy]) - matrix[:, :2] @ np.array([SIZE / 2, SIZE / 2])
    if mirror:  # u -> SIZE - u
        matrix[:, 2] += matrix[:, 0] * SIZE
        matrix[:, 0] *= -1
    return matrix


def photo_frames(mirror: bool = False) -> list[np.ndarray]:
    photo = Image.fromarray(skimage_data.astronaut())
    return [
        np.asarray(
            photo.transform(
                (SIZE, SIZE),
                Image.Transform.AFFINE,
                tuple(affine(t, mirror).ravel()),
                Image.Resampling.BILINEAR,
            )
        )
        for t in range(FRAMES)
    ]


def write_h264(path: Path, frames: list[np.ndarray]) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def true_irises(t: int, mirror: bool) -> np.ndarray:
    """The hand-marked irises in clip-frame pixels at frame t (subject's right, left)."""
    matrix = affine(t, mirror)
    inverse = np.linalg.inv(matrix[:, :2])
    return (IRISES - matrix[:, 2]) @ inverse.T


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A custom-manifest dataset: two face clips, one clip with no face, one corrupt file."""
    root = tmp_path_factory.mktemp("videos")
    write_h264(root / "astronaut.mp4", photo_frames())
    write_h264(root / "mirrored.mp4", photo_frames(mirror=True))
    ramp = np.linspace(40, 200, SIZE, dtype=np.uint8)
    wall = np.repeat(np.stack([np.tile(ramp, (SIZE, 1))] * 3, axis=-1)[None], 8, axis=0)
    write_h264(root / "wall.mp4", list(wall))
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x20ftypisom" + bytes(range(256)) * 8)
    rows = ["path,label,split", "astronaut.mp4,happy,train", "mirrored.mp4,happy,test"]
    rows += ["wall.mp4,neutral,train", "broken.mp4,sad,test"]
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def faces_argv(dataset: Path, cache: Path, *options: str) -> list[str]:
    return [
        "prepare",
        "faces",
        "custom",
        str(dataset / "manifest.csv"),
        "--out",
        str(cache),
        *options,
    ]


def run_cli(argv: list[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    out = io.StringIO()
    with redirect_stdout(out):
        code = args.handler(args)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def full_run(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    cache = tmp_path_factory.mktemp("cache") / "faces"
    code, out = run_cli(faces_argv(dataset, cache, "--json"))
    assert code == 0
    return cache, json.loads(out.strip().splitlines()[-1])


def clip_files(cache: Path) -> dict[str, bytes]:
    """Every file of every finished clip, by relative path."""
    root = cache / "clips"
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_summary_counts_every_clip(full_run: tuple[Path, dict]) -> None:
    _, summary = full_run
    assert (summary["clips"], summary["ok"], summary["no_face"], summary["failed"]) == (4, 2, 1, 1)
    assert summary["frames"] == 2 * FRAMES + 8
    assert summary["frames_per_second"] > 0 and summary["frames_per_cpu_second"] > 0
    assert [f["clip_id"] for f in summary["failures"]] == ["broken.mp4"]
    assert summary["reader_problems"] == 1  # the reader saw it too, and kept it in its split
    assert "broken.mp4" in summary["failures"][0]["error"]


@pytest.mark.parametrize("mirror", [False, True])
def test_face_tracked_and_landmarked_in_every_frame(
    full_run: tuple[Path, dict], mirror: bool
) -> None:
    cache, _ = full_run
    clip = load_clip_faces(cache, "mirrored.mp4" if mirror else "astronaut.mp4", mesh=True)
    status = clip.status
    assert status["status"] == "ok" and status["frames"] == FRAMES
    assert all(status["found"]) and all(status["crop"]["detected"])
    assert status["source_indices"] == list(range(FRAMES)) and status["source_problem"] is None
    assert clip.landmarks.shape == (FRAMES, 68, 2) and clip.mesh.shape == (FRAMES, 478, 3)
    assert clip.parsing.shape == (FRAMES, 224, 224)
    frames = sorted(clip.frames_dir.glob("*.jpg"))
    assert len(frames) == FRAMES and Image.open(frames[0]).size == (224, 224)
    for t in range(FRAMES):
        x0, y0, side = status["crop"]["boxes"][t]
        expected = (true_irises(t, mirror) - (x0, y0)) * 224 / side
        if mirror:  # the subject's right eye is now on the image's right
            expected = expected[::-1]
        eyes = [clip.landmarks[t, LANDMARK_GROUPS[g]].mean(0) for g in ("right_eye", "left_eye")]
        error = np.linalg.norm(np.array(eyes) - expected, axis=1)
        assert error.max() < 7, f"frame {t}: eye error {error} px"


def test_no_face_and_corrupt_clips_are_recorded(full_run: tuple[Path, dict]) -> None:
    cache, _ = full_run
    wall = load_clip_faces(cache, "wall.mp4")
    assert wall.status["status"] == "no_face" and wall.landmarks is None
    assert wall.status["crop"]["fallback"] == "centre"
    assert not (wall.folder / "landmarks.npy").exists()
    assert len(list(wall.frames_dir.glob("*.jpg"))) == 8  # the video frames are still there
    broken = load_clip_faces(cache, "broken.mp4")
    assert broken.status["status"] == "failed" and "broken.mp4" in broken.status["error"]


def test_manifest_names_tools_versions_and_settings(full_run: tuple[Path, dict]) -> None:
    cache, _ = full_run
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["dataset"] == "custom"
    assert manifest["tools"]["landmarks"]["version"] == "0.10.21"
    assert manifest["tools"]["parser"]["name"] == "mesh"
    assert manifest["settings"]["crop_size"] == 224
    assert manifest["libraries"]["av"] == av.__version__


# Runs the CLI handler in a fresh process that SIGKILLs itself while writing its second clip's
# arrays: no exception handler or cleanup runs, as when a job is killed for real.
KILLED_RUN = """
import argparse, os, signal, sys
from finecliper.face import extract
from finecliper.face.commands import register

real_write, calls = extract.write_arrays, []

def write_then_die(*args):
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    real_write(*args)

extract.write_arrays = write_then_die
parser = argparse.ArgumentParser()
register(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(sys.argv[1:])
args.handler(args)
"""


def test_killed_run_resumes_to_the_same_files(
    dataset: Path, full_run: tuple[Path, dict], tmp_path: Path
) -> None:
    reference, _ = full_run
    cache = tmp_path / "faces"
    argv = faces_argv(dataset, cache)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, *argv], env=env, capture_output=True, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    # Sorted by id: astronaut.mp4 finished, broken.mp4 failed, mirrored.mp4 was being written.
    finished = sorted(p.name for p in (cache / "clips").iterdir() if (p / "status.json").exists())
    assert finished == [clip_folder_name("astronaut.mp4"), clip_folder_name("broken.mp4")]
    assert [p.name for p in (cache / "clips").glob(".*")] == [
        f".{clip_folder_name('mirrored.mp4')}.partial"
    ]
    stamps = {n: (cache / "clips" / n / "status.json").stat().st_mtime_ns for n in finished}

    code, out = run_cli([*argv, "--json"])
    summary = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and (summary["skipped"], summary["processed"]) == (2, 2)
    assert (summary["ok"], summary["no_face"], summary["failed"]) == (2, 1, 1)
    assert {n: (cache / "clips" / n / "status.json").stat().st_mtime_ns for n in finished} == stamps
    assert not list((cache / "clips").glob(".*"))
    assert clip_files(cache) == clip_files(reference)


def test_shards_merge_into_the_full_cache(
    dataset: Path, full_run: tuple[Path, dict], tmp_path: Path
) -> None:
    reference, _ = full_run
    counts = []
    # Shard 0 holds three clips (crc32 of the ids): it runs in a pool of two worker processes.
    for shard, workers in (("0/2", "2"), ("1/2", "1")):
        argv = faces_argv(dataset, tmp_path / shard[0], "--shard", shard, "--workers", workers)
        _, out = run_cli([*argv, "--json"])
        counts.append(json.loads(out.strip().splitlines()[-1])["clips"])
    assert counts == [3, 1]
    code, _ = run_cli(
        ["prepare", "merge", str(tmp_path / "all"), *(str(tmp_path / s) for s in "01")]
    )
    assert code == 0
    assert clip_files(tmp_path / "all") == clip_files(reference)


def test_resume_with_other_settings_is_refused(dataset: Path, full_run: tuple[Path, dict]) -> None:
    cache, _ = full_run
    with pytest.raises(ConfigError, match="crop_size"):
        run_cli(faces_argv(dataset, cache, "--crop-size", "112"))


def test_merge_refuses_caches_made_differently(full_run: tuple[Path, dict], tmp_path: Path) -> None:
    reference, _ = full_run
    other = tmp_path / "other"
    run_faces([], other, FacesSettings(margin=0.5), dataset="custom", progress=False)
    with pytest.raises(ConfigError, match="made with other settings"):
        merge_caches(tmp_path / "merged", [reference, other])


def test_frame_folder_with_corrupt_and_faceless_frames(tmp_path: Path) -> None:
    folder = tmp_path / "clip_0001"
    folder.mkdir()
    frames = photo_frames()[:12:2]
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i + 1}.png")
    (folder / "3.png").write_bytes(b"not a png")
    Image.fromarray(np.full_like(frames[0], 128)).save(folder / "5.png")  # no face
    record = ClipRecord("clip_0001", folder, 0, "train", 6)
    summary = run_faces(
        [record], tmp_path / "cache", FacesSettings(max_frames=5), dataset="custom", progress=False
    )
    assert (summary.ok, summary.failed) == (1, 0)
    clip = load_clip_faces(tmp_path / "cache", "clip_0001")
    status = clip.status
    assert status["frames_dir"] is None and status["crop"] is None  # frame folders are not cropped
    assert status["source_indices"] == [0, 1, 2, 4, 5]  # 5 of 6 frames, spread uniformly
    assert status["frame_files"] == ["1.png", "2.png", "3.png", "5.png", "6.png"]
    assert status["found"] == [True, True, False, False, True]
    assert status["reused_from"] == [0, 1, 1, 4, 4]
    assert status["frame_errors"][0]["frame"] == 2 and "3.png" in status["frame_errors"][0]["error"]
    np.testing.assert_array_equal(clip.landmarks[2], clip.landmarks[1])
    np.testing.assert_array_equal(clip.parsing[3], clip.parsing[4])
    assert clip.parsing.shape == (5, SIZE, SIZE)


def test_video_broken_midway_keeps_the_frames_before_the_break(tmp_path: Path) -> None:
    video = write_h264(tmp_path / "broken_midway.mkv", photo_frames())
    data = bytearray(video.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = bytes(2000)
    video.write_bytes(bytes(data))
    record = ClipRecord("broken_midway", video, 0, "train", None)
    summary = run_faces(
        [record], tmp_path / "cache", FacesSettings(), dataset="custom", progress=False
    )
    status = load_clip_faces(tmp_path / "cache", "broken_midway").status
    assert summary.ok == 1 and status["status"] == "ok"
    assert 0 < status["frames"] < FRAMES and all(status["found"])
    assert "broken_midway.mkv" in status["source_problem"]


def test_qc_montage_shows_frame_parsing_and_landmarks(
    full_run: tuple[Path, dict], tmp_path: Path
) -> None:
    cache, _ = full_run
    out = tmp_path / "qc.png"
    code, text = run_cli(
        ["prepare", "qc", str(cache), "--out", str(out), "--frames", "2", "--tile", "96"]
    )
    assert code == 0 and "2 clips" in text
    montage = np.asarray(Image.open(out).convert("RGB"))
    assert montage.shape[1] == 2 * 3 * 96
    row = montage[18 + 14 : 18 + 14 + 96]  # first clip's tiles, under header and caption
    frame, overlay, dots = (row[:, k * 96 : (k + 1) * 96].astype(int) for k in range(3))
    assert np.abs(overlay - frame).mean() > 10  # the parsing colours changed the face
    yellow = np.all(np.abs(dots - LANDMARK_COLOUR) < 60, axis=-1).sum()
    assert yellow > 20 and yellow > np.all(np.abs(frame - LANDMARK_COLOUR) < 60, axis=-1).sum()


def test_qc_on_a_cache_without_faces_explains(tmp_path: Path) -> None:
    with pytest.raises(FineCLIPERError, match="no finished clip with a face"):
        write_qc_montage(tmp_path, tmp_path / "qc.png")


def test_follows_the_main_face_never_a_union() -> None:
    big = [FaceBox(40 + t, 40, 120 + t, 120, 0.9) for t in range(10)]
    passer = [FaceBox(150, 10 + 5 * t, 180, 40 + 5 * t, 0.95) for t in range(10)]
    detections = [[passer[t], big[t]] if t < 6 else [big[t]] for t in range(10)]
    detections[4] = [passer[4]]  # the main face is missed once
    followed = follow_main_face(detections)
    assert followed[4] is None and all(followed[t] == big[t] for t in range(10) if t != 4)
    crops = crop_boxes(followed, margin=0.0, smooth=1)
    assert crops is not None
    assert crops[4] == CropBox(44, 40, 80)  # interpolated between frames 3 and 5
    assert all(c.side == 80 for c in crops)  # one face's size, not a box around both


def test_crop_boxes_smooth_jitter_and_need_a_face() -> None:
    boxes = [
        FaceBox(50 + (4 if t % 2 else -4), 50, 150 + (4 if t % 2 else -4), 150) for t in range(9)
    ]
    crops = crop_boxes(boxes, margin=0.25, smooth=5)
    assert crops is not None and all(c.side == 150 for c in crops)
    centres = [c.x0 + c.side / 2 for c in crops[2:-2]]
    assert max(centres) - min(centres) <= 2  # +-4 px jitter averaged away
    assert crop_boxes([None, None]) is None


def test_crop_square_pads_outside_the_frame_with_black() -> None:
    image = np.full((20, 20, 3), 255, dtype=np.uint8)
    crop = crop_square(image, CropBox(-10, -10, 20), 20)
    assert crop.shape == (20, 20, 3)
    assert crop[:10, :10].max() == 0 and crop[10:, 10:].min() == 255


def test_small_helpers() -> None:
    assert nearest_sources([False, True, False, False, True, False]) == [1, 1, 1, 4, 4, 4]
    assert uniform_indices(10, 4) == [0, 3, 6, 9] and uniform_indices(3, 8) == [0, 1, 2]
    assert shard_of("00001", 4) == 3 and shard_of("00002", 4) == 1  # crc32: same everywhere
    assert clip_folder_name("00001") == "00001"
    assert clip_folder_name("Scene/Happy/0001") != clip_folder_name("Scene_Happy_0001")
    assert "/" not in clip_folder_name("Scene/Happy/0001")
    assert clip_dir("c", ".hidden").name[0] != "."
    assert parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "x/2", "1"):
        with pytest.raises(ConfigError, match="--shard"):
            parse_shard(bad)
    with pytest.raises(ConfigError, match="crop size"):
        FacesSettings(crop_size=4)
    # The manifest names a weights file without its folder (its checksum identifies it).
    moved = FacesSettings(parser="bisenet", parser_weights="/data/models/79999_iter.pth")
    assert settings_dict(moved)["parser_weights"] == "79999_iter.pth"
