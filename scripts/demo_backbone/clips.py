"""SynthDFER clips for pre-training: frames, descriptions and the generator's ground truth."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from finecliper.data.sampling import segment_indices
from finecliper.errors import FineCLIPERError
from finecliper.face.arrays import (
    DamagedArraysError,
    has_mesh,
    read_arrays,
    read_landmarks,
    read_mesh,
)
from finecliper.face.cache import clip_dir
from finecliper.text.backends.template import describe_landmarks


@dataclass
class ClipSet:
    """Decoded SynthDFER clips, 16 frames each: uint8 frames (N, 16, 3, H, W), labels,
    descriptions, each clip's split ("train"/"test") in the fold it was read with, and, for
    pre-training, the generator's ground truth of those frames: action-unit values
    (N, 16, AUs), parsing maps (N, 16, H, W) and landmarks (N, 16, 68, 2)."""

    ids: list[str]
    frames: torch.Tensor
    labels: np.ndarray
    texts: list[str]
    template_texts: list[str]
    splits: list[str]
    classes: tuple[str, ...]
    aus: torch.Tensor | None = None
    parsing: torch.Tensor | None = None
    landmarks: torch.Tensor | None = None

    def subset(self, index: torch.Tensor) -> ClipSet:
        rows = index.tolist()
        return ClipSet(
            ids=[self.ids[i] for i in rows],
            frames=self.frames[index],
            labels=self.labels[rows],
            texts=[self.texts[i] for i in rows],
            template_texts=[self.template_texts[i] for i in rows],
            splits=[self.splits[i] for i in rows],
            classes=self.classes,
            aus=None if self.aus is None else self.aus[index],
            parsing=None if self.parsing is None else self.parsing[index],
            landmarks=None if self.landmarks is None else self.landmarks[index],
        )


def generate(work: Path, clips: int, seed: int, size: int) -> Path:
    """SynthDFER with these settings under ``work``; a complete earlier run is reused (the
    generator keeps finished clips and checks that the settings match)."""
    from finecliper.data.synth import generate_synth

    out = work / f"synth_seed{seed}_n{clips}"
    print(f"SynthDFER ({clips} clips, seed {seed}) -> {out}", flush=True)
    generate_synth(out, clips=clips, seed=seed, size=size, frames=16, workers=2, progress=True)
    return out


def load_synth(
    root: Path,
    size: int,
    fold: int = 1,
    *,
    ground_truth: bool = False,
    faces_cache: Path | None = None,
) -> ClipSet:
    """Every clip of a SynthDFER folder (read with its reader), 16 frames each, decoded; with
    ``ground_truth`` also the per-frame action units, parsing maps and landmarks.

    With ``faces_cache`` (``finecliper prepare faces synth ROOT``), the landmarks, parsing maps
    and template descriptions are the pipeline's, measured by MediaPipe on the rendered frames,
    as the demo and ``predict`` see them; the generator's ground truth then gives only the
    action units (training targets)."""
    from finecliper.data.synth import read_synth
    from finecliper.data.video import frames_to_tensor, read_frames

    index = read_synth(root, fold=fold)
    if index.problems:
        first = index.problems[0]
        raise FineCLIPERError(
            f"{root}: {len(index.problems)} problems, e.g. {first.path}: {first.problem}"
        )
    records = sorted(
        index.records("train", fold) + index.records("test", fold), key=lambda r: r.clip_id
    )
    descriptions = _read_descriptions(root / "descriptions.jsonl")
    missing = [record.clip_id for record in records if record.clip_id not in descriptions]
    if missing:
        raise FineCLIPERError(f"{root}: {len(missing)} clips have no description: {missing[0]}")
    frames, truth, template_texts = [], [], []
    for record in tqdm(records, desc=f"decoding {root.name}", unit="clip"):
        measured = None if faces_cache is None else clip_dir(faces_cache, record.clip_id)
        template_texts.append(_template_description(measured or record.path.parent, measured))
        indices = segment_indices(record.num_frames or 16, 16, train=False)
        stack = frames_to_tensor(read_frames(record.path, indices))
        if stack.shape[-2:] != (size, size):
            raise FineCLIPERError(
                f"{record.path}: frames are {tuple(stack.shape[-2:])}, the backbone takes "
                f"{size}x{size}; generate SynthDFER with size={size}"
            )
        frames.append(stack)
        if ground_truth:
            truth.append(_read_ground_truth(record.path.parent, indices, measured))
    aus, parsing, landmarks = (
        (torch.stack(column) for column in zip(*truth, strict=True)) if truth else [None] * 3
    )
    return ClipSet(
        ids=[record.clip_id for record in records],
        frames=torch.stack(frames),
        labels=np.asarray([record.label for record in records]),
        texts=[descriptions[record.clip_id] for record in records],
        template_texts=template_texts,
        splits=[record.split for record in records],
        classes=index.classes,
        aus=aus,
        parsing=parsing,
        landmarks=landmarks,
    )


def _read_ground_truth(
    folder: Path, indices: Sequence[int], measured: Path | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A clip's per-frame action units, parsing maps and landmarks, at frames ``indices``;
    parsing and landmarks from ``measured`` (a faces-cache clip folder) when given."""
    try:
        aus = json.loads((folder / "params.json").read_text(encoding="utf-8"))["au"]
        arrays = read_arrays(measured or folder)
    except (OSError, ValueError, KeyError, DamagedArraysError) as exc:
        raise FineCLIPERError(f"{folder}: unreadable SynthDFER ground truth ({exc})") from exc
    rows = list(indices)
    return (
        torch.tensor(aus, dtype=torch.float32)[rows],
        torch.from_numpy(arrays.parsing[rows]),
        torch.from_numpy(arrays.landmarks[rows].astype(np.float32)),
    )


def _template_description(folder: Path, measured: Path | None) -> str:
    """What the landmark template backend (``finecliper describe --backend template``, and
    ``predict`` on new videos) says about the clip: from the pipeline's landmarks and mesh when
    ``measured``, else from the generator's ground-truth landmarks."""
    try:
        points = read_landmarks(folder).astype(np.float64)
        mesh = read_mesh(folder).astype(np.float64) if measured and has_mesh(folder) else None
    except DamagedArraysError as exc:
        raise FineCLIPERError(str(exc)) from exc
    found = np.isfinite(points).all(axis=(1, 2))
    if not found.any():
        raise FineCLIPERError(f"{folder}: no frame with a face")
    return describe_landmarks(
        points[found],
        None if mesh is None else mesh[found],
        measured=measured is not None,
    )


def _read_descriptions(path: Path) -> dict[str, str]:
    with open(path, encoding="utf-8") as handle:
        entries = [json.loads(line) for line in handle if line.strip()]
    return {entry["clip_id"]: entry["text"] for entry in entries}
