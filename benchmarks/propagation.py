"""Time one LightGCN propagation per backend, and PPR for every user, on ml-1m.

    python -m benchmarks.propagation            # all cases, written to benchmarks/RESULTS.md
    python -m benchmarks.propagation --quick    # fewer repeats, printed, nothing written

ml-1m, ratings >= 3, random 0.8/0.1/0.1 split, seed 0; LightGCN 64-d, 3 layers. "forward +
backward" is one full-graph propagation (`model()`) and the backward of a loss touching every
output row; "forward" is `model()` under `no_grad`. Each case is timed several times after a
warm-up and the median is reported (other processes may share the machine).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from benchmarks.harness import (
    command,
    machine,
    markdown_table,
    median_of,
    parser,
    write_section,
    writes,
)
from itemrec.recsys.data import SplitSpec, load_dataset
from itemrec.recsys.models import LightGCN
from itemrec.recsys.models.graph import torch_sparse
from itemrec.recsys.sampling import TrainPositives, UniformNegatives, ppr_scores, training_rows

BACKENDS = {
    "torch_geometric `LGConv` on `edge_index`": "pyg",
    "`torch.sparse.mm` COO, autograd": "coo",
    "`torch.sparse.mm` CSR, autograd": "csr",
    "torch-sparse `SparseTensor`, autograd": "torch_sparse",
    "CSR, custom autograd (Â reused for backward)": "fast",
}


def forward_backward(model: LightGCN) -> Callable[[], None]:
    """One propagation and the backward of a loss touching every output row."""
    weight_u = torch.randn(model.n_users, model.dim)
    weight_i = torch.randn(model.n_items, model.dim)

    def run() -> None:
        model.zero_grad(set_to_none=True)
        users, items = model()
        ((users * weight_u).sum() + (items * weight_i).sum()).backward()

    return run


def forward_only(model: LightGCN) -> Callable[[], None]:
    """One propagation without autograd."""
    def run() -> None:
        with torch.no_grad():
            model()

    return run


def timed_case(results: list[tuple[str, float]], label: str, run: Callable[[], object], repeats: int) -> None:
    """Append `(label, median seconds of run)` to `results` and print it."""
    results.append((label, median_of(run, repeats)))
    print(f"{label}: {results[-1][1]:.3f} s", flush=True)


def measure(quick: bool) -> tuple[list[tuple[str, float]], dict[str, object]]:
    """(case, median seconds) per case, and the data's sizes and the load before the run."""
    load_before = os.getloadavg()[0]
    data = load_dataset("ml-1m", min_rating=3, split=SplitSpec("random"), seed=0, quiet=True)
    n_users, n_items = data.train.shape
    results: list[tuple[str, float]] = []
    for label, backend in BACKENDS.items():
        if backend == "torch_sparse" and torch_sparse is None:
            print(f"{label}: skipped (torch-sparse not installed)")
            continue
        torch.manual_seed(0)
        model = LightGCN(n_users, n_items, data.train, dim=64, layers=3, propagation=backend)
        repeats = 2 if quick else (3 if backend == "pyg" else 11)
        timed_case(results, f"{label}: forward + backward", forward_backward(model), repeats)
        if backend == "fast":
            timed_case(results, "CSR: forward only (no autograd)", forward_only(model), 2 if quick else 11)

    generator = torch.Generator().manual_seed(0)
    positives = TrainPositives(data.train)
    sampler = UniformNegatives(data.train)
    users = torch.randperm(n_users, generator=generator)[:4096]
    timed_case(results, "training rows, 4,096 users × (64 positives + 256 uniform negatives)",
               lambda: training_rows(users, positives, 64, 256, sampler, generator), 2 if quick else 7)
    timed_case(results, f"PPR top-100 for all {n_users:,} users (α 0.15, 10 two-hop iterations, batches of 512)",
               lambda: ppr_scores(data.train, alpha=0.15, iterations=10, topk=100), 1 if quick else 3)
    info = {"users": n_users, "items": n_items, "train": data.train.nnz, "load": load_before}
    return results, info


def markdown(results: list[tuple[str, float]], info: dict[str, object]) -> str:
    return "\n".join([
        "## Propagation: LightGCN backends and PPR on ml-1m",
        "",
        f"`{command('propagation')}`",
        "",
        f"Machine: {machine()}",
        "",
        f"ml-1m, ratings >= 3, random 0.8/0.1/0.1 split, seed 0: {info['users']:,} users, "
        f"{info['items']:,} items, {info['train']:,} training interactions; LightGCN 64-d, 3 layers. "
        "One full-graph propagation; median of several runs after a warm-up. "
        f"1-minute load average just before the run: {info['load']:.2f} (it lags: it still counts "
        "processes of the last minute; on a busy machine the times here grow 2-4x).",
        "",
        markdown_table(["case", "seconds (median)"], [[label, f"{seconds:.3f}"] for label, seconds in results]),
    ]) + "\n"


def main() -> None:
    args = parser(__doc__, quick="fewer repeats; print only").parse_args()
    results, info = measure(args.quick)
    text = markdown(results, info)
    print(text)
    if writes(args):
        write_section("propagation", text, args.results)


if __name__ == "__main__":
    main()
