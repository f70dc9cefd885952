"""Epoch and full-evaluation time at the amazon-book shape, before and after this version's changes,
alternated in one process (the machine is shared, so only same-process ratios are trustworthy).

    python benchmarks/amazon_shape.py                        # writes its section of benchmarks/RESULTS.md
    python benchmarks/amazon_shape.py --steps 4 --repeats 2  # the quick run (about 5 minutes on a quiet machine)
    python benchmarks/amazon_shape.py --steps 4 --no-write   # a quick look
    python benchmarks/amazon_shape.py --source ml-1m --steps 6 --eval-users 6040 --no-full-eval   # the same on ml-1m

Data: `itemrec data synth --users 52643 --items 91597 --interactions 2930000 --seed 0` (LightGCN's
amazon-book sizes, power-law popularity, communities), 80/10/10 random split; LightGCN 64-d,
3 layers, cosine scores; rows of 64 sampled positives + 256 uniform negatives, batches of 1,024 users.

"Before" is the previous version, rebuilt here: `LightPropagation` on the graph in its own node
numbering (`GraphPropagation(..., locality=False)`), each product an MKL `addmm` on the int32
CSR, `torch.optim.Adam` with its default (single-tensor) step, and glibc's usual allocation
thresholds (`keep_freed_memory(False)`: every temporary above 32 MiB mapped afresh). "Now" is
the library as the `itemrec` command runs it: the products on the graph renumbered by
`locality_order` (one gather in, one out), each one the compiled row loop of
`itemrec.recsys.models.graph.spmm`, `itemrec.recsys.train.adam` (torch's fused Adam step), and freed large
temporaries recycled (`itemrec.experiment.memory.keep_freed_memory()`, which the command line
calls at start). The ranking and the full evaluation run as now.
Both compute the same values up to float rounding; the script checks the propagation's output
and gradient against each other (relative difference printed).

Run it with `OMP_NUM_THREADS=1` on a shared machine: the ratios are then one-thread ratios.

- Training: `--steps` batches of `train_epoch` per run, alternately before and now, with the
  SupAP loss (block-wise kernel) and with BPR; the epoch time is the median seconds per batch ×
  the epoch's batch count, and the process CPU seconds per batch are shown beside it.
- Evaluation: the propagation of the whole graph (once per evaluation, `torch.no_grad`) before
  and now, alternated; the full ranking of `--eval-users` validation users
  (`itemrec.recsys.evaluate.evaluate` on the cached vectors). Then, unless `--no-full-eval`, one
  evaluation of every validation user as training runs it (propagation included).
- Profile: one training batch of each loss and one ranking block under `torch.profiler`,
  the share of each kind of operation.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itemrec.recsys.evaluate as evaluation
import itemrec.recsys.models.graph as graph
import itemrec.recsys.models.lightgcn as lightgcn
import itemrec.recsys.train as training
from itemrec.experiment.config import load_config
from itemrec.experiment.memory import keep_freed_memory
from itemrec.experiment.registry import build_loss
from itemrec.experiment.runtime import progress, seed_everything
from itemrec.ranking.topk import full_ranking_topk
from itemrec.recsys.models.graph import LOCALITY_MIN_NODES, GraphPropagation, LightPropagation
from itemrec.recsys.pipeline import build_model, build_sampler, load_data
from itemrec.recsys.sampling import TrainPositives

CONFIG = Path(__file__).resolve().parents[1] / "configs/recsys/ml1m_lightgcn_supap_uniform.yaml"
SHAPE = dict(users=52_643, items=91_597, interactions=2_930_000)


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


PLAIN: dict[int, GraphPropagation] = {}


def light_propagation_before(propagate, ego, layers):
    """The previous `light_propagation`: `LightPropagation` on `Â` in the graph's own numbering."""
    plain = PLAIN.get(id(propagate))
    if plain is None:
        plain = PLAIN[id(propagate)] = GraphPropagation(lightgcn_of[id(propagate)].interactions, locality=False)
    return LightPropagation.apply(plain.csr(), ego, layers)


lightgcn_of: dict[int, torch.nn.Module] = {}


def spmm_before(adjacency, x):
    """The previous `spmm`: MKL's `addmm` with `beta=0` on the CSR."""
    out = x.new_empty(adjacency.shape[0], x.shape[1])
    return torch.addmm(out, adjacency, x, beta=0, out=out)


def adam_before(parameters, lr):
    """The previous optimizer: `torch.optim.Adam` with its default step."""
    return torch.optim.Adam(parameters, lr=lr)


@contextlib.contextmanager
def version(name: str):
    """Run the library as it was before this version's changes (`"before"`) or as it is (`"now"`)."""
    if name == "now":
        yield
        return
    saved = lightgcn.light_propagation, graph.spmm
    lightgcn.light_propagation, graph.spmm = light_propagation_before, spmm_before
    keep_freed_memory(False)
    try:
        yield
    finally:
        lightgcn.light_propagation, graph.spmm = saved
        keep_freed_memory()


def optimizer_of(when: str):
    return adam_before if when == "before" else training.adam


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


class Limited:
    """The dataset seen through a window: the first `n_train` training users, the first `n_eval`
    users' validation rows."""

    def __init__(self, data, n_train: int | None = None, n_eval: int | None = None) -> None:
        self._data, self._n_train = data, n_train
        self._val = data.val
        if n_eval is not None:
            keep = sp.diags((np.arange(data.n_users) < n_eval).astype(np.float32))
            self._val = (keep @ data.val).tocsr()

    def __getattr__(self, name):
        return getattr(self._data, name)

    @property
    def train_users(self) -> np.ndarray:
        users = self._data.train_users
        return users if self._n_train is None else users[: self._n_train]

    @property
    def val(self):
        return self._val


def timed(run, *args) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of `run(*args)`."""
    wall, cpu = time.perf_counter(), time.process_time()
    run(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def shares(prof, top: int = 8) -> str:
    """The `top` operations by self CPU time, as `name share%` (shares survive machine load)."""
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: -e.self_cpu_time_total)
    return ", ".join(f"`{e.key}` {100 * e.self_cpu_time_total / total:.0f}%" for e in events[:top])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="an existing amazon-shape parquet (generated otherwise)")
    parser.add_argument("--source", help="instead of the amazon shape: a named dataset with the config's own filters (ml-1m)")
    parser.add_argument("--steps", type=int, default=6, help="batches per timed training run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eval-users", type=int, default=4096)
    parser.add_argument("--no-full-eval", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    keep_freed_memory()  # as the itemrec command line runs
    started = time.strftime("%Y-%m-%d %H:%M")
    load_start = " / ".join(f"{v:.2f}" for v in os.getloadavg())

    with tempfile.TemporaryDirectory() as tmp:
        path = args.data or str(Path(tmp) / "amazon.parquet")
        if not args.data and not args.source:
            cmd = [sys.executable, "-m", "itemrec", "data", "synth", *(f"--{k}={v}" for k, v in SHAPE.items()), "--seed=0", f"--out={path}", "-q"]
            subprocess.run(cmd, check=True)
        overrides = [f"data.source={args.source}"] if args.source else [f"data.source={path}", "data.min_rating=null"]
        supap = load_config(CONFIG, overrides)
        bpr = load_config(CONFIG, [*overrides, "loss={name: bpr}"])
        tic = time.perf_counter()
        data = load_data(supap, quiet=True)
        load_seconds = time.perf_counter() - tic
    generator = seed_everything(0)
    tic = time.perf_counter()
    model = build_model(supap, data)
    build_seconds = time.perf_counter() - tic
    lightgcn_of[id(model.propagate)] = model
    ordered = model.propagate.order is not None
    differences = []
    for when in ("before", "now"):  # the same propagation and gradient, before and now
        ego = model.ego.detach().clone().requires_grad_(True)
        weight = torch.randn(ego.shape, generator=torch.Generator().manual_seed(1))
        with version(when):
            out = lightgcn.light_propagation(model.propagate, ego, model.layers)
        (out * weight).sum().backward()
        differences.append((out.detach(), ego.grad))
    (out_b, grad_b), (out_n, grad_n) = differences
    agreement = (relative_difference(out_n, out_b), relative_difference(grad_n, grad_b))
    del differences, out_b, grad_b, out_n, grad_n, out, ego, weight
    sampler = build_sampler(supap, data)
    positives = TrainPositives(data.train)
    batches = -(-len(data.train_users) // supap.train.batch_size)
    window = Limited(data, n_train=args.steps * supap.train.batch_size)
    one_batch = Limited(data, n_train=supap.train.batch_size)
    losses = {"SupAP": (build_loss(supap.loss), supap), "BPR": (build_loss(bpr.loss), bpr)}
    forms = [(loss, when) for loss in losses for when in ("before", "now")]
    per_batch: dict[tuple[str, str], list[tuple[float, float]]] = {form: [] for form in forms}
    profiles = {}
    with progress() as bar:
        for loss, (loss_fn, config) in losses.items():  # warm-up, and one profiled batch of each loss
            optimizer = training.adam(model.parameters(), config.train.lr)
            training.train_epoch(model, loss_fn, optimizer, one_batch, positives, sampler, config, generator, 1, bar)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                training.train_epoch(model, loss_fn, optimizer, one_batch, positives, sampler, config, generator, 1, bar)
            profiles[f"one {loss} training batch (now)"] = prof
        for _ in range(args.repeats):
            for loss, when in forms:
                loss_fn, config = losses[loss]
                optimizer = optimizer_of(when)(model.parameters(), config.train.lr)
                with version(when):
                    wall, cpu = timed(training.train_epoch, model, loss_fn, optimizer, window, positives, sampler, config, generator, 1, bar)
                per_batch[(loss, when)].append((wall / args.steps, cpu / args.steps))
    rss_train = rss_gb()

    propagation: dict[str, list[tuple[float, float]]] = {"before": [], "now": []}
    for _ in range(args.repeats):
        for when in propagation:
            with version(when), torch.no_grad():
                propagation[when].append(timed(model))
    sample = Limited(data, n_eval=args.eval_users)
    model.eval()
    model.item_vectors()  # cached: the evaluations below time the ranking alone
    ranking: list[tuple[float, float]] = []
    n_eval = 0
    for _ in range(args.repeats):
        wall, cpu = timed(evaluation.evaluate, model, sample, "val", "transductive", supap.eval.ks, True, supap.eval.batch_users)
        n_eval = int((np.diff(sample.val.indptr) > 0).sum())
        ranking.append((wall / n_eval, cpu / n_eval))
    users, items = model.representations()
    queries = torch.nn.functional.normalize(users[: min(2048, len(users))], dim=1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        full_ranking_topk(queries, torch.nn.functional.normalize(items, dim=1), max(supap.eval.ks))
    profiles[f"ranking {len(queries):,} users (`full_ranking_topk`, no exclusions)"] = prof
    model.train()
    n_val = int((np.diff(data.val.indptr) > 0).sum())
    full = None
    if not args.no_full_eval:
        full = evaluation.evaluate(model, data, "val", "transductive", supap.eval.ks, True, supap.eval.batch_users)
    load_end = " / ".join(f"{v:.2f}" for v in os.getloadavg())

    def med(runs, i):
        return statistics.median(r[i] for r in runs)

    lines = [
        f"Data: {data.n_users:,} users, {data.n_items:,} items, {data.train.nnz:,} training interactions "
        f"(read + split {load_seconds:.1f} s); {batches} batches of {supap.train.batch_size:,} users per epoch.",
        "",
        f"Model built in {build_seconds:.1f} s ({'with' if ordered else 'without'} a locality order: "
        f"{model.propagate.n_nodes:,} nodes, threshold {LOCALITY_MIN_NODES:,}). Propagation now against before, "
        f"largest difference relative to the largest value: output {agreement[0]:.1e}, gradient {agreement[1]:.1e}.",
        "",
        "| training batch | s per batch (median) | epoch estimate s | CPU s per batch (median) | each run, s per batch |",
        "|---|---:|---:|---:|---|",
    ]
    for (loss, when), runs in per_batch.items():
        lines.append(
            f"| {loss}, {when} | {med(runs, 0):.3f} | {med(runs, 0) * batches:.1f} | {med(runs, 1):.3f} | "
            f"{', '.join(f'{r[0]:.2f}' for r in runs)} |"
        )
    lines.append("")
    for loss in losses:
        before, now = per_batch[(loss, "before")], per_batch[(loss, "now")]
        lines.append(
            f"{loss} epoch before / now: **{med(before, 0) / med(now, 0):.2f}×** wall, {med(before, 1) / med(now, 1):.2f}× CPU "
            f"({args.steps} batches per run, {args.repeats} alternated runs)."
        )
    lines += [
        "",
        "| evaluation stage | s (median) | CPU s (median) | each run, s |",
        "|---|---:|---:|---|",
    ]
    for when, runs in propagation.items():
        lines.append(f"| propagation of the whole graph, {when} | {med(runs, 0):.3f} | {med(runs, 1):.3f} | {', '.join(f'{r[0]:.2f}' for r in runs)} |")
    lines.append(
        f"| ranking, per 1,000 users ({n_eval:,} of {n_val:,} validation users, cosine) | {med(ranking, 0) * 1000:.3f} | "
        f"{med(ranking, 1) * 1000:.3f} | {', '.join(f'{r[0] * 1000:.2f}' for r in ranking)} |"
    )
    estimate = med(propagation["now"], 0) + med(ranking, 0) * n_val
    lines += [
        "",
        f"Evaluation of all {n_val:,} validation users, now, estimated from the rows above: {estimate:.1f} s "
        f"(propagation before / now {med(propagation['before'], 0) / med(propagation['now'], 0):.2f}×).",
    ]
    if full is not None:
        lines.append(f"One evaluation of all {full.users:,} validation users, now, measured: **{full.seconds:.1f} s** (val ndcg@20 of the briefly trained model {full.metrics['ndcg@20']:.4f}).")
    lines += ["", "Where the time goes (`torch.profiler`, self CPU time, top operations):", ""]
    lines += [f"- {name}: {shares(prof)}" for name, prof in profiles.items()]
    lines += [
        "",
        f"Peak RSS: {rss_train:.2f} GB after training, {rss_gb():.2f} GB at the end (whole process, both forms of every stage included).",
        "",
        f"Run started {started}; load average (1/5/15 min) {load_start} at the start, {load_end} at the end, "
        f"on 2 cores shared with other jobs, torch using {torch.get_num_threads()} thread(s) (so these are "
        f"{torch.get_num_threads()}-thread ratios): absolute times are inflated by the load and vary from run to run; "
        "the before / now ratios come from runs alternated in one process.",
    ]
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        from benchmarks.results import machine, write_section

        name = f"the {args.source} config's data" if args.source else "the amazon-book shape"
        source = f" --source {args.source}" if args.source else ""
        full_flag = " --no-full-eval" if args.no_full_eval else ""
        threads = "".join(f"{name}={os.environ[name]} " for name in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS") if name in os.environ)
        write_section(
            f"{args.source or 'amazon'}-shape",
            f"## Recommendation at {name}: epoch and full evaluation, before and now\n\n"
            f"Command: `{threads}python benchmarks/amazon_shape.py{source} --steps {args.steps} --repeats {args.repeats} --eval-users {args.eval_users}{full_flag}`\n\n"
            f"Machine: {machine()}\n\n{table}",
        )


if __name__ == "__main__":
    main()
