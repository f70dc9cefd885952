"""Approximate PPR against exact on ml-1m: hard-negative pool overlap and time, per method.

    python benchmarks/ppr.py            # written to benchmarks/RESULTS.md
    python benchmarks/ppr.py --quick    # walks only, printed

ml-1m, ratings >= 3, random 0.8/0.1/0.1 split, seed 0 (the data of configs/recsys/ml1m_*).
Each method computes every user's top 600 PPR items (α 0.15, 10 two-hop iterations), training
positives excluded; the hard-negative pool is ranks 101..600 (`ppr_skip` 100, `ppr_topk` 500, the
defaults). Overlap: |pool ∩ exact pool| / 500, averaged over users; also for the skipped top 100.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import machine, write_section
from itemrec.recsys.data import SplitSpec, load_dataset
from itemrec.recsys.sampling import ppr_scores
from itemrec.recsys.sampling.ppr_local import approximate_ppr_scores

SKIP, POOL = 100, 500
CASES = {  # label: keyword arguments of approximate_ppr_scores
    "walks, 200 walks × 1 hop (default)": {"method": "walks", "walks": 200, "hops": 1},
    "walks, 100 walks × 1 hop": {"method": "walks", "walks": 100, "hops": 1},
    "walks, 200 walks × 3 hops": {"method": "walks", "walks": 200, "hops": 3},
    "walks, 200 walks × 9 hops (no closed-form tail)": {"method": "walks", "walks": 200, "hops": 9},
    "push, ε 1e-6": {"method": "push", "eps": 1e-6},
    "push, ε 1e-7 (default)": {"method": "push", "eps": 1e-7},
}


def overlap(table: np.ndarray, exact: np.ndarray, lo: int, hi: int) -> float:
    return float(np.mean([len(np.intersect1d(a[lo:hi], b[lo:hi])) / (hi - lo) for a, b in zip(table, exact, strict=True)]))


def measure(quick: bool) -> tuple[list[tuple[str, float, float, float]], dict[str, object]]:
    load = os.getloadavg()[0]
    data = load_dataset("ml-1m", min_rating=3, split=SplitSpec("random"), seed=0, quiet=True)
    start = time.perf_counter()
    exact, _ = ppr_scores(data.train, topk=SKIP + POOL)
    rows = [("exact power iteration", time.perf_counter() - start, 1.0, 1.0)]
    print(f"{rows[-1][0]}: {rows[-1][1]:.1f} s", flush=True)
    exact_np = exact.numpy()
    cases = {k: v for k, v in CASES.items() if not quick or ("default" in k and v["method"] == "walks")}
    for label, kwargs in cases.items():
        start = time.perf_counter()
        table, _ = approximate_ppr_scores(data.train, topk=SKIP + POOL, seed=0, **kwargs)
        seconds = time.perf_counter() - start
        table_np = table.numpy()
        rows.append((label, seconds, overlap(table_np, exact_np, SKIP, SKIP + POOL), overlap(table_np, exact_np, 0, SKIP)))
        print(f"{label}: {seconds:.1f} s, pool overlap {rows[-1][2]:.3f}, top-100 overlap {rows[-1][3]:.3f}", flush=True)
    return rows, {"users": data.n_users, "items": data.n_items, "train": data.train.nnz, "load": load}


def markdown(rows: list[tuple[str, float, float, float]], info: dict[str, object]) -> str:
    lines = [
        "## PPR: approximate methods against exact on ml-1m",
        "",
        "`python benchmarks/ppr.py`",
        "",
        f"Machine: {machine()}",
        "",
        f"ml-1m, ratings >= 3, random 0.8/0.1/0.1 split, seed 0: {info['users']:,} users, {info['items']:,} items, "
        f"{info['train']:,} training interactions. Every user's top 600 (α 0.15, 10 two-hop iterations), "
        "positives excluded. Pool overlap: the hard-negative pool (ranks 101..600) shared with exact's, "
        f"averaged over users. 1-minute load average before the run: {info['load']:.1f} (the machine was "
        "shared; times are wall seconds on 2 cores and grow with the load).",
        "",
        "| method | seconds | pool overlap (101..600) | top-100 overlap |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {label} | {seconds:.1f} | {pool:.3f} | {top:.3f} |" for label, seconds, pool, top in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the default walks only; print only")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows, info = measure(args.quick)
    text = markdown(rows, info)
    print(text)
    if not args.quick:
        write_section("ppr", text)


if __name__ == "__main__":
    main()
