"""Running a numba `parallel=True` kernel with torch's thread count, and leaving it as it was.

numba's OpenMP threading layer starts its thread pool on a kernel's first parallel launch and,
in doing so, sets the process's OpenMP thread count to numba's own (every core by default):
torch shares that OpenMP runtime, so a `torch.set_num_threads(1)` made before the launch was
silently undone. `run_kernel` runs the kernel with `threads` threads and then restores torch's
count, so `torch.set_num_threads` (and `OMP_NUM_THREADS`) keep meaning what they say.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def kernel_threads(limit: int | None = None) -> int:
    """Threads for a compiled kernel: torch's count, at most numba's pool size and `limit`."""
    import numba

    threads = min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    if limit is not None:
        threads = min(threads, limit)
    return max(1, threads)


def run_kernel(kernel: Callable[..., Any], threads: int, *args: Any) -> Any:
    """`kernel(*args)` on `threads` numba threads; torch's thread count is the same afterwards."""
    import numba

    before = torch.get_num_threads()
    numba.set_num_threads(threads)
    try:
        return kernel(*args)
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
