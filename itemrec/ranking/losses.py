"""Ranking losses on rows of candidates, in the style of `torch.nn.functional`.

Every loss takes `scores [Q, N]` and `relevance [Q, N]` (`> 0` marks a positive; graded values
where the loss uses them) and returns a scalar (`reduction="mean"`, averaged over the queries the
loss is defined for) or one value per query (`reduction="none"`, 0 where undefined). Queries with
no positive are skipped, never NaN; `has_positive(relevance)` counts them.

Square retrieval batches become rows with `itemrec.ranking.batch.retrieval_rows` (each embedding a
query against the rest of the batch, itself excluded); recommendation batches are rows already.
Pairwise work is `[Q, P, N]` (P = most positives in a row) and is chunked over queries under
`max_elements`.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from itemrec.ranking.ranks import (
    DEFAULT_MAX_ELEMENTS,
    check_rows,
    h_rank,
    map_rows,
    positives,
    reduce_queries,
    smooth_ranks,
    surrogate_ranks,
)
from itemrec.ranking.surrogates import SupRank, sigmoid_step

RECALL_KS = (1, 2, 4, 8, 16)


def has_positive(relevance: Tensor) -> Tensor:
    """`[Q]` bool: queries with at least one positive (the others are skipped by every loss)."""
    return (relevance > 0).any(1)


def _suprank(tau: float, rho: float, delta: float, start: float, offset: float | None) -> SupRank:
    return SupRank(tau, rho, delta, start, offset)


# --------------------------------------------------------------------------- SupAP and Smooth-AP


def _sup_ap_rows(scores: Tensor, relevance: Tensor, step, max_elements: int) -> tuple[Tensor, Tensor]:
    binary = (relevance > 0).to(scores.dtype)
    index, mask = positives(binary)
    rank_pos, rank_neg_s = surrogate_ranks(scores, binary, step, index, max_elements)  # [Q, P] each
    precision = (rank_pos / (rank_pos + rank_neg_s)) * mask
    ap_s = precision.sum(1) / mask.sum(1).clamp(min=1)
    return 1 - ap_s, mask.any(1)


def sup_ap(
    scores: Tensor,
    relevance: Tensor,
    tau: float = 0.01,
    rho: float = 100.0,
    delta: float = 0.05,
    start: float = 0.5,
    offset: float | None = None,
    reduction: str = "mean",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Tensor:
    """SupAP (ROADMAP's smooth AP) loss with SupRank's surrogate `H-` on negatives::

        1 - 1/|Ω+| Σ_{k∈Ω+} rank+(k) / (rank+(k) + rank-_s(k))

    `rank+` is exact and carries no gradient; `rank-_s` uses `H-` (`suprank_step`). Since
    `rank-_s ≥ rank-` (start ≥ 0.5, no ties), the loss is ≥ `1 - AP`. Relevance is binarized.
    """
    check_rows(scores, relevance)
    loss, valid = _sup_ap_rows(scores, relevance, _suprank(tau, rho, delta, start, offset), max_elements)
    return reduce_queries(loss, valid, reduction)


def _smooth_ap_rows(scores: Tensor, relevance: Tensor, tau: float) -> tuple[Tensor, Tensor]:
    index, mask = positives(relevance)
    rank_s, rank_pos_s = smooth_ranks(scores, relevance, functools.partial(sigmoid_step, tau=tau), index)
    ap_s = ((rank_pos_s / rank_s) * mask).sum(1) / mask.sum(1).clamp(min=1)
    return 1 - ap_s, mask.any(1)


def smooth_ap(
    scores: Tensor,
    relevance: Tensor,
    tau: float = 0.01,
    reduction: str = "mean",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Tensor:
    """Smooth-AP loss: `σ(x / τ)` replaces `H` on every pair, for `rank` and `rank+`::

        1 - 1/|Ω+| Σ_{k∈Ω+} (1 + Σ_{j∈Ω+, j≠k} σ((s_j - s_k)/τ)) / (1 + Σ_{j≠k} σ((s_j - s_k)/τ))

    A baseline: the sigmoid is not a bound of `H`, so the loss does not bound `1 - AP`.
    """
    check_rows(scores, relevance)
    loss, valid = map_rows(
        functools.partial(_smooth_ap_rows, tau=tau), scores, relevance, max_elements=max_elements
    )
    return reduce_queries(loss, valid, reduction)


# --------------------------------------------------------------------------- Sup-R@k


def _sup_recall_rows(scores, relevance, step, ks, temperature, max_elements) -> tuple[Tensor, Tensor]:
    binary = (relevance > 0).to(scores.dtype)
    index, mask = positives(binary)
    rank_pos, rank_neg_s = surrogate_ranks(scores, binary, step, index, max_elements)
    rank_s = rank_pos + rank_neg_s  # [Q, P]
    n_pos = mask.sum(1)  # [Q]
    recalls = []
    for k in ks:
        hits = (torch.sigmoid((k - rank_s) / temperature) * mask).sum(1)
        recalls.append(hits / n_pos.clamp(max=k, min=1))
    return 1 - torch.stack(recalls).mean(0), mask.any(1)


def sup_recall_at_k(
    scores: Tensor,
    relevance: Tensor,
    ks: tuple[int, ...] = RECALL_KS,
    temperature: float = 1.0,
    tau: float = 0.01,
    rho: float = 100.0,
    delta: float = 0.05,
    start: float = 0.5,
    offset: float | None = None,
    reduction: str = "mean",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Tensor:
    """Sup-R@k: one minus the smooth hit-rate-style recall, averaged over `ks`::

        R_s@k = 1/min(|Ω+|, k) Σ_{j∈Ω+} σ((k - rank_s(j)) / t),    rank_s = rank+ + rank-_s

    `t = temperature` (1 by default) smooths the cut at k; `rank-_s` uses SupRank's `H-`.
    """
    check_rows(scores, relevance)
    step = _suprank(tau, rho, delta, start, offset)
    loss, valid = _sup_recall_rows(scores, relevance, step, ks, temperature, max_elements)
    return reduce_queries(loss, valid, reduction)


# --------------------------------------------------------------------------- Sup-NDCG


def _ideal_dcg(gains: Tensor) -> Tensor:
    """`[Q]` DCG of each row's gains sorted in decreasing order."""
    ideal = gains.sort(dim=1, descending=True).values
    discount = torch.log2(torch.arange(2, gains.shape[1] + 2, device=gains.device, dtype=gains.dtype))
    return (ideal / discount).sum(1)


def _sup_ndcg_rows(scores, relevance, step, max_elements) -> tuple[Tensor, Tensor]:
    index, mask = positives(relevance)
    rank_geq, rank_lt = surrogate_ranks(scores, relevance, step, index, max_elements)
    gain = torch.exp2(relevance.gather(1, index)) - 1  # [Q, P]
    dcg_s = (gain / torch.log2(1 + rank_geq + rank_lt) * mask).sum(1)
    idcg = _ideal_dcg(torch.exp2(relevance.clamp(min=0)) - 1)
    return 1 - dcg_s / idcg.clamp(min=torch.finfo(scores.dtype).tiny), mask.any(1)


def sup_ndcg(
    scores: Tensor,
    relevance: Tensor,
    tau: float = 0.01,
    rho: float = 100.0,
    delta: float = 0.05,
    start: float = 0.5,
    offset: float | None = None,
    reduction: str = "mean",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Tensor:
    """Sup-NDCG: one minus a smooth NDCG over the whole row, graded relevance::

        DCG_s = Σ_{j∈Ω+} (2^{rel_j} - 1) / log2(1 + rank_s(j)),    loss = 1 - DCG_s / IDCG

    `rank_s(j)` counts more-or-equally relevant items exactly and less relevant ones with `H-`,
    so `rank_s ≥ rank` and the loss bounds `1 - NDCG` from above, in [0, 1].
    """
    check_rows(scores, relevance)
    loss, valid = _sup_ndcg_rows(scores, relevance, _suprank(tau, rho, delta, start, offset), max_elements)
    return reduce_queries(loss, valid, reduction)


# --------------------------------------------------------------------------- hierarchical AP


def _sup_hap_rows(scores, relevance, step, max_elements) -> tuple[Tensor, Tensor]:
    index, mask = positives(relevance)
    rank_geq, rank_lt = surrogate_ranks(scores, relevance, step, index, max_elements)
    hrank = h_rank(scores, relevance, index, max_elements)  # [Q, P], exact
    total = (relevance.gather(1, index) * mask).sum(1)
    hap_s = (hrank / (rank_geq + rank_lt) * mask).sum(1) / total.clamp(min=torch.finfo(scores.dtype).tiny)
    return 1 - hap_s, mask.any(1)


def sup_hap(
    scores: Tensor,
    relevance: Tensor,
    tau: float = 0.01,
    rho: float = 100.0,
    delta: float = 0.05,
    start: float = 0.5,
    offset: float | None = None,
    reduction: str = "mean",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Tensor:
    """HAPPIER's smooth hierarchical AP loss, `1 - H-AP_s`::

        H-AP_s = 1/Σ_{k∈Ω+} rel(k) · Σ_{k∈Ω+} H-rank(k) / (rank_≥(k) + rank_<,s(k))

    `H-rank` and `rank_≥` (items at least as relevant as k) are exact; items less relevant than k
    are counted with `H-`, so `H-AP_s ≤ H-AP`. Relevance is usually
    `batch.hierarchical_relevance` (`w_l / n_l`); with a single level this is `sup_ap`.
    """
    check_rows(scores, relevance)
    loss, valid = _sup_hap_rows(scores, relevance, _suprank(tau, rho, delta, start, offset), max_elements)
    return reduce_queries(loss, valid, reduction)


# --------------------------------------------------------------------------- calibration, combos


def calibration(scores: Tensor, relevance: Tensor, alpha: float = 0.9, beta: float = 0.6) -> Tensor:
    """Decomposability-gap (calibration) loss on cosine scores::

        L_DG = mean_{pos pairs} [α - s]_+ + mean_{neg pairs} [s - β]_+

    Means run over every (query, candidate) pair of the batch, positives and negatives apart.
    Pulling positives above α and negatives below β everywhere makes batch-wise rankings
    consistent with the ranking over the whole set.
    """
    check_rows(scores, relevance)
    pos = relevance > 0
    pos_term = F.relu(alpha - scores)[pos].sum() / pos.sum().clamp(min=1)
    neg_term = F.relu(scores - beta)[~pos].sum() / (~pos).sum().clamp(min=1)
    return pos_term + neg_term


def roadmap(
    scores: Tensor,
    relevance: Tensor,
    lam: float = 0.1,
    alpha: float = 0.9,
    beta: float = 0.6,
    tau: float = 0.01,
    rho: float = 100.0,
    delta: float = 0.05,
    start: float = 0.5,
    offset: float | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Tensor:
    """ROADMAP: `(1 - λ) · sup_ap + λ · calibration` (λ = 0.1, α = 0.9, β = 0.6)."""
    ap_loss = sup_ap(scores, relevance, tau, rho, delta, start, offset, max_elements=max_elements)
    return (1 - lam) * ap_loss + lam * calibration(scores, relevance, alpha, beta)


def normalized_softmax(
    embeddings: Tensor, labels: Tensor, proxies: Tensor, temperature: float = 0.05
) -> Tensor:
    """Proxy classification loss on the unit sphere::

        CE(softmax(<e/|e|, p_c/|p_c|> / T), y)

    `embeddings [B, D]`, `labels [B]` (class index into `proxies [C, D]`), T = 0.05.
    """
    assert embeddings.dim() == 2 and proxies.dim() == 2 and embeddings.shape[1] == proxies.shape[1]
    logits = F.normalize(embeddings, dim=1) @ F.normalize(proxies, dim=1).T  # [B, C]
    return F.cross_entropy(logits / temperature, labels)


def happier(
    scores: Tensor,
    relevance: Tensor,
    embeddings: Tensor,
    labels: Tensor,
    proxies: Tensor,
    lam: float = 0.1,
    temperature: float = 0.05,
    tau: float = 0.01,
    rho: float = 100.0,
    delta: float = 0.05,
    start: float = 0.5,
    offset: float | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Tensor:
    """HAPPIER: `(1 - λ) · sup_hap + λ · normalized_softmax` on the fine labels (λ = 0.1).

    `scores`/`relevance` are the hierarchical rows of the batch; `embeddings [B, D]` and
    `labels [B]` (fine class indices) feed the proxy clustering term.
    """
    hap_loss = sup_hap(scores, relevance, tau, rho, delta, start, offset, max_elements=max_elements)
    return (1 - lam) * hap_loss + lam * normalized_softmax(embeddings, labels, proxies, temperature)


# --------------------------------------------------------------------------- recommendation anchors


def _bpr_rows(scores: Tensor, relevance: Tensor) -> tuple[Tensor, Tensor]:
    index, mask = positives(relevance)
    s_pos = scores.gather(1, index)  # [Q, P]
    neg = relevance <= 0  # [Q, N]
    s_neg = scores.masked_fill(~neg, float("-inf"))  # positives' columns contribute softplus(-inf) = 0
    pair = F.softplus(s_neg[:, None, :] - s_pos[:, :, None])  # [Q, P, N]  -log σ(s_pos - s_neg)
    n_pairs = mask.sum(1) * neg.sum(1)  # [Q]
    loss = (pair.sum(2) * mask).sum(1) / n_pairs.clamp(min=1)
    return loss, n_pairs > 0


def bpr(
    scores: Tensor, relevance: Tensor, reduction: str = "mean", max_elements: int = DEFAULT_MAX_ELEMENTS
) -> Tensor:
    """Bayesian personalized ranking: `mean_{k∈Ω+, j∈Ω-} -log σ(s_k - s_j)` over each row's pairs."""
    check_rows(scores, relevance)
    loss, valid = map_rows(_bpr_rows, scores, relevance, max_elements=max_elements)
    return reduce_queries(loss, valid, reduction)


WEIGHTINGS = ("user", "interaction")


def reduce_positives(
    row_sum: Tensor, n_pos: Tensor, valid: Tensor, reduction: str = "mean", weighting: str = "user"
) -> Tensor:
    """Reduce a loss summed over each row's positives, `row_sum [Q]` over `n_pos [Q]` positives.

    `weighting="user"`: each valid row counts once, `mean_u (row_sum_u / n_u)` (rows = users).
    `weighting="interaction"`: each (row, positive) pair counts once, `Σ_u row_sum_u / Σ_u n_u`
    over the valid rows, as when a batch is drawn as (user, positive) pairs.
    `reduction="none"` gives `row_sum_u / n_u` per row (0 where invalid) whatever the weighting.
    """
    assert weighting in WEIGHTINGS, f"weighting must be one of {WEIGHTINGS}, got {weighting!r}"
    if weighting == "user" or reduction == "none":
        return reduce_queries(row_sum / n_pos.clamp(min=1), valid, reduction)
    assert reduction == "mean", f"reduction must be 'mean' or 'none', got {reduction!r}"
    row_sum = torch.where(valid, row_sum, torch.zeros_like(row_sum))
    return row_sum.sum() / (n_pos * valid).sum().clamp(min=1)


def sampled_softmax(
    scores: Tensor,
    relevance: Tensor,
    temperature: float = 0.1,
    reduction: str = "mean",
    include_positive: bool = True,
    weighting: str | None = None,
) -> Tensor:
    """Sampled softmax: each positive against the row's negatives.

    `include_positive=True` (InfoNCE, the default)::

        mean_{k∈Ω+} -log( e^{s_k/T} / (e^{s_k/T} + Σ_{j∈Ω-} e^{s_j/T}) )

    `include_positive=False` (SL, the form of the recommendation-loss benchmark: the negatives
    alone in the normaliser, `d_kj = s_j - s_k`)::

        mean_{k∈Ω+} log Σ_{j∈Ω-} exp(d_kj / T)  =  mean_{k∈Ω+} -log( e^{s_k/T} / Σ_{j∈Ω-} e^{s_j/T} )

    It can be negative (a positive far above every negative). Other positives are never in the
    normaliser. `weighting` says what the batch mean averages: `"user"` each row once (mean over
    its positives, then over rows), `"interaction"` each (row, positive) pair once (the
    benchmark's mean over sampled (user, positive) pairs; see `reduce_positives`). `None` picks
    `"user"` with the positive in the normaliser and `"interaction"` without it, so
    `include_positive=False` alone gives the benchmark's loss. A row with no positive or no
    negative is skipped.
    """
    check_rows(scores, relevance)
    if weighting is None:
        weighting = "user" if include_positive else "interaction"
    pos = relevance > 0
    has_neg = (~pos).any(1)
    logits = scores / temperature
    neg_logits = logits.masked_fill(pos, float("-inf"))
    neg_logits = torch.where(has_neg[:, None], neg_logits, torch.zeros_like(logits))  # finite grads
    lse_neg = torch.logsumexp(neg_logits, dim=1, keepdim=True)  # [Q, 1]
    if include_positive:
        per_pos = F.softplus(lse_neg - logits)  # [Q, N]  -log softmax of k vs the negatives
    else:
        per_pos = lse_neg - logits  # [Q, N]  log Σ_j exp((s_j - s_k) / T)
    per_pos = torch.where(pos & has_neg[:, None], per_pos, torch.zeros_like(per_pos))
    return reduce_positives(per_pos.sum(1), pos.sum(1), pos.any(1) & has_neg, reduction, weighting)


def cosine_contrastive(
    scores: Tensor,
    relevance: Tensor,
    margin: float = 0.9,
    negative_weight: float = 10.0,
    reduction: str = "mean",
) -> Tensor:
    """SimpleX's cosine contrastive loss on cosine scores::

        mean_{k∈Ω+} (1 - s_k) + w · mean_{j∈Ω-} [s_j - m]_+

    m = `margin` filters easy negatives; w = `negative_weight` balances the two terms.
    """
    check_rows(scores, relevance)
    pos = relevance > 0
    pos_term = ((1 - scores) * pos).sum(1) / pos.sum(1).clamp(min=1)
    neg_term = (F.relu(scores - margin) * ~pos).sum(1) / (~pos).sum(1).clamp(min=1)
    return reduce_queries(pos_term + negative_weight * neg_term, pos.any(1), reduction)


__all__ = [
    "RECALL_KS",
    "bpr",
    "calibration",
    "cosine_contrastive",
    "happier",
    "has_positive",
    "normalized_softmax",
    "reduce_positives",
    "roadmap",
    "sampled_softmax",
    "smooth_ap",
    "sup_ap",
    "sup_hap",
    "sup_ndcg",
    "sup_recall_at_k",
]
