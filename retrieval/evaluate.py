"""Evaluation: embed a split, rank every image against all the others (itself removed by index),
and compute the retrieval metrics with the core's exact per-query metrics, in chunks of queries.

Metrics: `hit@{1,2,4,8,16,32}` (any same-class image in the top k, the metric-learning "R@k"),
`map@r`, `ap`, `ndcg` (full ranking, graded by shared level), `h_ap` and `asi` (hierarchical), and
with 2+ label levels `ap_level{j}`: AP where relevant means sharing label column j (0 = finest).
Every metric needs each query's full ranking, so a chunk of `chunk` queries is scored against
all N images and sorted once (ties broken pessimistically, as in the core): memory `chunk x N`,
never `N x N`; the metrics are then read off the ranked shared levels.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from itemrec.experiment.checkpoint import Checkpoint
from itemrec.ranking import (
    hierarchical_relevance,
    ideal_levels,
    rank_order,
    ranked_ap,
    ranked_asi,
    ranked_h_ap,
    ranked_map_at_r,
    shared_levels,
    topk_metrics,
)
from retrieval.metric_names import HIT_KS

SUMMARY = ("hit@1", "hit@8", "map@r", "ap", "ndcg", "h_ap", "asi")


@torch.no_grad()
def embed(model: torch.nn.Module, loader: Iterable, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """`(embeddings [N, D], labels [N, L])` of a loader yielding `(inputs, labels, index)`, in index order."""
    was_training = model.training
    model.eval()
    chunks, labels, indices = [], [], []
    for x, y, index in loader:
        chunks.append(model(x.to(device, non_blocking=True)).float().cpu())
        labels.append(y)
        indices.append(torch.as_tensor(index))
    model.train(was_training)
    order = torch.argsort(torch.cat(indices))
    return torch.cat(chunks)[order], torch.cat(labels)[order]


def eval_loader(dataset: Dataset, batch_size: int, workers: int = 0, pin_memory: bool = False) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=pin_memory)


def query_rows(embeddings: Tensor, labels: Tensor, start: int, stop: int) -> tuple[Tensor, Tensor]:
    """Scores and shared levels `[stop-start, N-1]` of queries `start:stop` against all other images."""
    n = len(embeddings)
    index = _skip_self(torch.arange(start, stop), n)
    scores = (embeddings[start:stop] @ embeddings.T).gather(1, index)
    levels = shared_levels(labels[start:stop], labels).gather(1, index)
    return scores, levels


def _skip_self(rows: Tensor, n: int) -> Tensor:
    """`[len(rows), n-1]` column indices of every image but the query itself (removal by index)."""
    cols = torch.arange(n - 1)[None, :]
    return cols + (cols >= rows[:, None]).long()


def ranked_metrics(
    ranked: Tensor, num_levels: int, ks: tuple[int, ...] = HIT_KS, names: Collection[str] | None = None
) -> dict[str, tuple[Tensor, Tensor]]:
    """Per-query metrics from shared levels in rank order `ranked [Q, N]` (one sort for all).

    Returns `{name: (values [Q], valid [Q])}`, read off the ranked list with the core's
    `ranked_*` functions (the ones behind `itemrec.ranking.ap`, `map_at_r`, `h_ap`, `asi`);
    only the metrics in `names` when given (the per-level APs count as one name, `ap_level`).
    """
    wanted = (lambda name: True) if names is None else set(names).__contains__
    t = ranked.long()
    n = t.shape[1]
    out: dict[str, tuple[Tensor, Tensor]] = {}
    hit = t == num_levels  # same finest class
    valid = hit.any(1)
    if any(wanted(f"hit@{k}") for k in ks):
        found = torch.cumsum(hit, 1) > 0  # [Q, N] a same-class image within the first i
        for k in filter(lambda k: wanted(f"hit@{k}"), ks):
            out[f"hit@{k}"] = (found[:, min(k, n) - 1].double(), valid)
    if wanted("map@r"):
        out["map@r"] = (ranked_map_at_r(hit), valid)
    if wanted("ap"):
        out["ap"] = (ranked_ap(hit), valid)
    related = (t > 0).any(1)
    if wanted("ndcg"):
        ideal = ideal_levels(t, num_levels)
        out["ndcg"] = (topk_metrics(t.double(), (t > 0).sum(1), (n,), ideal)[f"ndcg@{n}"], related)
    if wanted("h_ap"):
        rel = hierarchical_relevance(t, num_levels, dtype=torch.float64)
        out["h_ap"] = (ranked_h_ap(t, rel, num_levels), related)
    if wanted("asi"):
        out["asi"] = (ranked_asi(t, num_levels), related)
    if num_levels > 1 and wanted("ap_level"):
        for column in range(num_levels):
            level_hit = t >= num_levels - column
            out[f"ap_level{column}"] = (ranked_ap(level_hit), level_hit.any(1))
    return out


def retrieval_metrics(
    embeddings: Tensor, labels: Tensor, chunk: int = 1024, ks: tuple[int, ...] = HIT_KS, names: Collection[str] | None = None
) -> dict[str, float]:
    """Mean of every metric (or of those in `names`, see `ranked_metrics`) over the queries it is
    defined for (those with a relevant image)."""
    labels = labels.reshape(len(labels), -1).long()
    embeddings = embeddings.float()
    num_levels = labels.shape[1]
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for start in range(0, len(embeddings), chunk):
        scores, levels = query_rows(embeddings, labels, start, min(start + chunk, len(embeddings)))
        ranked = levels.gather(1, rank_order(scores, levels))
        for name, (values, valid) in ranked_metrics(ranked, num_levels, ks, names).items():
            sums[name] = sums.get(name, 0.0) + float(values[valid].sum())
            counts[name] = counts.get(name, 0) + int(valid.sum())
    return {name: sums[name] / counts[name] if counts[name] else 0.0 for name in sums}


def evaluate_split(
    model: torch.nn.Module, dataset: Dataset, device, batch_size: int = 512, chunk: int = 1024, workers: int = 0,
    names: Collection[str] | None = None,
) -> dict[str, float]:
    """Embed `dataset` and compute `retrieval_metrics` on it (all metrics, or those in `names`)."""
    embeddings, labels = embed(model, eval_loader(dataset, batch_size, workers), device)
    return retrieval_metrics(embeddings, labels, chunk, names=names)


def metrics_table(metrics: dict[str, float], title: str) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.4f}")
    return table


def evaluate_command(checkpoint: Checkpoint, run_id: str | None, *, split: str = "test", protocol: str = "both", tracking_uri: str | None = None) -> dict[str, float]:
    """`itemrec evaluate RUN|CHECKPOINT`: rebuild the model and data from the checkpoint's config,
    evaluate the split, print the metrics (and log them as `<split>/...` to the run if known)."""
    from retrieval.pipeline import restore

    config, model, splits, device = restore(checkpoint)
    metrics = evaluate_split(model, splits.get(split), device, config.train.eval_batch_size, config.train.eval_chunk, config.data.workers)
    Console().print(metrics_table(metrics, f"{config.name}: {split}"))
    if run_id:
        from itemrec.experiment import tracking

        with tracking.run(config.name, uri=tracking_uri, run_id=run_id):
            tracking.log_metrics(metrics, prefix=f"{split}/")
        print(f"run id: {run_id}")
    return metrics


def write_metrics(metrics: dict[str, float], path: Path) -> Path:
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True))
    return path
