"""numba, imported so that its parallel kernels keep torch's thread count.

numba's OpenMP threading layer starts its thread pool on a kernel's first parallel launch and,
in doing so, sets the process's OpenMP thread count to its pool size (every core by default):
torch shares that OpenMP runtime, so a `torch.set_num_threads(1)` made before the launch was
silently undone. `load_numba` sizes numba's pool to torch's count when it imports numba for the
first time (`NUMBA_NUM_THREADS`, unless the user set it), so the launch leaves the count as it
is; `kernel_threads` gives a kernel torch's current count, at most the pool's.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

import torch


def load_numba() -> ModuleType:
    """The numba module; on its first import its pool is sized to `torch.get_num_threads()`."""
    if "numba" not in sys.modules:
        os.environ.setdefault("NUMBA_NUM_THREADS", str(max(1, torch.get_num_threads())))
    import numba

    return numba


def kernel_threads(limit: int | None = None) -> int:
    """Threads for a compiled kernel: torch's count, at most numba's pool size and `limit`."""
    numba = load_numba()
    threads = min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    if limit is not None:
        threads = min(threads, limit)
    return max(1, threads)


def run_kernel(kernel, threads: int, *args):
    """`kernel(*args)` on `threads` numba threads."""
    load_numba().set_num_threads(threads)
    return kernel(*args)
