"""One process, or several under ``torchrun`` (DistributedDataParallel), with the same code.

Evaluation shards the test split without padding (clip i goes to rank i mod world) and gathers
the predictions once, by clip index, so every test clip is counted exactly once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch.distributed as dist
from torch.utils.data import Sampler


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def init_distributed(device_type: str) -> Context:
    """Join the process group that ``torchrun`` describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return Context(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


class ShardSampler(Sampler[int]):
    """Indices rank, rank + world, ...: a partition of the dataset, no padding duplicates."""

    def __init__(self, size: int, context: Context) -> None:
        self.size = size
        self.context = context

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.context.rank, self.size, self.context.world))

    def __len__(self) -> int:
        return len(range(self.context.rank, self.size, self.context.world))


def gather_objects(value: Any, context: Context) -> list[Any]:
    """Every rank's ``value``, in rank order (just ``[value]`` in one process)."""
    if not context.distributed:
        return [value]
    gathered: list[Any] = [None] * context.world
    dist.all_gather_object(gathered, value)
    return gathered


def broadcast_object(value: Any, context: Context) -> Any:
    if not context.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(context: Context) -> None:
    if context.distributed:
        dist.barrier()
