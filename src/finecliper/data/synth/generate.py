"""``generate_synth``: render SynthDFER clips in parallel and write the dataset layout."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from finecliper.data.synth.describe import describe_clip
from finecliper.data.synth.draw import build_canvas, compose, rasterise
from finecliper.data.synth.face import frame_geometry
from finecliper.data.synth.scenario import (
    AU_NAMES,
    CLASSES,
    CONFUSABLE,
    INTENSITY,
    KIND_PROBABILITIES,
    KINDS,
    POSE_NAMES,
    SIGNATURES,
    ClipScript,
    Identity,
    sample_clip,
    sample_identity,
)
from finecliper.errors import FineCLIPERError
from finecliper.face.arrays import write_arrays
from finecliper.io import atomic_open, dumps_json, read_text, write_json, write_text

GENERATOR = "SynthDFER"
VERSION = "1.0"
FOLDS = 5
SETTINGS = ("generator", "version", "seed", "clips", "frames", "size")
TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class SynthResult:
    out: Path
    clips: int
    frames: int
    size: int
    rendered: int  # clips rendered by this call (the others were already complete)
    class_counts: dict[str, int] = field(default_factory=dict)
    kind_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Job:
    clips_dir: Path
    index: int
    clip_id: str
    label: int
    seed: int
    size: int
    frames: int


def clip_id_of(index: int) -> str:
    return f"synth_{index:05d}"


def assign_labels(clips: int, seed: int) -> np.ndarray:
    """Balanced classes: counts differ by at most one, order shuffled by the seed."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1AB]))
    return rng.permutation(np.arange(clips) % len(CLASSES))


def assign_folds(labels: np.ndarray, seed: int) -> np.ndarray:
    """Stratified folds 1..5: each class is dealt round-robin, continuing where the last ended,
    so per-class and overall fold sizes both differ by at most one."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xF01D]))
    folds = np.zeros(len(labels), dtype=int)
    position = 0
    for label in range(len(CLASSES)):
        members = rng.permutation(np.flatnonzero(labels == label))
        folds[members] = (position + np.arange(len(members))) % FOLDS + 1
        position += len(members)
    return folds


def _rounded(values: np.ndarray) -> list[Any]:
    return np.round(np.asarray(values, float), 4).tolist()


def _params(job: _Job, ident: Identity, script: ClipScript, text: str) -> dict[str, Any]:
    """params.json: everything that drove the clip, per frame where it varies."""
    return {
        "clip_id": job.clip_id,
        "label": CLASSES[job.label],
        "label_id": job.label,
        "kind": script.kind,
        "intensity": round(script.intensity, 4),
        "blend": None
        if script.blend_class is None
        else {"label": CLASSES[script.blend_class], "weight": round(script.blend_weight, 4)},
        "onset_frame": round(script.onset, 3),
        "apex_frame": round(script.apex, 3),
        "description": text,
        "events": script.events,
        "au_names": list(AU_NAMES),
        "au": _rounded(script.au),
        "distractors": {
            "brow_flash": _rounded(script.brow_flash),
            "blink": _rounded(script.blink),
            "speech": _rounded(script.speech),
            "speech_round": _rounded(script.speech_round),
            "gaze": _rounded(script.gaze),
        },
        "pose_names": list(POSE_NAMES),
        "pose": _rounded(script.pose),
        "identity": {
            k: (round(v, 4) if isinstance(v, float) else v) for k, v in vars(ident).items()
        },
    }


def _render_frames(
    ident: Identity, script: ClipScript, size: int, rng: np.random.Generator
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    canvas = build_canvas(rng, ident, size)
    frames, landmarks, parsing = [], [], []
    for t in range(len(script.au)):
        extras = {
            "brow_flash": float(script.brow_flash[t]),
            "blink": float(script.blink[t]),
            "speech": float(script.speech[t]),
            "speech_round": float(script.speech_round[t]),
            "gaze_x": float(script.gaze[t, 0]),
            "gaze_y": float(script.gaze[t, 1]),
        }
        geometry = frame_geometry(ident, script.au[t], extras, script.pose[t], size)
        materials, labels = rasterise(geometry.shapes, size)
        frames.append(compose(materials, canvas, rng))
        landmarks.append(geometry.landmarks)
        parsing.append(labels)
    return frames, np.stack(landmarks).astype(np.float32), np.stack(parsing).astype(np.uint8)


def render_clip(job: _Job) -> dict[str, str]:
    """Render one clip into clips/<clip_id>/ (built in a temporary folder, then renamed, so a
    clip folder that exists is complete). Returns its manifest and description fields."""
    final = job.clips_dir / job.clip_id
    if (final / "params.json").is_file():
        params = json.loads(read_text(final / "params.json"))
        return {"clip_id": job.clip_id, "kind": params["kind"], "text": params["description"]}
    streams = np.random.SeedSequence([job.seed, job.index]).spawn(4)
    identity_rng, script_rng, render_rng, text_rng = (np.random.default_rng(s) for s in streams)
    ident = sample_identity(identity_rng)
    script = sample_clip(script_rng, job.label, job.frames)
    text = describe_clip(script, text_rng)
    frames, landmarks, parsing = _render_frames(ident, script, job.size, render_rng)

    tmp = job.clips_dir / f"{TMP_PREFIX}{job.clip_id}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_clip(tmp, frames, ident.jpeg_quality, landmarks, parsing)
        params = dumps_json(_params(job, ident, script, text), source=f"{tmp}/params.json")
        # A plain write: the folder's rename below is what makes the clip appear whole.
        (tmp / "params.json").write_text(params + "\n", encoding="utf-8")
    except BaseException:  # disk full, interrupted: leave no half-written clip behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        tmp.rename(final)
    except OSError:  # another run finished the same clip first: identical content, keep it
        shutil.rmtree(tmp, ignore_errors=True)
    return {"clip_id": job.clip_id, "kind": script.kind, "text": text}


def _write_clip(
    folder: Path,
    frames: list[np.ndarray],
    quality: int,
    landmarks: np.ndarray,
    parsing: np.ndarray,
) -> None:
    (folder / "frames").mkdir(parents=True)
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / "frames" / f"{t:05d}.jpg", quality=quality)
    write_arrays(folder, landmarks, parsing)


def _check_arguments(clips: int, seed: int, size: int, frames: int) -> None:
    if clips < FOLDS:
        raise FineCLIPERError(f"synth: --clips must be at least {FOLDS} (got {clips})")
    if seed < 0:
        raise FineCLIPERError(f"synth: --seed must be >= 0 (got {seed})")
    if not 32 <= size <= 1024:
        raise FineCLIPERError(f"synth: --size must be within 32..1024 (got {size})")
    if not 2 <= frames <= 512:
        raise FineCLIPERError(f"synth: --frames must be within 2..512 (got {frames})")


def _prepare_out(out: Path, settings: dict[str, Any]) -> None:
    """Refuse a folder that holds something else; resume one with the same settings."""
    meta_path = out / "meta.json"
    if meta_path.is_file():
        try:
            meta = json.loads(read_text(meta_path))
        except (OSError, ValueError) as exc:
            raise FineCLIPERError(f"synth: cannot read {meta_path}: {exc}") from exc
        old = {key: meta.get(key) for key in SETTINGS}
        if old != settings:
            raise FineCLIPERError(
                f"synth: {out} holds a SynthDFER with other settings ({old}); "
                "use another folder or delete it"
            )
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FineCLIPERError(f"synth: {out} exists and is not a SynthDFER folder; choose another")
    clips_dir = out / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(clips_dir)  # from an interrupted run
    write_json(meta_path, {**settings, "complete": False})


def _remove_leftovers(clips_dir: Path) -> None:
    for leftover in clips_dir.glob(f"{TMP_PREFIX}*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _run_jobs(jobs: list[_Job], workers: int, progress: bool) -> Iterator[dict[str, str]]:
    from tqdm import tqdm

    with tqdm(total=len(jobs), desc="SynthDFER", unit="clip", disable=not progress) as bar:
        if workers <= 1:
            for job in jobs:
                yield render_clip(job)
                bar.update()
            return
        # spawn: safe next to threads (torch) in the parent and the same on every platform
        context = multiprocessing.get_context("spawn")
        chunk = max(1, min(8, len(jobs) // (4 * workers)))
        pool = ProcessPoolExecutor(workers, mp_context=context)
        try:
            for outcome in pool.map(render_clip, jobs, chunksize=chunk):
                yield outcome
                bar.update()
        except BaseException as exc:  # drop the queued clips
            # A failure waits for the clips in progress (each cleans up after itself), so no
            # temporary folder appears after the caller's sweep; Ctrl-C does not wait.
            pool.shutdown(wait=not isinstance(exc, KeyboardInterrupt), cancel_futures=True)
            raise
        pool.shutdown()


def _manifest_rows(labels: np.ndarray, folds: np.ndarray) -> Iterable[tuple[str, str, str, int]]:
    for fold in range(1, FOLDS + 1):
        for index, (label, clip_fold) in enumerate(zip(labels, folds, strict=True)):
            split = "test" if clip_fold == fold else "train"
            yield f"clips/{clip_id_of(index)}/frames", CLASSES[label], split, fold


def _parameter_summary() -> dict[str, Any]:
    return {
        "action_units": list(AU_NAMES),
        "signatures": SIGNATURES,
        "kinds": dict(zip(KINDS, KIND_PROBABILITIES, strict=True)),
        "intensity": INTENSITY,
        "confusable": CONFUSABLE,
        "pose": list(POSE_NAMES),
    }


def generate_synth(
    out: Path,
    *,
    clips: int,
    seed: int,
    size: int = 112,
    frames: int = 16,
    workers: int | None = None,
    progress: bool = True,
) -> SynthResult:
    """Render SynthDFER into ``out`` (layout: see the package docstring and docs/synthdfer.md).

    Deterministic for a seed whatever ``workers`` is. Rerunning into a complete or interrupted
    ``out`` with the same settings keeps the finished clips and rewrites the index files.
    """
    _check_arguments(clips, seed, size, frames)
    out = Path(out)
    settings = {
        "generator": GENERATOR,
        "version": VERSION,
        "seed": seed,
        "clips": clips,
        "frames": frames,
        "size": size,
    }
    _prepare_out(out, settings)
    labels = assign_labels(clips, seed)
    folds = assign_folds(labels, seed)
    clips_dir = out / "clips"
    jobs = [
        _Job(clips_dir, i, clip_id_of(i), int(labels[i]), seed, size, frames) for i in range(clips)
    ]
    todo = sum(not (clips_dir / job.clip_id / "params.json").is_file() for job in jobs)
    workers = max(1, min(workers or os.cpu_count() or 1, todo))
    try:
        outcomes = list(_run_jobs(jobs, workers, progress))
        _write_index(out, settings, labels, folds, outcomes)
    except OSError as exc:  # disk full, read-only folder: one line, and no temporary folders
        _remove_leftovers(clips_dir)
        where = f"{exc.filename}: " if exc.filename else ""
        raise FineCLIPERError(
            f"synth: writing {out} failed ({where}{exc.strerror or exc}); finished clips are "
            "kept, rerun with the same settings to resume"
        ) from exc
    except BaseException:
        _remove_leftovers(clips_dir)
        raise
    class_counts, kind_counts = _counts(labels, outcomes)
    return SynthResult(out, clips, frames, size, todo, class_counts, kind_counts)


def _counts(
    labels: np.ndarray, outcomes: list[dict[str, str]]
) -> tuple[dict[str, int], dict[str, int]]:
    class_counts = {CLASSES[k]: int(v) for k, v in sorted(Counter(labels.tolist()).items())}
    kind_counts = dict(sorted(Counter(o["kind"] for o in outcomes).items()))
    return class_counts, kind_counts


def _write_index(
    out: Path,
    settings: dict[str, Any],
    labels: np.ndarray,
    folds: np.ndarray,
    outcomes: list[dict[str, str]],
) -> None:
    """classes.txt, descriptions.jsonl, meta.json and, last, manifest.csv (its presence says
    the folder is complete)."""
    write_text(out / "classes.txt", "".join(f"{name}\n" for name in CLASSES))
    lines = [
        json.dumps({"clip_id": o["clip_id"], "text": o["text"], "label": CLASSES[label]})
        for o, label in zip(outcomes, labels, strict=True)
    ]
    write_text(out / "descriptions.jsonl", "".join(f"{line}\n" for line in lines))
    class_counts, kind_counts = _counts(labels, outcomes)
    fold_sizes = {f"fold{k}": int((folds == k).sum()) for k in range(1, FOLDS + 1)}
    meta = {
        **settings,
        "complete": True,
        "folds": FOLDS,
        "classes": list(CLASSES),
        "class_counts": class_counts,
        "kind_counts": kind_counts,
        "test_clips_per_fold": fold_sizes,
        "params": _parameter_summary(),
    }
    write_json(out / "meta.json", meta)
    with atomic_open(out / "manifest.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "label", "split", "fold"])
        writer.writerows(_manifest_rows(labels, folds))
