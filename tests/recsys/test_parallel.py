"""A compiled kernel leaves torch's thread count as it was."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from itemrec.recsys.parallel import kernel_threads


def test_kernel_threads_follow_torch_and_the_limit():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert kernel_threads() == 1 and kernel_threads(limit=5) == 1
        assert kernel_threads(limit=0) == 1  # never below one
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 cores: one thread must differ from numba's pool")
def test_a_single_thread_setting_survives_the_first_propagation():
    # In a fresh process: numba's pool starts on the first compiled product and used to reset
    # the OpenMP thread count that torch shares to every core.
    code = textwrap.dedent("""
        import numpy as np, scipy.sparse as sp, torch, warnings
        warnings.simplefilter("ignore")
        torch.set_num_threads(1)
        from itemrec.recsys.models.graph import spmm
        a = sp.random(60, 60, density=0.2, format="csr", random_state=0, dtype=np.float32)
        adj = torch.sparse_csr_tensor(torch.from_numpy(a.indptr.astype(np.int64)),
            torch.from_numpy(a.indices.astype(np.int64)), torch.from_numpy(a.data), size=(60, 60))
        x = torch.randn(60, 8)
        assert torch.allclose(spmm(adj, x), torch.from_numpy(a.toarray()) @ x, atol=1e-5)
        print(torch.get_num_threads())
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
