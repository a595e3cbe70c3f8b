"""Training memory measured on the CPU and projected to a GPU batch (Linux only).

One training step (forward under bf16 autocast, the precision training uses on a GPU, loss,
backward) adds to the process's resident memory everything the step needs beyond the model:
the inputs, the activations kept for the backward pass, the attention workspace and the
gradients of the trainable weights. Its size is the peak resident memory during the step
(``VmHWM``, reset through ``/proc/self/clear_refs``) minus the resident memory just before it.
Steps at two batch sizes give the memory per clip (the slope) and a fixed part; the projection
to a larger batch adds the weights and the AdamW state, which are resident on a GPU too::

    projected(B) = weights + AdamW state + fixed + B x per_clip

It is an estimate of a GPU's peak allocation, not a measurement of one: CPU kernels can keep
other intermediates than CUDA kernels, and CUDA's caching allocator adds fragmentation. It is the
figure to size a card with when no GPU is at hand.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from finecliper.bench.latency import torch_threads
from finecliper.bench.models import ClipShape, build_bench_model, random_clip_batch
from finecliper.errors import FineCLIPERError
from finecliper.model.network import FineCLIPER
from finecliper.runtime.inputs import to_model_inputs

GIB = 2**30
_STATUS = Path("/proc/self/status")


@dataclass
class MemoryResult:
    variant: str
    backbone: str
    frames: int
    image_size: int
    checkpointing: bool
    batches: tuple[int, int]
    step_gib: tuple[float, float]  # what one step added, at each batch size
    per_clip_gib: float
    fixed_gib: float
    resident_gib: float  # weights + AdamW state
    target_batch: int
    projected_gib: float


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise FineCLIPERError(f"{_STATUS}: no {field} line")
    return int(match.group(1))


def _release_freed_memory() -> None:
    """Hand freed heap memory back to the OS (glibc keeps it resident otherwise), so the
    resident size before a step holds only live memory."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if name:
        libc = ctypes.CDLL(name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS


def _train_step(model: FineCLIPER, shape: ClipShape, optimizer: torch.optim.Optimizer) -> None:
    clips = random_clip_batch(shape)
    cpu = torch.device("cpu")
    inputs = to_model_inputs(clips, cpu, modalities=model.modalities, tokenizer=model.tokenizer)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.loss(model(inputs), clips.labels).total
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _step_bytes(model: FineCLIPER, shape: ClipShape, optimizer: torch.optim.Optimizer) -> int:
    """Resident memory one training step at ``shape`` adds at its peak (inputs included)."""
    _release_freed_memory()
    before = _status_kib("VmRSS")
    _reset_peak()
    _train_step(model, shape, optimizer)
    return (_status_kib("VmHWM") - before) * 1024


def run_memory(
    variant: str,
    *,
    backbone: str = "ViT-B/16",
    image_size: int = 224,
    frames: int = 16,
    checkpointing: bool = False,
    batches: tuple[int, int] = (1, 2),
    target_batch: int = 32,
    threads: int | None = None,
) -> MemoryResult:
    """Measure one step at two batch sizes on CPU and project to ``target_batch``."""
    if not _STATUS.is_file():
        raise FineCLIPERError("the memory estimate reads /proc/self/status: Linux only")
    with torch_threads(threads):
        model = build_bench_model(variant, backbone, image_size=image_size, num_frames=frames)
        model.set_grad_checkpointing(checkpointing)
        model.train()
        optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)
        # Warm-up: the AdamW state and lazily created buffers become resident first.
        _train_step(model, ClipShape(batches[0], frames, image_size), optimizer)
        added = [
            _step_bytes(model, ClipShape(batch, frames, image_size), optimizer) for batch in batches
        ]
    per_clip = (added[1] - added[0]) / (batches[1] - batches[0])
    fixed = added[0] - per_clip * batches[0]
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    adamw = 2 * sum(p.numel() * p.element_size() for p in model.trainable_parameters())
    resident = weights + adamw
    return MemoryResult(
        variant=variant,
        backbone=backbone,
        frames=frames,
        image_size=image_size,
        checkpointing=checkpointing,
        batches=batches,
        step_gib=(added[0] / GIB, added[1] / GIB),
        per_clip_gib=per_clip / GIB,
        fixed_gib=fixed / GIB,
        resident_gib=resident / GIB,
        target_batch=target_batch,
        projected_gib=(resident + fixed + per_clip * target_batch) / GIB,
    )
