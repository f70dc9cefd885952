"""Evaluation: embed a split, rank every image against all the others (itself removed by index),
and compute the retrieval metrics with the core's exact per-query metrics, in chunks of queries.

Metrics: `hit@{1,2,4,8,16,32}` (any same-class image in the top k, the metric-learning "R@k"),
`map@r`, `ap`, `ndcg` (full ranking, graded by shared level), `h_ap` and `asi` (hierarchical), and
with 2+ label levels `ap_level{j}`: AP where relevant means sharing label column j (0 = finest).
Every metric needs each query's full ranking, so a chunk of `chunk` queries is scored against
all N images and fully sorted: memory `chunk x N`, never `N x N`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from itemrec.ranking import ap, asi, h_ap, hit_at_k, map_at_r, ndcg_at_k, shared_levels

HIT_KS = (1, 2, 4, 8, 16, 32)
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


def retrieval_metrics(
    embeddings: Tensor, labels: Tensor, chunk: int = 1024, ks: tuple[int, ...] = HIT_KS
) -> dict[str, float]:
    """Mean of every metric over the queries it is defined for (those with a relevant image)."""
    labels = labels.reshape(len(labels), -1).long()
    embeddings = embeddings.float()
    num_levels = labels.shape[1]
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}

    def add(name: str, values: Tensor, valid: Tensor) -> None:
        sums[name] = sums.get(name, 0.0) + float(values[valid].double().sum())
        counts[name] = counts.get(name, 0) + int(valid.sum())

    for start in range(0, len(embeddings), chunk):
        scores, levels = query_rows(embeddings, labels, start, min(start + chunk, len(embeddings)))
        relevant = (levels == num_levels).float()
        has_match, has_related = relevant.any(1), (levels > 0).any(1)
        for k in ks:
            add(f"hit@{k}", hit_at_k(scores, relevant, k, reduction="none"), has_match)
        add("map@r", map_at_r(scores, relevant, reduction="none"), has_match)
        add("ap", ap(scores, relevant, reduction="none"), has_match)
        add("ndcg", ndcg_at_k(scores, levels.float(), scores.shape[1], reduction="none"), has_related)
        add("h_ap", h_ap(scores, levels, num_levels, reduction="none"), has_related)
        add("asi", asi(scores, levels, num_levels, reduction="none"), has_related)
        if num_levels > 1:
            for column in range(num_levels):
                shared = (levels >= num_levels - column).float()
                add(f"ap_level{column}", ap(scores, shared, reduction="none"), shared.any(1))
    return {name: sums[name] / counts[name] if counts[name] else 0.0 for name in sums}


def evaluate_split(model: torch.nn.Module, dataset: Dataset, device, batch_size: int = 512, chunk: int = 1024, workers: int = 0) -> dict[str, float]:
    """Embed `dataset` and compute `retrieval_metrics` on it."""
    embeddings, labels = embed(model, eval_loader(dataset, batch_size, workers), device)
    return retrieval_metrics(embeddings, labels, chunk)


def metrics_table(metrics: dict[str, float], title: str) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.4f}")
    return table


def evaluate_command(state: dict, run_id: str | None, *, split: str = "test", protocol: str = "both", tracking_uri: str | None = None) -> dict[str, float]:
    """`itemrec evaluate RUN|CHECKPOINT`: rebuild the model and data from the checkpoint's config,
    evaluate the split, print the metrics (and log them as `<split>/...` to the run if known)."""
    from retrieval.train import restore

    config, model, splits, device = restore(state)
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
