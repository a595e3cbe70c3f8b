"""TSN-style frame sampling: which frame indices of a clip feed the model (docs/method.md 3).

A clip of ``n`` frames is cut into ``k`` equal segments; segment ``i`` holds the frames
``[i * n // k, (i + 1) * n // k)``. Training draws one random frame from each segment; testing
takes each segment's centre frame, ``start + length // 2`` (the later of the two middle frames
for an even length, as the classic TSN tick), so evaluation is deterministic. A clip shorter
than ``k`` frames uses every frame once and repeats its last frame up to ``k``: short clips are
padded, never dropped.
"""

from __future__ import annotations

import numpy as np
import torch

from finecliper.errors import FineCLIPERError

Generator = torch.Generator | np.random.Generator


def segment_indices(
    num_frames: int,
    num_segments: int = 16,
    *,
    train: bool,
    generator: Generator | None = None,
) -> list[int]:
    """Frame indices (length ``num_segments``, non-decreasing) to read from a clip.

    ``generator`` seeds the training draw (torch or numpy); ``None`` uses torch's global RNG,
    which a DataLoader re-seeds per worker. The test sampler ignores it.
    """
    if num_frames <= 0:
        raise FineCLIPERError(f"cannot sample a clip with {num_frames} frames (need at least 1)")
    if num_segments <= 0:
        raise FineCLIPERError(f"num_segments must be positive, got {num_segments}")
    if num_frames < num_segments:
        return list(range(num_frames)) + [num_frames - 1] * (num_segments - num_frames)
    starts = [i * num_frames // num_segments for i in range(num_segments + 1)]
    if not train:
        return [starts[i] + (starts[i + 1] - starts[i]) // 2 for i in range(num_segments)]
    uniforms = _uniforms(num_segments, generator)
    indices = []
    for i, u in enumerate(uniforms):
        length = starts[i + 1] - starts[i]
        # min() guards the u == 1.0 edge that float rounding could produce.
        indices.append(starts[i] + min(int(u * length), length - 1))
    return indices


def _uniforms(count: int, generator: Generator | None) -> list[float]:
    """``count`` floats in [0, 1) from the given generator (or torch's global one)."""
    if isinstance(generator, np.random.Generator):
        return generator.random(count).tolist()
    if generator is None or isinstance(generator, torch.Generator):
        device = generator.device if generator is not None else "cpu"
        return torch.rand(count, generator=generator, device=device, dtype=torch.float64).tolist()
    raise TypeError(f"generator must be a torch or numpy Generator, got {type(generator)!r}")
