"""Epoch and full-evaluation time at the amazon-book shape, before and after this version's changes,
alternated in one process (the machine is shared, so only same-process ratios are trustworthy).

    python benchmarks/amazon_shape.py                        # writes its section of benchmarks/RESULTS.md
    python benchmarks/amazon_shape.py --steps 4 --no-write   # a quick look
    python benchmarks/amazon_shape.py --source ml-1m --steps 6 --eval-users 6040 --no-full-eval   # the same on ml-1m

Data: `itemrec data synth --users 52643 --items 91597 --interactions 2930000 --seed 0` (LightGCN's
amazon-book sizes, power-law popularity, communities), 80/10/10 random split; LightGCN 64-d,
3 layers, cosine scores; rows of 64 sampled positives + 256 uniform negatives, batches of 1,024 users.

- Training: `--steps` batches of `train_epoch` per run, alternately with the SupAP loss through
  autograd on `[Q, P, N]` (before) and the block-wise kernel (now), and with BPR; the epoch time
  is the median seconds per batch × the epoch's batch count.
- Evaluation: full ranking of `--eval-users` validation users (`itemrec.evaluate.evaluate`),
  alternately with score blocks of 2^21 queries × items (before) and the default (now); the time
  for all users is scaled from the time per user. Then, unless `--no-full-eval`, one evaluation of
  every validation user with the default.
"""

from __future__ import annotations

import argparse
import functools
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itemrec.evaluate as evaluation
from itemrec.experiment.config import load_config
from itemrec.experiment.runtime import progress, seed_everything
from itemrec.pipeline import build_model, build_sampler, load_data
from itemrec.ranking import losses as L
from itemrec.ranking.ranks import map_rows, reduce_queries
from itemrec.ranking.surrogates import suprank_step
from itemrec.ranking.topk import full_ranking_topk
from itemrec.sampling import TrainPositives
from itemrec.train import train_epoch

CONFIG = Path(__file__).resolve().parents[1] / "configs/recsys/ml1m_lightgcn_supap_uniform.yaml"
SHAPE = dict(users=52_643, items=91_597, interactions=2_930_000)


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def sup_ap_autograd(scores, relevance, tau, rho):
    """SupAP as computed before the block-wise kernel: autograd through `suprank_step` on `[Q, P, N]`."""
    step = functools.partial(suprank_step, tau=tau, rho=rho)
    rows = functools.partial(L._sup_ap_rows, step=step, max_elements=2**25)
    loss, valid = map_rows(rows, scores, relevance, max_elements=2**25)
    return reduce_queries(loss, valid, "mean")


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
    started = time.strftime("%Y-%m-%d %H:%M")
    load_start = " / ".join(f"{v:.2f}" for v in os.getloadavg())

    with tempfile.TemporaryDirectory() as tmp:
        path = args.data or str(Path(tmp) / "amazon.parquet")
        if not args.data and not args.source:
            cmd = ["itemrec", "data", "synth", *(f"--{k}={v}" for k, v in SHAPE.items()), "--seed=0", f"--out={path}", "-q"]
            subprocess.run(cmd, check=True)
        overrides = [f"data.source={args.source}"] if args.source else [f"data.source={path}", "data.min_rating=null"]
        supap = load_config(CONFIG, overrides)
        bpr = load_config(CONFIG, [*overrides, "loss={name: bpr}"])
        tic = time.perf_counter()
        data = load_data(supap, quiet=True)
        load_seconds = time.perf_counter() - tic
    generator = seed_everything(0)
    model = build_model(supap, data)
    sampler = build_sampler(supap, data)
    positives = TrainPositives(data.train)
    batches = -(-len(data.train_users) // supap.train.batch_size)
    window = Limited(data, n_train=args.steps * supap.train.batch_size)
    tau, rho = supap.loss.params.get("tau", 0.01), supap.loss.params.get("rho", 100.0)
    forms = {
        "SupAP, autograd `[Q, P, N]` (before)": (functools.partial(sup_ap_autograd, tau=tau, rho=rho), supap),
        "SupAP, block-wise kernel (now)": (functools.partial(L.sup_ap, tau=tau, rho=rho), supap),
        "BPR (now)": (L.bpr, bpr),
    }
    per_batch: dict[str, list[float]] = {name: [] for name in forms}
    with progress() as bar:
        for _ in range(args.repeats):
            for name, (loss_fn, config) in forms.items():
                optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr)
                tic = time.perf_counter()
                train_epoch(model, loss_fn, optimizer, window, positives, sampler, config, generator, 1, bar)
                per_batch[name].append((time.perf_counter() - tic) / args.steps)
    rss_train = rss_gb()

    sample = Limited(data, n_eval=args.eval_users)
    eval_forms = {
        "score blocks of 2^21 queries × items (before)": functools.partial(full_ranking_topk, chunk_elements=2**21),
        "score blocks of 2^25 (now)": full_ranking_topk,
    }
    per_user: dict[str, list[float]] = {name: [] for name in eval_forms}
    n_eval = 0
    for _ in range(args.repeats):
        for name, fn in eval_forms.items():
            evaluation.full_ranking_topk = fn
            result = evaluation.evaluate(model, sample, "val", "transductive", supap.eval.ks, True, supap.eval.batch_users)
            per_user[name].append(result.seconds / result.users)
            n_eval = result.users
    evaluation.full_ranking_topk = full_ranking_topk
    n_val = int((np.diff(data.val.indptr) > 0).sum())
    full = None
    if not args.no_full_eval:
        full = evaluation.evaluate(model, data, "val", "transductive", supap.eval.ks, True, supap.eval.batch_users)
    load_end = " / ".join(f"{v:.2f}" for v in os.getloadavg())

    lines = [
        f"Data: {data.n_users:,} users, {data.n_items:,} items, {data.train.nnz:,} training interactions "
        f"(read + split {load_seconds:.1f} s); {batches} batches of {supap.train.batch_size:,} users per epoch.",
        "",
        "| stage | seconds per batch (median) | epoch estimate s | each run, s per batch |",
        "|---|---:|---:|---|",
    ]
    medians = {}
    for name, runs in per_batch.items():
        medians[name] = statistics.median(runs)
        lines.append(f"| {name} | {medians[name]:.3f} | {medians[name] * batches:.1f} | {', '.join(f'{r:.2f}' for r in runs)} |")
    before, now = medians["SupAP, autograd `[Q, P, N]` (before)"], medians["SupAP, block-wise kernel (now)"]
    lines += [
        "",
        f"SupAP epoch before / now: **{before / now:.1f}×** ({args.steps} batches per run, {args.repeats} alternated runs).",
        "",
        f"| full-ranking evaluation ({n_eval:,} of {n_val:,} validation users, cosine) | s per 1,000 users (median) | all {n_val:,} users, s (scaled) | each run, s per 1,000 users |",
        "|---|---:|---:|---|",
    ]
    eval_medians = {}
    for name, runs in per_user.items():
        eval_medians[name] = statistics.median(runs)
        lines.append(f"| {name} | {eval_medians[name] * 1000:.3f} | {eval_medians[name] * n_val:.1f} | {', '.join(f'{r * 1000:.2f}' for r in runs)} |")
    (e_before, e_now) = eval_medians.values()
    lines += ["", f"Evaluation before / now: **{e_before / e_now:.1f}×**."]
    if full is not None:
        lines.append(f"One evaluation of all {full.users:,} validation users, now: **{full.seconds:.1f} s** (val ndcg@20 of the briefly trained model {full.metrics['ndcg@20']:.4f}).")
    lines += [
        "",
        f"Peak RSS: {rss_train:.2f} GB after training, {rss_gb():.2f} GB at the end (whole process, both forms of every stage included).",
        "",
        f"Run started {started}; load average (1/5/15 min) {load_start} at the start, {load_end} at the end, "
        "on 2 cores shared with other jobs: absolute times are inflated by the load and vary from run to run; "
        "the before / now ratios come from runs alternated in one process.",
    ]
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        from benchmarks.results import machine, write_section

        name = f"the {args.source} config's data" if args.source else "the amazon-book shape"
        source = f" --source {args.source}" if args.source else ""
        write_section(
            f"{args.source or 'amazon'}-shape",
            f"## Recommendation at {name}: epoch and full evaluation, before and now\n\n"
            f"Command: `python benchmarks/amazon_shape.py{source} --steps {args.steps} --repeats {args.repeats} --eval-users {args.eval_users}`\n\n"
            f"Machine: {machine()}\n\n{table}",
        )


if __name__ == "__main__":
    main()
