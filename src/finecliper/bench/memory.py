"""Training memory measured on the CPU and projected to a GPU batch (Linux only).

Method. One training step (forward under bf16 autocast, the precision training uses on a GPU,
loss, backward, AdamW) adds to the memory everything the step needs beyond the model: the
inputs, the activations kept for the backward pass, the transients of the backward pass and the
gradients of the trainable weights. Two measures of that, at once:

- live tensor bytes (the projection's basis): a ``TorchDispatchMode`` sees every tensor an op
  creates during the step and counts its storage until it is freed; the step's figure is the
  peak of that sum. It is what ``torch.cuda.max_memory_allocated`` counts on a GPU, free of
  any allocator's slack.
- resident memory (an upper bound): the peak resident size during the step (``VmHWM``, reset
  through ``/proc/self/clear_refs``) minus the resident size just before it. glibc keeps freed
  blocks of under 32 MB in its heap, so it also counts that slack (2 to 3x the live bytes of a
  checkpointed step).

Steps at two batch sizes give the memory per clip (the slope) and a fixed part (label prompts,
the bf16 copies of the frozen weights autocast makes and autograd keeps). The projection to a
larger batch adds the weights and the AdamW state, which are resident on a GPU too::

    projected(B) = weights + AdamW state + fixed + B x per_clip

:func:`check_projection` validates it: the projection from two small batches against a real
measurement at a larger one. :func:`analytic_saved_bytes` explains the per-clip figure: the
activations each encoder block keeps per token (tokens x bytes x layers x images per clip).
Still an estimate of a GPU's peak, not a measurement of one: CUDA kernels can keep other
workspaces than CPU ones, and CUDA's caching allocator reserves more than it allocates.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import re
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from finecliper.bench.latency import torch_threads
from finecliper.bench.models import ClipShape, build_bench_model, random_clip_batch
from finecliper.errors import FineCLIPERError
from finecliper.model.batch import ModelInputs
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
    step_gib: tuple[float, float]  # live tensor bytes one step added, at each batch size
    per_clip_gib: float
    fixed_gib: float
    resident_gib: float  # weights + AdamW state
    target_batch: int
    projected_gib: float
    rss_step_gib: tuple[float, float]  # resident memory one step added (allocator slack too)
    rss_per_clip_gib: float
    rss_projected_gib: float


@dataclass
class StepMemory:
    live_bytes: int  # peak of the tensors the step created
    rss_bytes: int  # peak resident memory the step added


@dataclass
class ProjectionCheck:
    batches: tuple[int, int]
    check_batch: int
    predicted_gib: float  # step memory at check_batch, from the two small batches
    measured_gib: float

    @property
    def error(self) -> float:
        """Relative error of the prediction (positive: it over-estimates)."""
        return self.predicted_gib / self.measured_gib - 1.0


class LiveTensorBytes(TorchDispatchMode):
    """Counts the storage of every tensor an op creates while active until it is freed, and the
    peak of that count. Views and in-place results share an input's storage: not counted."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._tracked: dict[int, weakref.finalize] = {}

    def _freed(self, address: int, size: int) -> None:
        self._tracked.pop(address, None)
        self.live -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage().data_ptr()
            for t in tree_leaves((args, kwargs))
            if isinstance(t, torch.Tensor)
        }
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                self._track(tensor.untyped_storage(), inputs)
        return out

    def _track(self, storage: torch.UntypedStorage, inputs: set[int]) -> None:
        address = storage.data_ptr()
        if address == 0 or address in inputs or address in self._tracked:
            return
        size = storage.nbytes()
        self._tracked[address] = weakref.finalize(storage, self._freed, address, size)
        self.live += size
        self.peak = max(self.peak, self.live)


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


def _model_inputs(model: FineCLIPER, shape: ClipShape) -> tuple[ModelInputs, torch.Tensor]:
    clips = random_clip_batch(shape)
    cpu = torch.device("cpu")
    inputs = to_model_inputs(clips, cpu, modalities=model.modalities, tokenizer=model.tokenizer)
    return inputs, clips.labels


def _train_step(model: FineCLIPER, shape: ClipShape, optimizer: torch.optim.Optimizer) -> None:
    inputs, labels = _model_inputs(model, shape)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.loss(model(inputs), labels).total
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def measure_step(
    model: FineCLIPER, shape: ClipShape, optimizer: torch.optim.Optimizer
) -> StepMemory:
    """Memory one training step at ``shape`` adds at its peak (inputs included)."""
    if not _STATUS.is_file():
        raise FineCLIPERError("the memory estimate reads /proc/self/status: Linux only")
    _release_freed_memory()
    before = _status_kib("VmRSS")
    _reset_peak()
    with LiveTensorBytes() as live:
        _train_step(model, shape, optimizer)
    return StepMemory(live.peak, (_status_kib("VmHWM") - before) * 1024)


def _slope(values: tuple[int, int], batches: tuple[int, int]) -> tuple[float, float]:
    """(per clip, fixed) of a line through two (batch, bytes) points."""
    per_clip = (values[1] - values[0]) / (batches[1] - batches[0])
    return per_clip, values[0] - per_clip * batches[0]


def _bench_training_model(
    variant: str, backbone: str, image_size: int, frames: int, checkpointing: bool
) -> tuple[FineCLIPER, torch.optim.Optimizer]:
    model = build_bench_model(variant, backbone, image_size=image_size, num_frames=frames)
    model.set_grad_checkpointing(checkpointing)
    model.train()
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)
    # Warm-up: the AdamW state and lazily created buffers become resident first.
    _train_step(model, ClipShape(1, frames, image_size), optimizer)
    return model, optimizer


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
    with torch_threads(threads):
        model, optimizer = _bench_training_model(
            variant, backbone, image_size, frames, checkpointing
        )
        steps = [
            measure_step(model, ClipShape(batch, frames, image_size), optimizer)
            for batch in batches
        ]
    live = (steps[0].live_bytes, steps[1].live_bytes)
    rss = (steps[0].rss_bytes, steps[1].rss_bytes)
    per_clip, fixed = _slope(live, batches)
    rss_per_clip, rss_fixed = _slope(rss, batches)
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
        step_gib=(live[0] / GIB, live[1] / GIB),
        per_clip_gib=per_clip / GIB,
        fixed_gib=fixed / GIB,
        resident_gib=resident / GIB,
        target_batch=target_batch,
        projected_gib=(resident + fixed + per_clip * target_batch) / GIB,
        rss_step_gib=(rss[0] / GIB, rss[1] / GIB),
        rss_per_clip_gib=rss_per_clip / GIB,
        rss_projected_gib=(resident + rss_fixed + rss_per_clip * target_batch) / GIB,
    )


def check_projection(
    variant: str,
    *,
    backbone: str = "ViT-B/16",
    image_size: int = 112,
    frames: int = 8,
    checkpointing: bool = False,
    batches: tuple[int, int] = (1, 2),
    check_batch: int = 4,
    threads: int | None = None,
) -> ProjectionCheck:
    """The live-bytes step memory at ``check_batch`` as projected from ``batches``, and as
    measured: the projection's validation at sizes a CPU can run."""
    with torch_threads(threads):
        model, optimizer = _bench_training_model(
            variant, backbone, image_size, frames, checkpointing
        )
        small = [
            measure_step(model, ClipShape(batch, frames, image_size), optimizer).live_bytes
            for batch in batches
        ]
        shape = ClipShape(check_batch, frames, image_size)
        measured = measure_step(model, shape, optimizer).live_bytes
    per_clip, fixed = _slope((small[0], small[1]), batches)
    return ProjectionCheck(
        batches, check_batch, (fixed + per_clip * check_batch) / GIB, measured / GIB
    )


def block_saved_bytes(
    tokens: int,
    width: int,
    mlp_width: int,
    heads: int,
    bottlenecks: dict[str, int],
    first: bool,
) -> int:
    """Activation bytes one encoder block (``model.backbone._block``) keeps for backward under
    bf16 autocast, per sequence of ``tokens``; ``bottlenecks``: placement -> adapter width.

    The frozen linear layers keep no input (their weights need no gradient); the first block's
    input needs no gradient either, so its attention keeps nothing.
    """
    fp32, bf16 = 4, 2
    per_token = bf16 * mlp_width  # QuickGELU's input
    if not first:  # LayerNorm 1's input and statistics; attention's q, k, v, output, logsumexp
        per_token += fp32 * width + 8 + 4 * bf16 * width + fp32 * heads
    if not first or "attention" in bottlenecks:  # LayerNorm 2's input and statistics
        per_token += fp32 * width + 8
    for bottleneck in bottlenecks.values():  # adapter input (bf16), down output, GELU output
        per_token += bf16 * width + 2 * bf16 * bottleneck
    return tokens * per_token


def _adapter_widths(adapters: Any) -> dict[str, int]:
    block = adapters.block(0)
    found = {"attention": block.attention, "mlp": block.mlp}
    return {name: a.down.out_features for name, a in found.items() if a is not None}


def tower_saved_bytes(tower_config: Any, adapters: Any, tokens: int) -> int:
    """:func:`block_saved_bytes` over every block of a tower (HF vision or text config)."""
    widths = _adapter_widths(adapters)
    return sum(
        block_saved_bytes(
            tokens,
            tower_config.hidden_size,
            tower_config.intermediate_size,
            tower_config.num_attention_heads,
            widths,
            first=index == 0,
        )
        for index in range(tower_config.num_hidden_layers)
    )


def clip_saved_bytes(model: FineCLIPER, image_size: int, frames: int, text_tokens: int) -> int:
    """Activations the frozen towers keep per clip: every visual stream's frames through the
    image tower, and the description through the text tower."""
    config = model.backbone.config
    vision = config.vision_config
    tokens = (image_size // vision.patch_size) ** 2 + 1
    pooled_norm = 4 * vision.hidden_size + 8  # the final LayerNorm's input: the CLS token
    total = sum(
        frames * (tower_saved_bytes(vision, adapters, tokens) + pooled_norm)
        for adapters in model.visual_adapters.values()
    )
    if model.text_adapters is not None:
        total += tower_saved_bytes(config.text_config, model.text_adapters, text_tokens)
    return total
