"""Epoch and full-evaluation time at the amazon-book shape, before and after this version's changes,
alternated in one process (the machine is shared, so only same-process ratios are trustworthy).

    python -m benchmarks.amazon_shape                        # writes its section of benchmarks/RESULTS.md
    python -m benchmarks.amazon_shape --steps 4 --repeats 2  # the quick run (about 5 minutes on a quiet machine)
    python -m benchmarks.amazon_shape --steps 4 --no-write   # a quick look
    python -m benchmarks.amazon_shape --source ml-1m --steps 6 --eval-users 6040 --no-full-eval   # the same on ml-1m

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
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch.profiler import ProfilerActivity, profile

import itemrec.frontends  # noqa: F401  (registers the front ends that configs are validated by)
import itemrec.recsys.evaluate as evaluation
import itemrec.recsys.models.graph as graph
import itemrec.recsys.models.lightgcn as lightgcn
import itemrec.recsys.train as training
from benchmarks.harness import (
    ROOT,
    Stopwatch,
    command,
    load_average,
    machine,
    markdown_table,
    parser,
    run_module,
    write_section,
    writes,
)
from itemrec.experiment.config import load_config
from itemrec.experiment.memory import keep_freed_memory
from itemrec.experiment.registry import build_loss
from itemrec.experiment.runtime import progress, seed_everything
from itemrec.ranking.topk import full_ranking_topk
from itemrec.recsys.models.graph import LOCALITY_MIN_NODES, GraphPropagation, LightPropagation
from itemrec.recsys.pipeline import build_model, build_sampler, load_data
from itemrec.recsys.sampling import TrainPositives

CONFIG = ROOT / "configs/recsys/ml1m_lightgcn_supap_uniform.yaml"
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
    with Stopwatch() as watch:
        run(*args)
    return watch.wall, watch.cpu


def shares(prof, top: int = 8) -> str:
    """The `top` operations by self CPU time, as `name share%` (shares survive machine load)."""
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: -e.self_cpu_time_total)
    return ", ".join(f"`{e.key}` {100 * e.self_cpu_time_total / total:.0f}%" for e in events[:top])


def arguments() -> argparse.ArgumentParser:
    """The shared flags and this benchmark's data, steps and evaluation sample."""
    out = parser(__doc__, repeats=3)
    out.add_argument("--data", help="an existing amazon-shape parquet (generated otherwise)")
    out.add_argument("--source", help="instead of the amazon shape: a named dataset with the config's own filters (ml-1m)")
    out.add_argument("--steps", type=int, default=6, help="batches per timed training run")
    out.add_argument("--eval-users", type=int, default=4096, help="validation users of the timed ranking")
    out.add_argument("--no-full-eval", action="store_true", help="skip the evaluation of every validation user")
    return out


def prepare(args) -> tuple[object, object, object, float]:
    """`(data, SupAP config, BPR config, read + split seconds)`: the amazon shape generated (or
    `--data`, or `--source`), read and split as the config says."""
    with tempfile.TemporaryDirectory() as tmp:
        path = args.data or str(Path(tmp) / "amazon.parquet")
        if not args.data and not args.source:
            synth = ["data", "synth", *(f"--{k}={v}" for k, v in SHAPE.items()), "--seed=0", f"--out={path}", "-q"]
            run_module("itemrec", *synth, check=True)
        overrides = [f"data.source={args.source}"] if args.source else [f"data.source={path}", "data.min_rating=null"]
        supap = load_config(CONFIG, overrides)
        bpr = load_config(CONFIG, [*overrides, "loss={name: bpr}"])
        with Stopwatch() as watch:
            data = load_data(supap, quiet=True)
    return data, supap, bpr, watch.wall


def propagation_agreement(model) -> tuple[float, float]:
    """Largest relative difference of the propagation's output and of its gradient, now against before."""
    differences = []
    for when in ("before", "now"):
        ego = model.ego.detach().clone().requires_grad_(True)
        weight = torch.randn(ego.shape, generator=torch.Generator().manual_seed(1))
        with version(when):
            out = lightgcn.light_propagation(model.propagate, ego, model.layers)
        (out * weight).sum().backward()
        differences.append((out.detach(), ego.grad))
    (out_b, grad_b), (out_n, grad_n) = differences
    return relative_difference(out_n, out_b), relative_difference(grad_n, grad_b)


def time_training(model, data, configs: dict, args, generator) -> tuple[dict, dict]:
    """`(per_batch, profiles)`: wall and CPU seconds per batch of each (loss, before / now) run,
    alternated `--repeats` times, and one profiled batch of each loss."""
    supap = configs["SupAP"]
    sampler = build_sampler(supap, data)
    positives = TrainPositives(data.train)
    window = Limited(data, n_train=args.steps * supap.train.batch_size)
    one_batch = Limited(data, n_train=supap.train.batch_size)
    losses = {name: (build_loss(config.loss), config) for name, config in configs.items()}
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
    return per_batch, profiles


def time_evaluation(model, data, supap, args, profiles: dict) -> dict:
    """The propagation before / now and the ranking of `--eval-users` validation users, alternated
    `--repeats` times; a profiled ranking block (added to `profiles`); then, unless
    `--no-full-eval`, one evaluation of every validation user as training runs it."""
    propagation: dict[str, list[tuple[float, float]]] = {"before": [], "now": []}
    for _ in range(args.repeats):
        for when in propagation:
            with version(when), torch.no_grad():
                propagation[when].append(timed(model))
    sample = Limited(data, n_eval=args.eval_users)
    model.eval()
    model.item_vectors()  # cached: the evaluations below time the ranking alone
    ranking: list[tuple[float, float]] = []
    n_eval = int((np.diff(sample.val.indptr) > 0).sum())
    for _ in range(args.repeats):
        wall, cpu = timed(evaluation.evaluate, model, sample, "val", "transductive", supap.eval.ks, True, supap.eval.batch_users)
        ranking.append((wall / n_eval, cpu / n_eval))
    users, items = model.representations()
    queries = torch.nn.functional.normalize(users[: min(2048, len(users))], dim=1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        full_ranking_topk(queries, torch.nn.functional.normalize(items, dim=1), max(supap.eval.ks))
    profiles[f"ranking {len(queries):,} users (`full_ranking_topk`, no exclusions)"] = prof
    model.train()
    full = None
    if not args.no_full_eval:
        full = evaluation.evaluate(model, data, "val", "transductive", supap.eval.ks, True, supap.eval.batch_users)
    n_val = int((np.diff(data.val.indptr) > 0).sum())
    return {"propagation": propagation, "ranking": ranking, "n_eval": n_eval, "n_val": n_val, "full": full}


def median_of_runs(runs: list[tuple[float, float]], i: int) -> float:
    """Median of field `i` (0 wall, 1 CPU) over the runs."""
    return statistics.median(r[i] for r in runs)


def training_lines(per_batch: dict, batches: int, args) -> list[str]:
    """The training table and the before / now ratio of each loss."""
    med = median_of_runs
    rows = [[f"{loss}, {when}", f"{med(runs, 0):.3f}", f"{med(runs, 0) * batches:.1f}", f"{med(runs, 1):.3f}",
             ", ".join(f"{r[0]:.2f}" for r in runs)] for (loss, when), runs in per_batch.items()]
    header = ["training batch", "s per batch (median)", "epoch estimate s", "CPU s per batch (median)", "each run, s per batch"]
    lines = [markdown_table(header, rows, "lrrrl"), ""]
    for loss in dict.fromkeys(loss for loss, _ in per_batch):
        before, now = per_batch[(loss, "before")], per_batch[(loss, "now")]
        lines.append(
            f"{loss} epoch before / now: **{med(before, 0) / med(now, 0):.2f}×** wall, {med(before, 1) / med(now, 1):.2f}× CPU "
            f"({args.steps} batches per run, {args.repeats} alternated runs)."
        )
    return lines


def evaluation_lines(timings: dict) -> list[str]:
    """The evaluation table, the estimate for every validation user, and the measured evaluation."""
    med = median_of_runs
    propagation, ranking, n_eval, n_val = timings["propagation"], timings["ranking"], timings["n_eval"], timings["n_val"]
    rows = [[f"propagation of the whole graph, {when}", f"{med(runs, 0):.3f}", f"{med(runs, 1):.3f}",
             ", ".join(f"{r[0]:.2f}" for r in runs)] for when, runs in propagation.items()]
    rows.append([f"ranking, per 1,000 users ({n_eval:,} of {n_val:,} validation users, cosine)", f"{med(ranking, 0) * 1000:.3f}",
                 f"{med(ranking, 1) * 1000:.3f}", ", ".join(f"{r[0] * 1000:.2f}" for r in ranking)])
    estimate = med(propagation["now"], 0) + med(ranking, 0) * n_val
    lines = [
        markdown_table(["evaluation stage", "s (median)", "CPU s (median)", "each run, s"], rows, "lrrl"),
        "",
        f"Evaluation of all {n_val:,} validation users, now, estimated from the rows above: {estimate:.1f} s "
        f"(propagation before / now {med(propagation['before'], 0) / med(propagation['now'], 0):.2f}×).",
    ]
    full = timings["full"]
    if full is not None:
        lines.append(f"One evaluation of all {full.users:,} validation users, now, measured: **{full.seconds:.1f} s** (val ndcg@20 of the briefly trained model {full.metrics['ndcg@20']:.4f}).")
    return lines


def section(args, table: str) -> tuple[str, str]:
    """`(section name, body)` of RESULTS.md for this run."""
    name = f"the {args.source} config's data" if args.source else "the amazon-book shape"
    options = [*(["--source", args.source] if args.source else []), "--steps", args.steps, "--repeats", args.repeats,
               "--eval-users", args.eval_users, *(["--no-full-eval"] if args.no_full_eval else [])]
    threads = "".join(f"{var}={os.environ[var]} " for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS") if var in os.environ)
    body = (f"## Recommendation at {name}: epoch and full evaluation, before and now\n\n"
            f"Command: `{threads}{command('amazon_shape', *options)}`\n\n"
            f"Machine: {machine()}\n\n{table}")
    return f"{args.source or 'amazon'}-shape", body


def main() -> None:
    args = arguments().parse_args()
    keep_freed_memory()  # as the itemrec command line runs
    started, load_start = time.strftime("%Y-%m-%d %H:%M"), load_average()
    data, supap, bpr, load_seconds = prepare(args)
    generator = seed_everything(0)
    with Stopwatch() as build:
        model = build_model(supap, data)
    lightgcn_of[id(model.propagate)] = model
    agreement = propagation_agreement(model)
    batches = -(-len(data.train_users) // supap.train.batch_size)
    per_batch, profiles = time_training(model, data, {"SupAP": supap, "BPR": bpr}, args, generator)
    rss_train = rss_gb()
    timings = time_evaluation(model, data, supap, args, profiles)
    lines = [
        f"Data: {data.n_users:,} users, {data.n_items:,} items, {data.train.nnz:,} training interactions "
        f"(read + split {load_seconds:.1f} s); {batches} batches of {supap.train.batch_size:,} users per epoch.",
        "",
        f"Model built in {build.wall:.1f} s ({'with' if model.propagate.order is not None else 'without'} a locality order: "
        f"{model.propagate.n_nodes:,} nodes, threshold {LOCALITY_MIN_NODES:,}). Propagation now against before, "
        f"largest difference relative to the largest value: output {agreement[0]:.1e}, gradient {agreement[1]:.1e}.",
        "",
        *training_lines(per_batch, batches, args),
        "",
        *evaluation_lines(timings),
        "", "Where the time goes (`torch.profiler`, self CPU time, top operations):", "",
        *(f"- {name}: {shares(prof)}" for name, prof in profiles.items()),
        "",
        f"Peak RSS: {rss_train:.2f} GB after training, {rss_gb():.2f} GB at the end (whole process, both forms of every stage included).",
        "",
        f"Run started {started}; load average (1/5/15 min) {load_start} at the start, {load_average()} at the end, "
        f"on 2 cores shared with other jobs, torch using {torch.get_num_threads()} thread(s) (so these are "
        f"{torch.get_num_threads()}-thread ratios): absolute times are inflated by the load and vary from run to run; "
        "the before / now ratios come from runs alternated in one process.",
    ]
    table = "\n".join(lines)
    print(table)
    if writes(args):
        name, body = section(args, table)
        write_section(name, body, args.results)


if __name__ == "__main__":
    main()
