"""Approximate PPR against exact on ml-1m: hard-negative pool overlap and time, per method.

    python -m benchmarks.ppr            # written to benchmarks/RESULTS.md
    python -m benchmarks.ppr --quick    # walks only, printed

ml-1m, ratings >= 3, random 0.8/0.1/0.1 split, seed 0 (the data of configs/recsys/ml1m_*).
Each method computes every user's top 600 PPR items (α 0.15, 10 two-hop iterations), training
positives excluded; the hard-negative pool is ranks 101..600 (`ppr_skip` 100, `ppr_topk` 500, the
defaults). Overlap: |pool ∩ exact pool| / 500, averaged over users; also for the skipped top 100.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from benchmarks.harness import (
    Stopwatch,
    command,
    machine,
    markdown_table,
    parser,
    write_section,
    writes,
)
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
    """Mean over users of the share of ranks `lo..hi` that `table` and `exact` have in common."""
    return float(np.mean([len(np.intersect1d(a[lo:hi], b[lo:hi])) / (hi - lo) for a, b in zip(table, exact, strict=True)]))


def measure(quick: bool) -> tuple[list[tuple[str, float, float, float]], dict[str, object]]:
    """(method, seconds, pool overlap, top-100 overlap) per method, and the data's sizes."""
    load = os.getloadavg()[0]
    data = load_dataset("ml-1m", min_rating=3, split=SplitSpec("random"), seed=0, quiet=True)
    with Stopwatch() as watch:
        exact, _ = ppr_scores(data.train, topk=SKIP + POOL)
    rows = [("exact power iteration", watch.wall, 1.0, 1.0)]
    print(f"{rows[-1][0]}: {rows[-1][1]:.1f} s", flush=True)
    exact_np = exact.numpy()
    cases = {k: v for k, v in CASES.items() if not quick or ("default" in k and v["method"] == "walks")}
    for label, kwargs in cases.items():
        with Stopwatch() as watch:
            table, _ = approximate_ppr_scores(data.train, topk=SKIP + POOL, seed=0, **kwargs)
        table_np = table.numpy()
        rows.append((label, watch.wall, overlap(table_np, exact_np, SKIP, SKIP + POOL), overlap(table_np, exact_np, 0, SKIP)))
        print(f"{label}: {watch.wall:.1f} s, pool overlap {rows[-1][2]:.3f}, top-100 overlap {rows[-1][3]:.3f}", flush=True)
    return rows, {"users": data.n_users, "items": data.n_items, "train": data.train.nnz, "load": load}


def markdown(rows: list[tuple[str, float, float, float]], info: dict[str, object]) -> str:
    table = markdown_table(
        ["method", "seconds", "pool overlap (101..600)", "top-100 overlap"],
        [[label, f"{seconds:.1f}", f"{pool:.3f}", f"{top:.3f}"] for label, seconds, pool, top in rows],
    )
    return "\n".join([
        "## PPR: approximate methods against exact on ml-1m",
        "",
        f"`{command('ppr')}`",
        "",
        f"Machine: {machine()}",
        "",
        f"ml-1m, ratings >= 3, random 0.8/0.1/0.1 split, seed 0: {info['users']:,} users, {info['items']:,} items, "
        f"{info['train']:,} training interactions. Every user's top 600 (α 0.15, 10 two-hop iterations), "
        "positives excluded. Pool overlap: the hard-negative pool (ranks 101..600) shared with exact's, "
        f"averaged over users. 1-minute load average before the run: {info['load']:.1f} (the machine was "
        "shared; times are wall seconds on 2 cores and grow with the load).",
        "",
        table,
    ]) + "\n"


def main() -> None:
    args = parser(__doc__, quick="the default walks only; print only").parse_args()
    torch.manual_seed(0)
    rows, info = measure(args.quick)
    text = markdown(rows, info)
    print(text)
    if writes(args):
        write_section("ppr", text, args.results)


if __name__ == "__main__":
    main()
