"""Process memory settings: large temporaries recycled by the allocator instead of mapped afresh."""

from __future__ import annotations

import ctypes

KEEP_MMAP_THRESHOLD = 2**28
"""Allocations below this size come from the heap once `keep_freed_memory()` ran (256 MiB)."""
KEEP_TRIM_THRESHOLD = 2**28
"""Free memory above this much at the top of the heap is returned to the system (256 MiB)."""
GLIBC_MMAP_THRESHOLD_MAX, GLIBC_TRIM_THRESHOLD_MAX = 2**25, 2**26
"""Where glibc's dynamic thresholds end up on 64-bit systems (32 MiB, 64 MiB): `keep=False`."""
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)


def keep_freed_memory(keep: bool = True) -> bool:
    """Have glibc serve large allocations from the heap and keep freed memory there for reuse.

    By default glibc maps every allocation above 32 MiB freshly from the system and unmaps it
    when freed, so each large temporary pays a page fault and a zeroed page per 4 KiB on first
    touch: a `[144 k, 64]` float32 tensor (37 MB, one LightGCN layer on the amazon-book shape)
    costs about 35 ms of faults, 6× the copy itself, and a training batch makes dozens of them.
    With `mallopt(M_MMAP_THRESHOLD, 256 MiB)` and `mallopt(M_TRIM_THRESHOLD, 256 MiB)` they are
    recycled: 1.2-1.4× less CPU per amazon-shape training batch. Freed memory stays mapped for
    reuse, so the resident size stays nearer its peak instead of shrinking between batches. Called by
    the `itemrec` commands that build large tensors (train, evaluate, tune, recommend, search); a
    no-op returning False where there is no glibc `mallopt`. `keep=False` sets glibc's usual steady
    state back (32 MiB, 64 MiB).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mmap, trim = (KEEP_MMAP_THRESHOLD, KEEP_TRIM_THRESHOLD) if keep else (GLIBC_MMAP_THRESHOLD_MAX, GLIBC_TRIM_THRESHOLD_MAX)
    return bool(mallopt(M_MMAP_THRESHOLD, mmap)) and bool(mallopt(M_TRIM_THRESHOLD, trim))
