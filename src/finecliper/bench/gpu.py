"""Model-step benchmarks: training-step and inference clips/s with peak memory, per mode.

The same FineCLIPER variant (random weights, ViT-B/16 at 16 x 224 by default) runs on synthetic
inputs already on the device, so only the model step is timed, as in environment.md's reference
numbers. Modes:

- ``naive``: fp32, attention by the plain math kernel (softmax(QK^T)V, what eager attention code
  computes), no compile: how most DFER code runs.
- ``bf16``: bf16 autocast and fused attention (SDPA's flash / memory-efficient kernels).
- ``compiled``: ``bf16`` plus ``torch.compile`` of the frozen tower's image encoder
  (:meth:`~finecliper.model.network.FineCLIPER.compile_image_tower`).

Our encoder loop calls ``scaled_dot_product_attention`` itself and does not read the config's
``attn_implementation``, so the naive mode restricts SDPA to its math backend instead.

A training step is what ``finecliper train`` does per batch: forward under autocast, loss,
backward, AdamW step over the trainable parameters, zero_grad. Inference is a forward without
gradients, the label prompts encoded once (the predict path). Warm-up steps come first (they
include compilation); the figure is the median of the timed steps, each one synchronised. Peak
memory is CUDA's peak allocation during the timed steps (not measured on CPU). A case that fails
(out of memory, a compiler missing) is reported with its error; the naive mode halves its batch
until it fits, since it is only the reference.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from finecliper.bench.models import (
    ClipShape,
    build_bench_model,
    cached_label_embeddings,
    random_clip_batch,
)
from finecliper.model.batch import ModelInputs
from finecliper.model.network import FineCLIPER
from finecliper.runtime.inputs import to_model_inputs

MODES = ("naive", "bf16", "compiled")
PHASES = ("train", "infer")


@dataclass(frozen=True)
class StepSettings:
    backbone: str = "ViT-B/16"
    image_size: int = 224
    frames: int = 16
    batch: int = 32
    steps: int = 10
    warmup: int = 3
    phases: tuple[str, ...] = PHASES
    seed: int = 0


@dataclass
class StepResult:
    """One (variant, mode) case; rates in clips/s, memory in GiB, None where not measured."""

    variant: str
    mode: str
    device: str
    batch: int
    frames: int
    image_size: int
    checkpointing: bool
    train_clips_per_s: float | None = None
    train_step_ms: float | None = None
    train_peak_gib: float | None = None
    infer_clips_per_s: float | None = None
    infer_step_ms: float | None = None
    infer_peak_gib: float | None = None
    error: str | None = None


def _attention(mode: str) -> AbstractContextManager:
    return sdpa_kernel([SDPBackend.MATH]) if mode == "naive" else nullcontext()


def _autocast(mode: str, device: torch.device) -> AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode != "naive")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(
    step: Callable[[], None], settings: StepSettings, device: torch.device
) -> tuple[float, float | None]:
    """(median seconds per step, peak GiB during the timed steps or None)."""
    for _ in range(settings.warmup):
        step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(settings.steps):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return statistics.median(times), peak


def _device_inputs(
    model: FineCLIPER, settings: StepSettings, batch: int, device: torch.device
) -> tuple[ModelInputs, torch.Tensor]:
    clips = random_clip_batch(ClipShape(batch, settings.frames, settings.image_size), settings.seed)
    inputs = to_model_inputs(clips, device, modalities=model.modalities, tokenizer=model.tokenizer)
    return inputs, clips.labels.to(device)


def _measure(
    result: StepResult, variant: str, settings: StepSettings, device: torch.device
) -> None:
    mode = result.mode
    model = build_bench_model(
        variant,
        settings.backbone,
        image_size=settings.image_size,
        num_frames=settings.frames,
        attention="eager" if mode == "naive" else "sdpa",
        seed=settings.seed,
    ).to(device)
    model.set_grad_checkpointing(result.checkpointing)
    inputs, labels = _device_inputs(model, settings, result.batch, device)
    if mode == "compiled":
        model.compile_image_tower()
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)

    def train_step() -> None:
        with _autocast(mode, device):
            loss = model.loss(model(inputs), labels).total
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def infer_step() -> None:
        with torch.no_grad(), _autocast(mode, device):
            model(inputs)

    with _attention(mode):
        if "train" in settings.phases:
            model.train()
            seconds, result.train_peak_gib = _timed(train_step, settings, device)
            result.train_step_ms = seconds * 1000
            result.train_clips_per_s = result.batch / seconds
        if "infer" in settings.phases:
            model.eval()
            with cached_label_embeddings(model):
                seconds, result.infer_peak_gib = _timed(infer_step, settings, device)
            result.infer_step_ms = seconds * 1000
            result.infer_clips_per_s = result.batch / seconds


def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_step_benchmark(
    variant: str,
    mode: str,
    settings: StepSettings,
    device: torch.device,
    *,
    checkpointing: bool = False,
) -> StepResult:
    """Time one variant in one mode; failures end up in ``error``, not as exceptions."""
    batch = settings.batch
    while True:
        result = _attempt(variant, mode, settings, device, batch, checkpointing)
        out_of_memory = (result.error or "").startswith("out of memory")
        if not (out_of_memory and mode == "naive" and batch > 1):
            return result
        batch //= 2  # the naive mode is only the reference: find a batch that fits


def _attempt(
    variant: str,
    mode: str,
    settings: StepSettings,
    device: torch.device,
    batch: int,
    checkpointing: bool,
) -> StepResult:
    result = StepResult(
        variant, mode, str(device), batch, settings.frames, settings.image_size, checkpointing
    )
    try:
        _measure(result, variant, settings, device)
    except torch.cuda.OutOfMemoryError:
        result.error = f"out of memory at batch {batch}"
    except Exception as exc:  # one failing case (e.g. no compiler) must not end the run
        detail = (str(exc).strip().splitlines() or [""])[0][:300]
        result.error = f"{type(exc).__name__}: {detail}"
    finally:
        _release(device)
    if result.error is None:
        return result
    keep = ("variant", "mode", "device", "batch", "frames", "image_size", "checkpointing")
    return StepResult(**{k: getattr(result, k) for k in keep}, error=result.error)


def speedups(results: list[StepResult]) -> dict[str, float | None]:
    """Per variant: best non-naive training clips/s over the naive one (None: not measured)."""
    ratios: dict[str, float | None] = {}
    for variant in dict.fromkeys(r.variant for r in results):
        mine = [r for r in results if r.variant == variant and r.train_clips_per_s]
        naive = [r.train_clips_per_s for r in mine if r.mode == "naive"]
        fast = [r.train_clips_per_s for r in mine if r.mode != "naive"]
        ratios[variant] = max(fast) / naive[0] if naive and fast else None  # type: ignore[operator]
    return ratios
