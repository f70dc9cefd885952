r"""Ranking losses on rows of candidates, in the style of `torch.nn.functional`.

Every loss takes `scores [Q, N]` and `relevance [Q, N]` (`> 0` marks a positive; graded values
where the loss uses them) and returns a scalar (`reduction="mean"`, averaged over the queries the
loss is defined for) or one value per query (`reduction="none"`, 0 where undefined). Queries with
no positive are skipped, never NaN; `has_positive(relevance)` counts them.

Square retrieval batches become rows with `itemrec.ranking.batch.retrieval_rows` (each embedding a
query against the rest of the batch, itself excluded); recommendation batches are rows already.
Pairwise work is `[Q, P, N]` (P = most positives in a row) and is chunked over queries under
`max_elements`.

Notation of the formulas, for one row: scores $s_j$, positives $\Omega^+$ (relevance $> 0$),
negatives $\Omega^-$, the step $H(x) = [x \ge 0]$, the exact ranks $\mathrm{rank}$,
$\mathrm{rank}^+$ and $\mathrm{rank}^-$ of a positive (`ranks.exact_ranks`), and
$\mathrm{rank}^-_s(k) = \sum_{j \in \Omega^-} H^-(s_j - s_k)$, with SupRank's smooth upper bound
$H^-$ of $H$ (`surrogates.suprank_step`) on the negatives only.
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
    r"""SupAP (ROADMAP's smooth AP) loss, with SupRank's surrogate $H^-$ on the negatives.

    $$
    \mathcal{L} = 1 - \frac{1}{|\Omega^+|} \sum_{k \in \Omega^+}
    \frac{\mathrm{rank}^+(k)}{\mathrm{rank}^+(k) + \mathrm{rank}^-_s(k)}
    $$

    $\mathrm{rank}^+$ is exact and carries no gradient; $\mathrm{rank}^-_s$ uses $H^-$
    (`suprank_step`). Since $\mathrm{rank}^-_s \ge \mathrm{rank}^-$ (start ≥ 0.5, no ties), the
    loss is at least $1 - \mathrm{AP}$. Relevance is binarized.
    """
    check_rows(scores, relevance)
    loss, valid = _sup_ap_rows(scores, relevance, SupRank(tau, rho, delta, start, offset), max_elements)
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
    r"""Smooth-AP loss: the sigmoid $\sigma(x / \tau)$ replaces $H$ on every pair, for both
    $\mathrm{rank}$ and $\mathrm{rank}^+$.

    $$
    \mathcal{L} = 1 - \frac{1}{|\Omega^+|}
    \sum_{k \in \Omega^+} \frac{\mathrm{rank}^+_s(k)}{\mathrm{rank}_s(k)}
    $$

    $$
    \mathrm{rank}_s(k) = 1 + \sum_{j \ne k} \sigma_{jk}, \qquad
    \mathrm{rank}^+_s(k) = 1 + \sum_{j \in \Omega^+, j \ne k} \sigma_{jk}
    $$

    with $\sigma_{jk} = \sigma\big((s_j - s_k) / \tau\big)$. A baseline: the sigmoid is not a bound of $H$, so the loss does not bound $1 - \mathrm{AP}$.
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
    r"""Sup-R@k: one minus the smooth hit-rate-style recall $R_s@k$, averaged over $k \in$ `ks`.

    $$
    R_s@k = \frac{1}{\min(|\Omega^+|, k)}
    \sum_{j \in \Omega^+} \sigma\big((k - \mathrm{rank}_s(j)) / t\big)
    $$

    with the smooth rank $\mathrm{rank}_s = \mathrm{rank}^+ + \mathrm{rank}^-_s$
    ($\mathrm{rank}^-_s$ uses SupRank's $H^-$) and $t$ = `temperature` (1 by default), which
    smooths the cut at $k$.
    """
    check_rows(scores, relevance)
    step = SupRank(tau, rho, delta, start, offset)
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
    r"""Sup-NDCG: $\mathcal{L} = 1 - \mathrm{DCG}_s / \mathrm{IDCG}$, a smooth NDCG over the whole
    row, graded relevance.

    $$
    \mathrm{DCG}_s = \sum_{j \in \Omega^+}
    \frac{2^{\mathrm{rel}_j} - 1}{\log_2(1 + \mathrm{rank}_s(j))}
    $$

    $\mathrm{rank}_s(j)$ counts more-or-equally relevant items exactly and less relevant ones with
    $H^-$, so $\mathrm{rank}_s \ge \mathrm{rank}$ and the loss bounds $1 - \mathrm{NDCG}$ from
    above, in [0, 1]. IDCG is the DCG of the row sorted by relevance.
    """
    check_rows(scores, relevance)
    loss, valid = _sup_ndcg_rows(scores, relevance, SupRank(tau, rho, delta, start, offset), max_elements)
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
    r"""HAPPIER's smooth hierarchical AP loss, $\mathcal{L} = 1 - \text{H-AP}_s$.

    $$
    \text{H-AP}_s = \frac{1}{\sum_{k \in \Omega^+} \mathrm{rel}(k)} \sum_{k \in \Omega^+}
    \frac{\text{H-rank}(k)}{\mathrm{rank}_{\ge}(k) + \mathrm{rank}_{<,s}(k)}
    $$

    $$
    \text{H-rank}(k) = \mathrm{rel}(k)
    + \sum_{j \in \Omega^+, j \ne k} \min(\mathrm{rel}(k), \mathrm{rel}(j)) \, H(s_j - s_k)
    $$

    $\text{H-rank}$ and $\mathrm{rank}_{\ge}$ (items at least as relevant as $k$) are exact; the
    items less relevant than $k$ are counted with $H^-$ in $\mathrm{rank}_{<,s}$, so
    $\text{H-AP}_s \le \text{H-AP}$. Relevance is usually `batch.hierarchical_relevance`
    ($w_l / n_l$); with a single level this is `sup_ap`.
    """
    check_rows(scores, relevance)
    loss, valid = _sup_hap_rows(scores, relevance, SupRank(tau, rho, delta, start, offset), max_elements)
    return reduce_queries(loss, valid, reduction)


# --------------------------------------------------------------------------- calibration, combos


def calibration(scores: Tensor, relevance: Tensor, alpha: float = 0.9, beta: float = 0.6) -> Tensor:
    r"""Decomposability-gap (calibration) loss on cosine scores.

    $$
    \mathcal{L}_{\mathrm{DG}} = \frac{1}{|\mathcal{P}|}
    \sum_{(q, j) \in \mathcal{P}} [\alpha - s_{qj}]_+
    + \frac{1}{|\mathcal{N}|} \sum_{(q, j) \in \mathcal{N}} [s_{qj} - \beta]_+
    $$

    The means run over every (query, candidate) pair of the batch, the positive pairs
    $\mathcal{P}$ and the negative pairs $\mathcal{N}$ apart. Pulling positives above α and
    negatives below β everywhere makes batch-wise rankings consistent with the ranking over the
    whole set.
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
    r"""ROADMAP: `sup_ap` plus the `calibration` loss (λ = 0.1, α = 0.9, β = 0.6).

    $$
    \mathcal{L} = (1 - \lambda) \mathcal{L}_{\mathrm{SupAP}} + \lambda \mathcal{L}_{\mathrm{DG}}
    $$
    """
    ap_loss = sup_ap(scores, relevance, tau, rho, delta, start, offset, max_elements=max_elements)
    return (1 - lam) * ap_loss + lam * calibration(scores, relevance, alpha, beta)


def normalized_softmax(
    embeddings: Tensor, labels: Tensor, proxies: Tensor, temperature: float = 0.05
) -> Tensor:
    r"""Proxy classification loss on the unit sphere (normalized softmax).

    $$
    \mathcal{L} = -\frac{1}{B} \sum_{b=1}^{B}
    \log \frac{e^{\cos(e_b, p_{y_b}) / T}}{\sum_c e^{\cos(e_b, p_c) / T}}
    $$

    `embeddings [B, D]` ($e_b$), `labels [B]` ($y_b$, a class index into `proxies [C, D]`, the
    $p_c$), temperature $T$ = 0.05.
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
    r"""HAPPIER: the smooth H-AP loss plus a proxy clustering term on the fine labels (λ = 0.1).

    $$
    \mathcal{L} = (1 - \lambda) \, (1 - \text{H-AP}_s) + \lambda \, \mathcal{L}_{\mathrm{cluster}}
    $$

    with $1 - \text{H-AP}_s$ from `sup_hap` and $\mathcal{L}_{\mathrm{cluster}}$ from
    `normalized_softmax`. `scores`/`relevance` are the hierarchical rows of the batch; `embeddings [B, D]` and
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
    r"""Bayesian personalized ranking (Rendle et al., UAI 2009), over each row's (positive, negative) pairs.

    $$
    \mathcal{L} = -\frac{1}{|\Omega^+| \, |\Omega^-|}
    \sum_{k \in \Omega^+} \sum_{j \in \Omega^-} \log \sigma(s_k - s_j)
    $$
    """
    check_rows(scores, relevance)
    loss, valid = map_rows(_bpr_rows, scores, relevance, max_elements=max_elements)
    return reduce_queries(loss, valid, reduction)


WEIGHTINGS = ("user", "interaction")


def reduce_positives(
    row_sum: Tensor, n_pos: Tensor, valid: Tensor, reduction: str = "mean", weighting: str = "user"
) -> Tensor:
    r"""Reduce a loss summed over each row's positives, `row_sum [Q]` over `n_pos [Q]` positives.

    With $S_u$ = `row_sum` and $n_u$ = `n_pos` of row $u$, over the valid rows $U$:
    `weighting="user"` counts each row once, $\frac{1}{|U|} \sum_u S_u / n_u$ (rows = users);
    `weighting="interaction"` counts each (row, positive) pair once, $\sum_u S_u / \sum_u n_u$,
    as when a batch is drawn as (user, positive) pairs.
    `reduction="none"` gives $S_u / n_u$ per row (0 where invalid) whatever the weighting.
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
    push: float = 0.0,
) -> Tensor:
    r"""Sampled softmax (SL: Wu et al., TOIS 2024): each positive against the row's negatives, temperature $T$.

    `include_positive=True` (InfoNCE, the default):

    $$
    \mathcal{L} = -\frac{1}{|\Omega^+|} \sum_{k \in \Omega^+}
    \log \frac{e^{s_k/T}}{e^{s_k/T} + \sum_{j \in \Omega^-} e^{s_j/T}}
    $$

    `include_positive=False` (SL, the form of the recommendation-loss benchmark: the negatives
    alone in the normaliser):

    $$
    \mathcal{L} = \frac{1}{|\Omega^+|}
    \sum_{k \in \Omega^+} \log \sum_{j \in \Omega^-} e^{(s_j - s_k)/T}
    $$

    It can be negative. Other positives are never in the normaliser. `weighting`: `"user"` averages
    each row once, `"interaction"` each (row, positive) pair (the benchmark's mean over sampled
    pairs; `reduce_positives`); `None` picks `"user"` with the positive in the normaliser and
    `"interaction"` without it (the benchmark's loss). Rows with no positive or no negative are
    skipped. `push` $p \ge 0$ adds $\frac{p}{M_u} \sum_{j=1}^{M_u} s_{uj}$, the mean over the $M_u$
    candidates of row $u$, to each positive's term: it lowers a row's scores together, which SL's
    differences cannot see and SL@K's top-K weights do (`softmax_losses.sl_at_k`; on IR-Benchmark's
    Health it carries most of SL@K's gain over SL, benchmarks/RESULTS.md).
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
    if push:
        per_pos = per_pos + push * scores.mean(1, keepdim=True)  # [Q, N]
    per_pos = torch.where(pos & has_neg[:, None], per_pos, torch.zeros_like(per_pos))
    return reduce_positives(per_pos.sum(1), pos.sum(1), pos.any(1) & has_neg, reduction, weighting)


def cosine_contrastive(
    scores: Tensor,
    relevance: Tensor,
    margin: float = 0.9,
    negative_weight: float = 10.0,
    reduction: str = "mean",
) -> Tensor:
    r"""SimpleX's cosine contrastive loss on cosine scores.

    $$
    \mathcal{L} = \frac{1}{|\Omega^+|} \sum_{k \in \Omega^+} (1 - s_k)
    + \frac{w}{|\Omega^-|} \sum_{j \in \Omega^-} [s_j - m]_+
    $$

    $m$ = `margin` filters easy negatives; $w$ = `negative_weight` balances the two terms.
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
