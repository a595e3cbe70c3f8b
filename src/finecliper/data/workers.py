"""Set-up of DataLoader worker processes.

A worker allocates and frees several multi-megabyte tensors per clip (decoded frames, the
crop's copies, the resized frames). glibc's default allocator hands such buffers back to the
operating system when they are freed (``munmap``, or trimming the heap), so the next clip gets
fresh pages and pays a page fault for every 4 KiB of them. On the 2-core development VM that was
about a third of a 224 px worker's CPU time (docs/benchmarks.md). Raising the thresholds keeps
freed buffers in the worker's heap for the next clip. Workers are dedicated processes, so this
is applied there only, never to the training process.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 << 20  # buffers up to this size come from the heap, and are reused
TRIM_THRESHOLD = 512 << 20  # free heap kept before any is returned to the system


def reuse_freed_buffers() -> bool:
    """Keep freed buffers for reuse in this process; False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows): nothing to tune
        return False
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def init_worker(_worker_id: int) -> None:
    """``worker_init_fn`` of the training and evaluation loaders."""
    reuse_freed_buffers()
