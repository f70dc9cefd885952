"""Exact ranking metrics, batched over queries.

Inputs are rows: `scores [Q, N]` and `relevance [Q, N]` (`> 0` is relevant; graded values for
NDCG). Each metric returns the mean over queries that have a relevant candidate
(`reduction="mean"`) or one value per query (`reduction="none"`, 0 for a query without any).
Queries without positives are skipped, never NaN: count them with `(relevance > 0).any(1)`.

Ties are broken pessimistically: candidates are sorted by decreasing score and, among equal
scores, less relevant candidates come first. For a positive tied with a negative this is the
`H(0) = 1` convention of the losses (the positive is ranked after the negative).

Cut-offs: `k` larger than N is allowed; `precision@k` still divides by k.
"""

from __future__ import annotations

import torch
from torch import Tensor

from itemrec.ranking.batch import hierarchical_relevance
from itemrec.ranking.ranks import check_rows, reduce_queries


def rank_order(scores: Tensor, relevance: Tensor) -> Tensor:
    """`[Q, N]` candidate indices from best to worst, ties broken pessimistically.

    Order: decreasing score, then increasing relevance, then increasing index. With float32
    scores and integer relevance this is one stable sort of an exact int64 key (see
    `_score_relevance_key`); otherwise two stable sorts, relevance first.
    """
    check_rows(scores, relevance)
    key = _score_relevance_key(scores, relevance)
    if key is not None:
        return torch.argsort(key, dim=1, stable=True)
    by_relevance = torch.argsort(relevance, dim=1, stable=True)  # ascending relevance
    by_score = torch.argsort(scores.gather(1, by_relevance), dim=1, descending=True, stable=True)
    return by_relevance.gather(1, by_score)


def _score_relevance_key(scores: Tensor, relevance: Tensor) -> Tensor | None:
    """int64 `[Q, N]` key whose increasing order is decreasing score then increasing relevance,
    or None where it would not be exact (scores not float32, relevance not integer, a NaN score).

    A float32's bits, read as int32 with the 31 low bits flipped for negative numbers, increase
    with its value (`-0.0` is first made `+0.0`, as the two compare equal); the key is
    `-ordered · span + (relevance - min)` with `span` the relevance range, so it fits in int64.
    """
    if scores.dtype != torch.float32 or relevance.dtype.is_floating_point or relevance.dtype.is_complex or scores.numel() == 0:
        return None
    if torch.isnan(scores).any():
        return None
    rel = relevance.long()
    low, high = int(rel.min()), int(rel.max())
    span = high - low + 1
    if span > 2**30:
        return None
    bits = (scores + 0.0).view(torch.int32).long()  # + 0.0 turns -0.0 into +0.0
    ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)  # monotone in the float value
    return (-ordered) * span + (rel - low)


def ideal_levels(levels: Tensor, num_levels: int) -> Tensor:
    r"""`[Q, N]` each row's levels `0..num_levels` sorted in decreasing order (the ideal ranking),
    built from the counts: position $p$ holds $\sum_{v=1}^{L} [p < \#\{j : t_j \ge v\}]$ with
    $t$ = `levels` (no sort)."""
    t = levels.long()
    positions = torch.arange(t.shape[1], device=t.device)[None, :]
    ideal = torch.zeros_like(t)
    for v in range(1, num_levels + 1):
        ideal += positions < (t >= v).sum(1, keepdim=True)
    return ideal


def ranked_relevance(scores: Tensor, relevance: Tensor) -> Tensor:
    """`[Q, N]` relevance of the candidates in rank order (see `rank_order`)."""
    return relevance.gather(1, rank_order(scores, relevance))


def _discount(n: int, like: Tensor) -> Tensor:
    r"""`[n]` $1 / \log_2(i + 1)$ for positions $i = 1, \dots, n$."""
    return 1.0 / torch.log2(torch.arange(2, n + 2, device=like.device, dtype=torch.float64)).to(like.dtype)


def topk_metrics(
    ranked: Tensor,
    num_relevant: Tensor,
    ks: tuple[int, ...] = (10, 20, 50),
    ideal: Tensor | None = None,
) -> dict[str, Tensor]:
    """Top-k metrics of ranked lists, per query.

    `ranked [Q, K]`: relevance of each query's top-K candidates in order (graded allowed; the
    rest of the ranking may be cut off). `num_relevant [Q]`: number of relevant candidates of
    each query in the whole catalogue (recall's denominator). `ideal [Q, K]`: the ideal
    relevance list for NDCG (decreasing); defaults to binary, `num_relevant` ones. Returns
    `{"recall@k", "ndcg@k", "precision@k", "hit@k", "mrr@k"}` → `[Q]` float tensors, 0 for a
    query with nothing relevant. Used by `full_ranking_topk` evaluation and by the
    `*_at_k` functions below.
    """
    width = ranked.shape[1]
    dtype = torch.float32 if not ranked.is_floating_point() else ranked.dtype
    ranked = ranked.to(dtype)
    hit = (ranked > 0).to(dtype)  # [Q, K]
    num_relevant = num_relevant.to(dtype)
    if ideal is None:
        ideal = (torch.arange(width, device=ranked.device)[None, :] < num_relevant[:, None]).to(dtype)
    discount = _discount(width, ranked)  # [K]
    dcg = torch.cumsum((torch.exp2(ranked) - 1) * discount, dim=1)  # [Q, K]
    idcg = torch.cumsum((torch.exp2(ideal.to(dtype)) - 1) * discount, dim=1)  # [Q, K]
    hits = torch.cumsum(hit, dim=1)  # [Q, K]
    first = torch.where(hit.any(1), hit.argmax(1), torch.full_like(num_relevant, width, dtype=torch.long))
    out: dict[str, Tensor] = {}
    for k in ks:
        c = min(k, width) - 1
        out[f"recall@{k}"] = hits[:, c] / num_relevant.clamp(min=1)
        out[f"ndcg@{k}"] = dcg[:, c] / idcg[:, c].clamp(min=torch.finfo(dtype).tiny)
        out[f"precision@{k}"] = hits[:, c] / k
        out[f"hit@{k}"] = (hits[:, c] > 0).to(dtype)
        out[f"mrr@{k}"] = torch.where(first < min(k, width), 1.0 / (first + 1).to(dtype), 0.0)
    return out


def _at_k(name: str, scores: Tensor, relevance: Tensor, k: int, reduction: str) -> Tensor:
    ranked = ranked_relevance(scores, relevance)
    ideal = relevance.clamp(min=0).sort(dim=1, descending=True).values
    num_relevant = (relevance > 0).sum(1)
    value = topk_metrics(ranked.clamp(min=0), num_relevant, (k,), ideal)[f"{name}@{k}"]
    return reduce_queries(value, num_relevant > 0, reduction)


def hit_at_k(scores: Tensor, relevance: Tensor, k: int, reduction: str = "mean") -> Tensor:
    r"""1 if any relevant candidate is in the top k (metric learning's "R@k"), else 0.

    $$
    \mathrm{hit@}k = [\, |\text{top-}k \cap \Omega^+| > 0 \,]
    $$
    """
    return _at_k("hit", scores, relevance, k, reduction)


def recall_at_k(scores: Tensor, relevance: Tensor, k: int, reduction: str = "mean") -> Tensor:
    r"""Recommendation's Recall@k, the share of the relevant candidates found in the top k.

    $$
    \mathrm{recall@}k = |\text{top-}k \cap \Omega^+| \, / \, |\Omega^+|
    $$
    """
    return _at_k("recall", scores, relevance, k, reduction)


def precision_at_k(scores: Tensor, relevance: Tensor, k: int, reduction: str = "mean") -> Tensor:
    r"""Precision@k, the share of the top k that is relevant (k even when N < k).

    $$
    \mathrm{precision@}k = |\text{top-}k \cap \Omega^+| \, / \, k
    $$
    """
    return _at_k("precision", scores, relevance, k, reduction)


def ndcg_at_k(scores: Tensor, relevance: Tensor, k: int, reduction: str = "mean") -> Tensor:
    r"""NDCG@k with graded gains; binary relevance gains 1.

    $$
    \mathrm{NDCG@}k = \mathrm{DCG@}k \, / \, \mathrm{IDCG@}k
    $$

    $$
    \mathrm{DCG@}k = \sum_{i=1}^{k} \frac{2^{\mathrm{rel}_i} - 1}{\log_2(i + 1)}
    $$

    with $\mathrm{rel}_i$ the relevance at rank $i$; IDCG@k is the DCG@k of the ideal order.
    """
    return _at_k("ndcg", scores, relevance, k, reduction)


def mrr(scores: Tensor, relevance: Tensor, k: int | None = None, reduction: str = "mean") -> Tensor:
    r"""Reciprocal rank of the first relevant candidate (0 if it is below `k`).

    $$
    \mathrm{MRR@}k = 1 / \min_{j \in \Omega^+} \mathrm{rank}(j)
    $$
    """
    return _at_k("mrr", scores, relevance, k or scores.shape[1], reduction)


def ranked_ap(hit: Tensor) -> Tensor:
    r"""`[Q]` AP of ranked binary lists `hit [Q, N]` (0 if none is a hit).

    $$
    \mathrm{AP} = \frac{1}{|\Omega^+|} \sum_{i : \mathrm{hit}_i} \mathrm{precision@}i
    $$
    """
    hit = hit.to(torch.float64)
    precision = torch.cumsum(hit, 1) / torch.arange(1, hit.shape[1] + 1, device=hit.device)
    return (precision * hit).sum(1) / hit.sum(1).clamp(min=1)


def ranked_map_at_r(hit: Tensor) -> Tensor:
    r"""`[Q]` mAP@R of ranked binary lists `hit [Q, N]`: AP cut at $R = |\Omega^+|$ (0 if none)."""
    hit = hit.to(torch.float64)
    positions = torch.arange(1, hit.shape[1] + 1, device=hit.device)
    precision = torch.cumsum(hit, 1) / positions
    r = hit.sum(1)
    within = positions[None, :] <= r[:, None]
    return (precision * hit * within).sum(1) / r.clamp(min=1)


def ranked_h_ap(levels: Tensor, rel: Tensor, num_levels: int) -> Tensor:
    """`[Q]` H-AP of ranked lists: shared levels `levels [Q, N]` and their relevance `rel [Q, N]`
    in rank order (see `h_ap`). One pass per level, memory `O(Q · N)`."""
    levels = levels.long()
    rel = rel.to(torch.float64)
    level_rel = torch.zeros(levels.shape[0], num_levels + 1, dtype=rel.dtype, device=rel.device)
    level_rel.scatter_(1, levels, rel)  # [Q, L+1] relevance of each level for this query
    hrank = rel.clone()
    for u in range(1, num_levels + 1):
        is_u = (levels == u).to(rel.dtype)
        before = torch.cumsum(is_u, 1) - is_u  # level-u candidates ranked strictly before
        hrank += torch.minimum(rel, level_rel[:, u : u + 1]) * before
    positions = torch.arange(1, levels.shape[1] + 1, device=levels.device, dtype=rel.dtype)
    relevant = levels > 0
    total = (rel * relevant).sum(1)
    return (hrank / positions * relevant).sum(1) / total.clamp(min=torch.finfo(rel.dtype).tiny)


def ranked_asi(levels: Tensor, num_levels: int) -> Tensor:
    """`[Q]` ASI of shared levels in rank order `levels [Q, N]` (see `asi`)."""
    t = levels.long()
    t_star = ideal_levels(t, num_levels)  # the ideal order
    inter = torch.zeros(t.shape, dtype=torch.float64, device=t.device)
    for v in range(1, num_levels + 1):
        inter += torch.minimum(torch.cumsum(t == v, 1), torch.cumsum(t_star == v, 1))
    positions = torch.arange(1, t.shape[1] + 1, device=t.device)
    r = (t > 0).sum(1)
    within = positions[None, :] <= r[:, None]
    return (inter / positions * within).sum(1) / r.clamp(min=1)


def ap(scores: Tensor, relevance: Tensor, reduction: str = "mean") -> Tensor:
    r"""Average precision (relevance binarized).

    $$
    \mathrm{AP} = \frac{1}{|\Omega^+|}
    \sum_{k \in \Omega^+} \frac{\mathrm{rank}^+(k)}{\mathrm{rank}(k)}
    $$
    """
    hit = ranked_relevance(scores, relevance) > 0  # [Q, N]
    return reduce_queries(ranked_ap(hit).to(scores.dtype), hit.any(1), reduction)


def map_at_r(scores: Tensor, relevance: Tensor, reduction: str = "mean") -> Tensor:
    r"""mAP@R, AP truncated to the first R ranks, with $R = |\Omega^+|$.

    $$
    \mathrm{mAP@}R = \frac{1}{R} \sum_{i=1}^{R} \mathrm{precision@}i \cdot \mathrm{hit}_i
    $$

    with $\mathrm{hit}_i = 1$ when the candidate at rank $i$ is relevant.
    """
    hit = ranked_relevance(scores, relevance) > 0  # [Q, N]
    return reduce_queries(ranked_map_at_r(hit).to(scores.dtype), hit.any(1), reduction)


def h_ap(
    scores: Tensor, levels: Tensor, num_levels: int, alpha: float = 1.0, reduction: str = "mean"
) -> Tensor:
    r"""Hierarchical AP (HAPPIER) from shared levels `[Q, N]` (0..L, see `batch.shared_levels`).

    $$
    \text{H-AP} = \frac{1}{\sum_{k \in \Omega^+} \mathrm{rel}(k)}
    \sum_{k \in \Omega^+} \frac{\text{H-rank}(k)}{\mathrm{rank}(k)}
    $$

    $$
    \text{H-rank}(k) = \mathrm{rel}(k)
    + \sum_{j \in \Omega^+ \text{ ranked before } k} \min(\mathrm{rel}(k), \mathrm{rel}(j))
    $$

    with $\mathrm{rel} = w_l / n_l$ (`batch.hierarchical_relevance`); ties are broken
    pessimistically on `rel`. Cost `O(Q · N · L)`: candidates are grouped by level, never paired.
    With one level it equals `ap`.
    """
    check_rows(scores, levels)
    levels = levels.long()
    rel = hierarchical_relevance(levels, num_levels, alpha, dtype=torch.float64)  # [Q, N]
    order = rank_order(scores, rel)
    value = ranked_h_ap(levels.gather(1, order), rel.gather(1, order), num_levels)
    return reduce_queries(value.to(scores.dtype), (levels > 0).any(1), reduction)


def asi(scores: Tensor, levels: Tensor, num_levels: int, reduction: str = "mean") -> Tensor:
    r"""Average set intersection over the first R ranks, R = the number of candidates at level ≥ 1.

    $$
    \mathrm{ASI} = \frac{1}{R} \sum_{n=1}^{R} \mathrm{SI}(n)
    $$

    $$
    \mathrm{SI}(n) = \frac{1}{n}
    \sum_{v \ge 1} \min\big(\#\{i \le n : t_i = v\}, \, \#\{i \le n : t^*_i = v\}\big)
    $$

    $t$ are the shared levels in rank order, $t^*$ in the ideal (decreasing) order.
    """
    check_rows(scores, levels)
    levels = levels.long()
    value = ranked_asi(levels.gather(1, rank_order(scores, levels)), num_levels)
    return reduce_queries(value.to(scores.dtype), (levels > 0).any(1), reduction)
