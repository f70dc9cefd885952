"""Turn a retrieval batch (embeddings + labels) into rows of candidates for the losses and metrics.

Labels are flat `[B]` or hierarchical `[B, L]`, columns ordered from the finest level to the
coarsest (e.g. product, category). The *shared level* of two samples is the number of label
columns they agree on: `L` for the same fine label, `0` for nothing in common (the hierarchy is a
tree, so agreeing on a level means agreeing on every coarser one).
"""

from __future__ import annotations

import torch
from torch import Tensor


def shared_levels(query_labels: Tensor, candidate_labels: Tensor) -> Tensor:
    """`[B, M]` number of label levels each query shares with each candidate (0..L)."""
    if query_labels.dim() == 1:
        query_labels = query_labels[:, None]
    if candidate_labels.dim() == 1:
        candidate_labels = candidate_labels[:, None]
    assert query_labels.shape[1] == candidate_labels.shape[1], "label levels differ"
    return (query_labels[:, None, :] == candidate_labels[None, :, :]).sum(-1)  # [B, M]


def off_diagonal_index(b: int, device: torch.device | None = None) -> Tensor:
    """`[B, B-1]` column indices of every other sample, row i skipping i (removal by index)."""
    cols = torch.arange(b - 1, device=device)[None, :]  # [1, B-1]
    return cols + (cols >= torch.arange(b, device=device)[:, None]).long()


def retrieval_rows(
    embeddings: Tensor,
    labels: Tensor,
    memory_embeddings: Tensor | None = None,
    memory_labels: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Scores and shared levels of each sample as a query against the rest of the batch.

    Returns `scores [B, B-1 (+M)]` (dot products; cosine for normalized embeddings) and
    `levels [B, B-1 (+M)]`; the query itself is removed by index. With a cross-batch memory
    (`memory_embeddings [M, D]`, `memory_labels [M(, L)]`) its entries are appended as extra
    candidates. Turn levels into relevance with `levels == L` (binary, same fine label),
    `hierarchical_relevance` (H-AP) or use them as graded relevance (NDCG).
    """
    b = embeddings.shape[0]
    assert labels.shape[0] == b, f"{b} embeddings but {labels.shape[0]} labels"
    index = off_diagonal_index(b, embeddings.device)  # [B, B-1]
    scores = (embeddings @ embeddings.T).gather(1, index)  # [B, B-1]
    levels = shared_levels(labels, labels).gather(1, index)  # [B, B-1]
    if memory_embeddings is not None:
        assert memory_labels is not None and memory_labels.shape[0] == memory_embeddings.shape[0]
        scores = torch.cat([scores, embeddings @ memory_embeddings.T], dim=1)
        levels = torch.cat([levels, shared_levels(labels, memory_labels)], dim=1)
    return scores, levels


def hierarchical_relevance(
    levels: Tensor, num_levels: int, alpha: float = 1.0, dtype: torch.dtype = torch.float32
) -> Tensor:
    r"""HAPPIER's relevance from shared levels `[Q, N]`: a candidate at level $l$ gets

    $$
    \mathrm{rel} = w_l / n_l, \qquad w_l = (l / L)^{\alpha}
    $$

    where $n_l$ is the number of candidates of this query at level $l$, so each level carries a
    total weight $w_l$ whatever its size. Level 0 has relevance 0.
    """
    levels = levels.long()
    counts = torch.zeros(levels.shape[0], num_levels + 1, dtype=dtype, device=levels.device)
    counts.scatter_add_(1, levels, torch.ones_like(levels, dtype=counts.dtype))  # [Q, L+1]
    weight = (torch.arange(num_levels + 1, dtype=dtype, device=levels.device) / num_levels) ** alpha  # [L+1]
    per_level = weight / counts.clamp(min=1)  # [Q, L+1]
    return per_level.gather(1, levels)
