"""Settings shared by the whole test session."""

import os

import torch

import itemrec.frontends  # noqa: F401  (registers the front ends, as the CLI does)

if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # `pytest -n N` runs N workers on the machine's cores. torch's default of one OpenMP thread per
    # core in each of them oversubscribes the CPU, and threads spin-waiting on one another made the
    # small-tensor tests about 4x slower in wall time (5x in CPU time) on 2 cores with 2 workers.
    # One thread per worker, inherited by the CLI and torchrun subprocesses the tests start; tests of
    # threading set their own counts.
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
