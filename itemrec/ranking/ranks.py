r"""Exact and smooth ranks of each query's positives among its candidates.

A batch holds Q queries, each with one row of N candidates: `scores [Q, N]` and
`relevance [Q, N]` (`> 0` is a positive; graded values allowed). Ranks are computed for the
positives only, so every pairwise tensor is `[Q, P, N]` with P the largest positive count in the
batch; shorter rows are padded and the padding is flagged in `mask [Q, P]`.

Ranks count ties as wrongly ordered ($H(0) = 1$), so a positive tied with a negative is ranked
after it:

$$
\mathrm{rank}(k) = 1 + \sum_{j \ne k} H(s_j - s_k)
$$
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from itemrec.ranking.blockwise import DEFAULT_BLOCK_ELEMENTS, suprank_ranks
from itemrec.ranking.surrogates import SupRank, heaviside

Step = Callable[[Tensor], Tensor]

DEFAULT_MAX_ELEMENTS = 2**25
"""Largest pairwise tensor (elements) built at once; bigger batches are chunked over queries."""


def check_rows(scores: Tensor, relevance: Tensor) -> None:
    """Assert the `[Q, N]` row layout shared by every function of the core."""
    assert scores.dim() == 2, f"scores must be [Q, N], got {tuple(scores.shape)}"
    assert relevance.shape == scores.shape, (
        f"relevance {tuple(relevance.shape)} must match scores {tuple(scores.shape)}"
    )


def reduce_queries(values: Tensor, valid: Tensor, reduction: str) -> Tensor:
    """Mean of per-query `values [Q]` over `valid [Q]` queries (0, graph kept, if none is), or
    the values themselves with 0 for invalid queries (`reduction="none"`)."""
    values = torch.where(valid, values, torch.zeros_like(values))
    if reduction == "none":
        return values
    assert reduction == "mean", f"reduction must be 'mean' or 'none', got {reduction!r}"
    return values.sum() / valid.sum().clamp(min=1)


def positives(relevance: Tensor) -> tuple[Tensor, Tensor]:
    """Candidate indices of each query's positives, padded to the largest count.

    Returns `index [Q, P]` (long; padding repeats a valid index) and `mask [Q, P]` (bool).
    """
    pos = relevance > 0  # [Q, N]
    q, n = pos.shape
    count = pos.sum(1)  # [Q]
    p = int(count.max()) if pos.numel() else 0
    slot = torch.where(pos, pos.cumsum(1) - 1, p)  # [Q, N]  the j-th positive goes to slot j
    candidates = torch.arange(n, device=pos.device).expand(q, n)
    index = torch.zeros(q, p + 1, dtype=torch.long, device=pos.device)
    index = index.scatter_(1, slot, candidates)[:, :p]  # slot p collects the negatives: dropped
    mask = torch.arange(p, device=relevance.device) < count[:, None]
    return torch.where(mask, index, 0), mask


class Ranks(NamedTuple):
    """Exact ranks of each query's positives (padded entries are meaningless; see `mask`)."""

    rank: Tensor  # [Q, P]  1 + #{j ≠ k : s_j ≥ s_k}
    rank_pos: Tensor  # [Q, P]  1 + #{j ∈ Ω+, j ≠ k : s_j ≥ s_k}
    rank_neg: Tensor  # [Q, P]  #{j ∈ Ω- : s_j ≥ s_k}
    index: Tensor  # [Q, P]  candidate index of the positive
    mask: Tensor  # [Q, P]  True for a real positive


def exact_ranks(scores: Tensor, relevance: Tensor) -> Ranks:
    r"""Exact `rank`, `rank+` and `rank-` of every positive (no gradient: they are step functions).

    $$
    \mathrm{rank}^+(k) = 1 + \sum_{j \in \Omega^+, j \ne k} H(s_j - s_k), \qquad
    \mathrm{rank}^-(k) = \sum_{j \in \Omega^-} H(s_j - s_k)
    $$

    and $\mathrm{rank} = \mathrm{rank}^+ + \mathrm{rank}^-$.
    """
    check_rows(scores, relevance)
    index, mask = positives(relevance)
    with torch.no_grad():
        s_pos = scores.gather(1, index)  # [Q, P]
        ahead = heaviside(scores[:, None, :] - s_pos[:, :, None])  # [Q, P, N], self counts 1
        is_pos = (relevance > 0).to(scores.dtype)[:, None, :]  # [Q, 1, N]
        rank_pos = (ahead * is_pos).sum(-1)
        rank_neg = (ahead * (1 - is_pos)).sum(-1)
    return Ranks(rank_pos + rank_neg, rank_pos, rank_neg, index, mask)


def surrogate_ranks(
    scores: Tensor, relevance: Tensor, step: Step, index: Tensor, max_elements: int = DEFAULT_MAX_ELEMENTS
) -> tuple[Tensor, Tensor]:
    r"""SupRank's split of the rank of positive k into an exact and a smooth part.

    $$
    \mathrm{rank}_{\ge}(k) = 1 + \sum_{j \ne k, \, \mathrm{rel}_j \ge \mathrm{rel}_k} H(s_j - s_k)
    $$

    $$
    \mathrm{rank}_{<}(k) = \sum_{j : \mathrm{rel}_j < \mathrm{rel}_k} \mathrm{step}(s_j - s_k)
    $$

    `rank_geq` ($\mathrm{rank}_{\ge}$) is exact, with no gradient (piecewise constant; a smooth
    version gives bad gradients between equally relevant items); `rank_lt` ($\mathrm{rank}_{<}$)
    is smooth and carries the gradient.

    With binary relevance these are $\mathrm{rank}^+$ and $\mathrm{rank}^-_s$; `rank_geq + rank_lt` is the smooth
    rank. `index [Q, P]` selects the positives (from `positives`). Returns two `[Q, P]` tensors.
    With `step` a `SupRank`, the sums run over blocks of at most `max_elements` pairs
    (`blockwise.suprank_ranks`): the same values and gradients without `[Q, P, N]` autograd
    intermediates, so no chunking is needed around it. Any other step goes through autograd on
    the whole `[Q, P, N]` (chunk with `map_rows`).
    """
    if isinstance(step, SupRank):
        block = min(max_elements, DEFAULT_BLOCK_ELEMENTS)
        return suprank_ranks(
            scores, relevance, index, step.tau, step.rho, step.delta, step.start, step.resolved_offset, block
        )
    s_pos = scores.gather(1, index)  # [Q, P]
    r_pos = relevance.gather(1, index)  # [Q, P]
    diff = scores[:, None, :] - s_pos[:, :, None]  # [Q, P, N]  s_j - s_k
    lower = relevance[:, None, :] < r_pos[:, :, None]  # [Q, P, N]
    with torch.no_grad():
        rank_geq = (heaviside(diff) * ~lower).sum(-1)  # self included: H(0) = 1
    rank_lt = (step(diff) * lower).sum(-1)
    return rank_geq, rank_lt


def smooth_ranks(scores: Tensor, relevance: Tensor, step: Step, index: Tensor) -> tuple[Tensor, Tensor]:
    r"""Smooth-AP's ranks, the surrogate on every pair, the query's own candidate excluded.

    $$
    \mathrm{rank}_s(k) = 1 + \sum_{j \ne k} \mathrm{step}(s_j - s_k), \qquad
    \mathrm{rank}^+_s(k) = 1 + \sum_{j \in \Omega^+, j \ne k} \mathrm{step}(s_j - s_k)
    $$

    Returns `(rank_s, rank_pos_s)`, both `[Q, P]`.
    """
    s_pos = scores.gather(1, index)  # [Q, P]
    diff = scores[:, None, :] - s_pos[:, :, None]  # [Q, P, N]
    self_pair = torch.arange(scores.shape[1], device=scores.device) == index[:, :, None]
    soft = step(diff).masked_fill(self_pair, 0.0)  # [Q, P, N]
    is_pos = (relevance > 0).to(scores.dtype)[:, None, :]  # [Q, 1, N]
    return 1 + soft.sum(-1), 1 + (soft * is_pos).sum(-1)


def h_rank(scores: Tensor, relevance: Tensor, index: Tensor, max_elements: int = DEFAULT_MAX_ELEMENTS) -> Tensor:
    r"""HAPPIER's hierarchical rank of each positive, exact (no gradient).

    $$
    \text{H-rank}(k) = \mathrm{rel}(k)
    + \sum_{j \in \Omega^+, j \ne k} \min(\mathrm{rel}(k), \mathrm{rel}(j)) \, H(s_j - s_k)
    $$

    The self pair contributes $\min(\mathrm{rel}(k), \mathrm{rel}(k)) H(0) = \mathrm{rel}(k)$ and
    negatives contribute 0, so this is $\sum_j \min(\mathrm{rel}(k), \mathrm{rel}(j)) H(s_j - s_k)$
    over all candidates. Returns `[Q, P]`; the pairwise
    work runs over blocks of queries of at most `max_elements` pairs.
    """
    q, n = scores.shape
    rows = max(1, max_elements // max(1, index.shape[1] * n))
    with torch.no_grad():
        s_pos = scores.gather(1, index)  # [Q, P]
        r_pos = relevance.gather(1, index)  # [Q, P]
        parts = []
        for a in range(0, q, rows):
            b = min(q, a + rows)
            ahead = heaviside(scores[a:b, None, :] - s_pos[a:b, :, None])  # [q, P, N]
            parts.append((torch.minimum(relevance[a:b, None, :], r_pos[a:b, :, None]) * ahead).sum(-1))
        return torch.cat(parts) if parts else s_pos.new_zeros(s_pos.shape)


def map_rows(
    fn: Callable[..., tuple[Tensor, ...]],
    scores: Tensor,
    *rows: Tensor,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    row_elements: Tensor | None = None,
) -> tuple[Tensor, ...]:
    """Apply `fn(scores, *rows) -> per-query tensors` over chunks of consecutive queries.

    A chunk's pairwise tensors stay under `max_elements`: each query costs `row_elements [Q]`
    elements, by default the padded `[q, P, N]` layout's P·N (P the batch's largest positive
    count); a function that builds one `[N]` row per positive, no padding, passes its own
    (positives × N). When more than one chunk is needed and gradients are on, each chunk is
    checkpointed: only its inputs are kept and its pairwise tensors are rebuilt during backward,
    so peak memory is one chunk's.
    """
    q, n = scores.shape
    if row_elements is None:
        p = max(1, int((rows[0] > 0).sum(1).max())) if q else 1
        row_elements = torch.full((q,), p * max(n, 1), dtype=torch.long)
    total = torch.cumsum(row_elements.long().clamp(min=1).cpu(), 0)  # [Q]
    if q == 0 or int(total[-1]) <= max_elements:
        return fn(scores, *rows)
    grad = torch.is_grad_enabled() and scores.requires_grad
    parts, start = [], 0
    while start < q:  # greedy: as many queries as fit, at least one
        before = int(total[start - 1]) if start else 0
        stop = max(start + 1, int(torch.searchsorted(total, before + max_elements, right=True)))
        args = (scores[start:stop], *(r[start:stop] for r in rows))
        parts.append(checkpoint(fn, *args, use_reentrant=False) if grad else fn(*args))
        start = stop
    return tuple(torch.cat(t) for t in zip(*parts))
