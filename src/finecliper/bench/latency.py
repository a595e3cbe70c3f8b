"""Predict latency on CPU: one clip through FineCLIPER against the bare CLIP forward on it.

- ``predict``: the model's whole inference for one 16-frame clip from its uint8 data: rendering
  of the parsing and landmark images, CLIP normalisation and description tokenization
  (``to_model_inputs``), the forward with the label-prompt embeddings encoded once beforehand
  (:func:`~finecliper.bench.models.cached_label_embeddings`), softmax.
- ``bare``: the plain Hugging Face CLIP forward on the same prepared inputs: the vision tower and
  projection over every image stream the variant uses (16 frames each) and, for variants with
  descriptions, the text tower on the description. The ratio is thus the price of FineCLIPER's
  adapters, temporal module, heads and input preparation over the backbone work the clip needs.
- ``predict_uncached``: as ``predict`` but with the 2C label prompts encoded in the forward, as
  ``FineCLIPER.forward`` does today.

The runs are interleaved, so a machine whose load drifts slows all of them alike; medians are
reported, of wall time (the latency a user sees) and of the process's CPU time. The ratios use
CPU time: on a machine shared with other jobs, wall time also counts the time the process waits
for a core, which has nothing to do with the model. ``threads`` fixes torch's intra-op threads;
with 1 thread, CPU time is the compute time itself.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from transformers import CLIPModel

from finecliper.bench.models import (
    ClipShape,
    build_bench_model,
    cached_label_embeddings,
    random_clip_batch,
)
from finecliper.model.batch import ModelInputs
from finecliper.runtime.inputs import to_model_inputs


@dataclass
class LatencyResult:
    variant: str
    backbone: str
    frames: int
    image_size: int
    threads: int
    repeats: int
    bare_images: int  # images through the vision tower in the bare forward
    bare_text: bool  # whether the bare forward encodes the description too
    bare_ms: float  # wall time
    predict_ms: float
    predict_uncached_ms: float
    prepare_ms: float  # of predict: rendering, normalisation, tokenization
    bare_cpu_ms: float  # CPU time of the process
    predict_cpu_ms: float
    predict_uncached_cpu_ms: float
    ratio: float  # predict / bare, CPU time
    ratio_uncached: float


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run with ``threads`` intra-op threads (None: keep torch's setting); yields the count."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def bare_forward(
    clip: CLIPModel, modalities: tuple[str, ...], inputs: ModelInputs
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The plain CLIP work for a clip's inputs: projected embeddings of every image of every
    stream the variant uses (streams concatenated), and of the description (or None)."""
    streams = [inputs.frames]
    if "parsing" in modalities and inputs.parsing is not None:
        streams.append(inputs.parsing)
    if "landmark" in modalities and inputs.landmarks is not None:
        streams.append(inputs.landmarks)
    pixels = torch.cat([stream.flatten(0, 1) for stream in streams])
    images = clip.visual_projection(clip.vision_model(pixel_values=pixels).pooler_output)
    if "text" not in modalities or inputs.description_ids is None:
        return images, None
    text = clip.text_model(input_ids=inputs.description_ids, attention_mask=inputs.description_mask)
    return images, clip.text_projection(text.pooler_output)


def _seconds(run: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def run_latency(
    variant: str,
    *,
    backbone: str = "ViT-B/16",
    image_size: int = 224,
    frames: int = 16,
    repeats: int = 3,
    threads: int | None = None,
    seed: int = 0,
) -> LatencyResult:
    """Median latencies of one clip on CPU (see the module docstring)."""
    with torch_threads(threads) as used, torch.no_grad():
        model = build_bench_model(
            variant, backbone, image_size=image_size, num_frames=frames, seed=seed
        ).eval()
        clip = random_clip_batch(ClipShape(1, frames, image_size), seed)
        cpu = torch.device("cpu")

        def prepare() -> ModelInputs:
            return to_model_inputs(
                clip, cpu, modalities=model.modalities, tokenizer=model.tokenizer
            )

        def predict() -> torch.Tensor:
            return model(prepare()).logits.softmax(dim=-1)

        inputs = prepare()
        runs: dict[str, Callable[[], object]] = {
            "bare": lambda: bare_forward(model.backbone.clip, model.modalities, inputs),
            "predict_uncached": predict,
            "prepare": prepare,
        }
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in (*runs, "predict")}
        for repeat in range(repeats + 1):  # the first round warms up and is not counted
            measured = {name: _seconds(run) for name, run in runs.items()}
            with cached_label_embeddings(model):
                measured["predict"] = _seconds(predict)
            if repeat:
                for name, seconds in measured.items():
                    times[name].append(seconds)
    ms = {name: statistics.median(w for w, _ in values) * 1000 for name, values in times.items()}
    cpu = {name: statistics.median(c for _, c in values) * 1000 for name, values in times.items()}
    visual = [m for m in model.modalities if m != "text"]
    return LatencyResult(
        variant=variant,
        backbone=backbone,
        frames=frames,
        image_size=image_size,
        threads=used,
        repeats=repeats,
        bare_images=frames * len(visual),
        bare_text="text" in model.modalities,
        bare_ms=ms["bare"],
        predict_ms=ms["predict"],
        predict_uncached_ms=ms["predict_uncached"],
        prepare_ms=ms["prepare"],
        bare_cpu_ms=cpu["bare"],
        predict_cpu_ms=cpu["predict"],
        predict_uncached_cpu_ms=cpu["predict_uncached"],
        ratio=cpu["predict"] / cpu["bare"],
        ratio_uncached=cpu["predict_uncached"] / cpu["bare"],
    )
