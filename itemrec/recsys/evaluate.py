"""Full-ranking evaluation of recommenders: every user against every item, seen items masked.

Transductive: users known at training time, scored from their learned vectors; validation masks
the training items, test masks training and validation items. Inductive: held-out users,
embedded from their fold-in interactions without retraining (`model.new_user_vectors`), fold-in
items masked, scored on their target items. Users are processed in batches and items ranked
with the core's `full_ranking_topk`, so no users × items matrix is ever held for all users.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from itemrec.experiment.checkpoint import Checkpoint
from itemrec.experiment.errors import UserError
from itemrec.experiment.runtime import progress
from itemrec.ranking import full_ranking_topk, topk_metrics
from itemrec.recsys.config import RecsysConfig
from itemrec.recsys.data import InteractionData, to_torch_csr
from itemrec.recsys.pipeline import restore

Protocol = Literal["transductive", "inductive"]
Split = Literal["val", "test"]


@dataclass
class Evaluation:
    """Mean metrics over evaluated users, per-user metrics, and bookkeeping."""

    protocol: str
    split: str
    metrics: dict[str, float]
    per_user: pl.DataFrame  # user (index), then one column per metric
    users: int
    skipped: int  # users of the split with no target item
    seconds: float


def evaluation_users(
    data: InteractionData, split: Split, protocol: Protocol, exclude_val: bool = True
) -> tuple[np.ndarray, sp.csr_matrix, sp.csr_matrix]:
    """`(users, exclude [U, I], target [U, I])` of one split under one protocol.

    `exclude` rows hold what each user has already interacted with (what must not be
    recommended); `target` rows hold what should be ranked high. `exclude_val=False` leaves
    the validation rows among the transductive test candidates (only training rows are
    excluded), as IR-Benchmark's reference evaluation does.
    """
    if protocol == "transductive":
        target = data.val if split == "val" else data.test
        exclude = data.train if split == "val" or not exclude_val else (data.train + data.val).tocsr()
        users = np.flatnonzero(np.diff(target.indptr))
        return users, exclude, target
    if data.inductive is None:
        raise ValueError("the inductive protocol needs an inductive split (data.split: inductive)")
    ind = data.inductive
    users = ind.val_users if split == "val" else ind.test_users
    fold_in = ind.val_fold_in if split == "val" else ind.test_fold_in
    target = ind.val_target if split == "val" else ind.test_target
    return np.asarray(users), fold_in, target


def _rows(matrix: sp.csr_matrix, users: np.ndarray) -> sp.csr_matrix:
    return matrix[users].tocsr()


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    data: InteractionData,
    split: Split = "val",
    protocol: Protocol = "transductive",
    ks: tuple[int, ...] = (10, 20, 50),
    normalize: bool = False,
    batch_users: int = 2048,
    bar: Progress | None = None,
    exclude_val: bool = True,
) -> Evaluation:
    """Rank all items for every user of `split`, compute top-k metrics, coverage and novelty.

    `normalize`: cosine scores (user and item vectors L2-normalized), as in cosine training.
    `bar`: a progress display to show the batches of users on (a task is added, then removed).
    `exclude_val`: see `evaluation_users` (config key `eval.exclude_val_at_test`).
    """
    start = time.perf_counter()
    was_training = model.training
    model.eval()
    users, exclude, target = evaluation_users(data, split, protocol, exclude_val)
    has_target = np.diff(target.indptr)[users] > 0
    skipped = int((~has_target).sum())
    users = users[has_target]
    device = next(iter(model.buffers()), next(iter(model.parameters()), torch.empty(0))).device
    items = model.item_vectors().to(device)
    if normalize:
        items = F.normalize(items, dim=1)
    k_max = min(max(ks), data.n_items)
    popularity = torch.as_tensor(data.item_popularity, dtype=torch.float64)
    self_info = -torch.log2((popularity + 1) / (data.train.shape[0] + 1))  # novelty of each item
    per_user: dict[str, list[torch.Tensor]] = {}
    recommended: list[torch.Tensor] = []
    task = None if bar is None else bar.add_task(f"evaluate {split} ({protocol})", total=len(users), info="users")
    for lo in range(0, len(users), batch_users):
        batch = users[lo : lo + batch_users]
        if protocol == "transductive":
            queries = model.user_vectors(torch.as_tensor(batch, dtype=torch.long, device=device))
        else:
            queries = model.new_user_vectors(_rows(exclude, batch)).to(device)
        if normalize:
            queries = F.normalize(queries, dim=1)
        seen = to_torch_csr(_rows(exclude, batch)).to(device)
        top, _ = full_ranking_topk(queries, items, k_max, exclude=seen)  # [b, k]
        tgt = _rows(target, batch)
        hits = _hits(tgt, top.cpu())  # [b, k] 0/1
        n_rel = torch.as_tensor(np.diff(tgt.indptr), dtype=torch.float32)
        for name, values in topk_metrics(hits, n_rel, ks).items():
            per_user.setdefault(name, []).append(values)
        for k in ks:
            per_user.setdefault(f"novelty@{k}", []).append(self_info[top[:, :k].cpu()].mean(1).float())
        recommended.append(top.cpu())
        if task is not None:
            bar.advance(task, len(batch))
    if task is not None:
        bar.remove_task(task)
    columns = {name: torch.cat(parts).numpy() for name, parts in per_user.items()} if per_user else {}
    metrics = {name: float(values.mean()) for name, values in columns.items()}
    if recommended:
        top_all = torch.cat(recommended)
        for k in ks:
            shown = torch.zeros(data.n_items, dtype=torch.bool)
            shown[top_all[:, :k].reshape(-1)] = True
            metrics[f"coverage@{k}"] = int(shown.sum()) / data.n_items
    model.train(was_training)
    frame = pl.DataFrame({"user": users.astype(np.int64), **columns})
    return Evaluation(protocol, split, metrics, frame, len(users), skipped, time.perf_counter() - start)


def _hits(target: sp.csr_matrix, top: torch.Tensor) -> torch.Tensor:
    """`[b, k]` 1 where the ranked item is a target item of that user (sorted-index lookup)."""
    b, k = top.shape
    target = target if target.has_sorted_indices else target.sorted_indices()
    indptr = torch.as_tensor(target.indptr, dtype=torch.long)
    if target.nnz == 0:
        return torch.zeros(b, k)
    # offset each user's target items into a private range: row-major keys are already sorted
    n_items = int(max(target.shape[1], 1))
    keys = torch.repeat_interleave(torch.arange(b) * n_items, indptr.diff()) + torch.as_tensor(target.indices, dtype=torch.long)
    query = (torch.arange(b)[:, None] * n_items + top).reshape(-1)
    pos = torch.searchsorted(keys, query).clamp_(max=len(keys) - 1)
    return (keys[pos] == query).reshape(b, k).float()


def cosine_scores(config: RecsysConfig, model) -> bool:
    """Whether the run scores with cosine similarity (learned models trained with `train.score: cosine`)."""
    return bool(model.learned and config.train.score == "cosine")


def final_evaluation(model, data, config: RecsysConfig, split: str = "test", protocols=("transductive", "inductive")) -> list[Evaluation]:
    """Evaluate the model on `split` under each protocol the data supports."""
    out = []
    with progress() as bar:
        for protocol in protocols:
            if protocol == "inductive" and data.inductive is None:
                continue
            out.append(evaluate(
                model, data, split, protocol, config.eval.ks, cosine_scores(config, model), config.eval.batch_users, bar,
                exclude_val=config.eval.exclude_val_at_test,
            ))
    return out


def print_results(results: list[Evaluation], ks: tuple[int, ...], run_id: str) -> None:
    """The results table: one row per (protocol, split), recall/ndcg at the first two ks, hit, coverage."""
    table = Table(title=f"run {run_id}")
    table.add_column("protocol")
    table.add_column("split")
    table.add_column("users", justify="right")
    names = [f"{m}@{k}" for k in ks[:2] for m in ("recall", "ndcg")] + [f"hit@{ks[0]}", f"coverage@{ks[0]}"]
    for name in names:
        table.add_column(name, justify="right")
    for ev in results:
        table.add_row(ev.protocol, ev.split, f"{ev.users:,}", *(f"{ev.metrics.get(n, float('nan')):.4f}" for n in names))
    out = Console()
    if not out.is_terminal:
        out = Console(width=140)
    out.print(table)


def evaluate_command(checkpoint: Checkpoint, run_id: str | None, *, split: str, protocol: str, tracking_uri: str | None) -> dict[str, float]:
    """`itemrec evaluate`: rebuild the run's data and model, evaluate, print the table."""
    if protocol not in ("transductive", "inductive", "both"):
        raise UserError(f"--protocol: must be transductive, inductive or both, got {protocol!r}")
    config, data, model = restore(checkpoint, run_id or "checkpoint")
    if protocol == "inductive" and data.inductive is None:
        raise UserError(f"run {run_id}: its split is {config.data.split!r}; the inductive protocol needs data.split: inductive")
    protocols = ("transductive", "inductive") if protocol == "both" else (protocol,)
    results = final_evaluation(model, data, config, split=split, protocols=protocols)
    print_results(results, config.eval.ks, run_id or "checkpoint")
    return {f"{ev.protocol}/{k}": v for ev in results for k, v in ev.metrics.items()}
