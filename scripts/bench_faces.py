"""Throughput of `finecliper prepare faces`, in frames per second and per CPU second (per core).

Makes test clips from a real photo (``skimage.data.astronaut()``: needs scikit-image), moving it
(shift, scale, rotation) as the tests do, then runs the face pipeline on them with one worker:

- ``video``: H.264 clips at 320 x 240 -> detection, tracking, 224 px crop, mesh, parsing, JPEGs;
- ``folder``: frame folders of 224 x 224 face crops (the DFEW/MAFW layout) -> mesh and parsing;
- ``bisenet``: as ``folder``, parsing with BiSeNet at 512 px (random weights: same arithmetic).

Usage: ``python scripts/bench_faces.py [--clips 4] [--frames 64] [--workers 1] [--case ...]``;
prints one JSON object per case. The CPU-second figure counts the pipeline's own threads too,
so it is the fair per-core number on a busy or many-core machine.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from finecliper.data.records import ClipRecord
from finecliper.face.analysis import FacesSettings
from finecliper.face.parsing import BiSeNet
from finecliper.face.pipeline import run_faces


def moving_photo(frames: int, width: int, height: int) -> list[np.ndarray]:
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    out = []
    for t in range(frames):
        angle = math.radians(6 * math.sin(2 * math.pi * t / frames))
        scale = 1.2 * (1.0 + 0.1 * math.sin(2 * math.pi * t / frames + 1))
        c, s = math.cos(angle) / scale, math.sin(angle) / scale
        cx, cy = 224 + 20 * t / frames, 140 - 10 * t / frames
        offset = (cx - c * width / 2 + s * height / 2, cy - s * width / 2 - c * height / 2)
        coeffs = (c, -s, offset[0], s, c, offset[1])
        image = photo.transform((width, height), Image.Transform.AFFINE, coeffs)
        out.append(np.asarray(image))
    return out


def write_video(path: Path, frames: list[np.ndarray]) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def make_clips(root: Path, case: str, clips: int, frames: int) -> list[ClipRecord]:
    records = []
    for k in range(clips):
        if case == "video":  # the other cases read frame folders
            path = root / f"clip{k}.mp4"
            write_video(path, moving_photo(frames, 320, 240))
        else:
            path = root / f"clip{k}"
            path.mkdir()
            for t, image in enumerate(moving_photo(frames, 224, 224)):
                Image.fromarray(image).save(path / f"{t + 1:05d}.jpg", quality=95)
        records.append(ClipRecord(path.name, path, 0, "test", frames))
    return records


def bench(case: str, clips: int, frames: int, workers: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        records = make_clips(root, case, clips, frames)
        settings = FacesSettings()
        if case == "bisenet":
            weights = root / "bisenet_random.pth"
            torch.save(BiSeNet().state_dict(), weights)
            settings = FacesSettings(parser="bisenet", parser_weights=str(weights))
        summary = run_faces(
            records,
            root / "cache",
            settings,
            dataset="bench",
            workers=workers,
            progress=False,
        )
    return {
        "case": case,
        "clips": clips,
        "frames": summary.frames,
        "ok": summary.ok,
        "workers": workers,
        "seconds": summary.seconds,
        "frames_per_second": summary.frames_per_second,
        "frames_per_cpu_second": summary.frames_per_cpu_second,
        "cpu": platform.processor() or platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--case", nargs="+", choices=("video", "folder", "bisenet"), default=["video", "folder"]
    )
    args = parser.parse_args()
    for case in args.case:
        print(json.dumps(bench(case, args.clips, args.frames, args.workers)), flush=True)


if __name__ == "__main__":
    main()
