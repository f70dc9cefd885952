r"""Log-DCG, a surrogate of NDCG built on the softmax bound of each positive's rank, and Sup-NDCG@K.

Rows as everywhere in the core: `scores [Q, N]`, `relevance [Q, N]` (`> 0` marks a positive);
$P_u$ and $N_u$ are a row's positives and negatives, $d_{uij} = s_{uj} - s_{ui}$.

The number of negatives ranked above a positive $i$ is bounded by a sum of exponentials,

$$
c_{ui} = \#\{j \in N_u : s_{uj} > s_{ui}\} \le \rho_{ui} = \sum_{j \in N_u} e^{d_{uij} / T},
$$

and DCG gives that positive the gain $1 / \log_2(2 + c_{ui})$. Log-DCG minimises minus the log
of the gain at the bound,

$$
\ell_{ui} = \log \log_2 (2 + \rho_{ui}) \;\ge\; -\log \frac{1}{\log_2(2 + c_{ui})} \;\ge\; 0,
$$

so it upper-bounds $-\log$ of each positive's DCG gain, and by Jensen
$\frac{1}{|P_u|}\sum_i \ell_{ui} \ge -\log \frac{1}{|P_u|}\sum_i \mathrm{gain}_{ui}$. The
sampled softmax loss (SL) is $\log \rho_{ui}$: both fall as the positive climbs, but Log-DCG's
gradient, $\partial \ell / \partial \rho = 1 / ((2 + \rho) \ln(2 + \rho))$, decays faster down the
ranking than SL's $1/\rho$, as DCG's gain does. With top-K thresholds $\beta_u$ (SL@K's
`topk_quantile`, estimated by the caller), each term is weighted by
$w_{ui} = \mathrm{sigmoid}((s_{ui} - \beta_u) / \tau_w)$, the smooth indicator that $i$ is in the
user's top K, which makes it a surrogate of NDCG@K. Any bound of the count serves: with PSL's
activation (`activation=`), $\rho_{ui} = \sum_j e^{\sigma(d_{uij} / c) / T}$, tighter than the
exponential one, at the cost of a pairwise `[positives, N]` tensor per row.

Sup-NDCG@K (`sup_ndcg_at_k`) puts the same top-K weight on Sup-NDCG's terms instead: SupRank's
smooth rank in DCG's discount, each positive's gain weighted by its smooth top-K indicator (with
its gradient), normalised by the ideal DCG@K.

Reduction as in `softmax_losses`: `weighting="interaction"` averages over every (row, positive)
pair of the batch, `"user"` over each row's positives, then over rows; `reduction="none"` gives
each row's mean over its positives, 0 for a row without a positive or a negative.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import ClassVar, Literal

import torch
from torch import Tensor

from itemrec.ranking.losses import WEIGHTINGS, reduce_positives
from itemrec.ranking.modules import WeightedLoss, Weighting
from itemrec.ranking.ranks import (
    DEFAULT_MAX_ELEMENTS,
    check_rows,
    map_rows,
    positives,
    surrogate_ranks,
)
from itemrec.ranking.softmax_losses import PSL_ACTIVATIONS, psl_activation
from itemrec.ranking.surrogates import SupRank
from itemrec.ranking.thresholds import TOPK_THRESHOLD_RULES, TopKEstimate


def _log_rho(scores: Tensor, pos: Tensor, temperature: float, activation: str | None, score_scale: float) -> Tensor:
    """`[Q, N]` log ρ_ui at each positive (anything elsewhere): SL's bound, or PSL's with `activation`."""
    neg = ~pos
    has_neg = neg.any(1)  # [Q]
    if activation is None:
        logits = scores / temperature
        masked = logits.masked_fill(pos, float("-inf"))
        masked = torch.where(has_neg[:, None], masked, torch.zeros_like(logits))  # finite grads
        return torch.logsumexp(masked, dim=1, keepdim=True) - logits
    rows, cols = pos.nonzero(as_tuple=True)  # [M] each: every positive, no padding
    d = (scores[rows] - scores[rows, cols][:, None]) / score_scale  # [M, N]
    sigma, defined = psl_activation(d, activation)  # [M, N]
    pair = defined & neg[rows]  # [M, N]  negatives where e^σ > 0
    alive = pair.any(1)  # [M]
    logits = (sigma / temperature).masked_fill(~pair, float("-inf"))
    logits = torch.where(alive[:, None], logits, torch.zeros_like(logits))  # finite grads
    floor = math.log(torch.finfo(scores.dtype).tiny)  # ρ = 0: the term is log log2(2) = 0
    per_pos = torch.where(alive, torch.logsumexp(logits, dim=1), torch.full_like(alive, floor, dtype=scores.dtype))
    return torch.zeros_like(scores).index_put((rows, cols), per_pos)


def positive_ranks(scores: Tensor, pos: Tensor) -> Tensor:
    r"""`[Q, N]` exact rank of each positive among its row's positives, $1 + \#\{j \in P_u, j \ne i :
    s_{uj} \ge s_{ui}\}$ (ties counted as ordered wrongly, as everywhere in the core), no gradient;
    anything at negatives. One sort per row, no pairwise tensor."""
    with torch.no_grad():
        masked = scores.masked_fill(~pos, float("-inf"))  # [Q, N]
        ordered = masked.sort(dim=1).values  # [Q, N]  ascending, negatives first
        below = torch.searchsorted(ordered, masked.contiguous(), side="left")  # [Q, N]  entries < s_ui
        return (scores.shape[1] - below).to(scores.dtype)


def _log_dcg_rows(
    scores: Tensor, relevance: Tensor, beta: Tensor, *, weighted: bool, temperature: float, tau_w: float,
    detach_weights: bool, offset: float, activation: str | None, score_scale: float, positives_above: bool,
    softmax_mix: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Row sums of the Log-DCG terms over the positives, their counts, and the rows where defined."""
    pos = relevance > 0  # [Q, N]
    has_neg = (~pos).any(1)  # [Q]
    lse = _log_rho(scores, pos, temperature, activation, score_scale)  # [Q, N]  log ρ_ui
    log2 = math.log(2.0)
    ahead = torch.log1p(positive_ranks(scores, pos)) if positives_above else torch.full_like(lse, log2)  # log(1 + r⁺)
    per_pos = torch.log(torch.logaddexp(ahead, lse)) - math.log(log2)  # log log2(1 + r⁺ + ρ)
    if softmax_mix:
        per_pos = per_pos + softmax_mix * lse  # + λ log ρ: SL's term
    if weighted:
        weights = torch.sigmoid(((scores.detach() if detach_weights else scores) - beta.detach()[:, None]) / tau_w)
        per_pos = (per_pos - offset) * weights
    valid = pos.any(1) & has_neg  # [Q]
    per_pos = torch.where(pos & has_neg[:, None], per_pos, torch.zeros_like(per_pos))
    return per_pos.sum(1), pos.sum(1), valid


def log_dcg(
    scores: Tensor,
    relevance: Tensor,
    temperature: float = 0.2,
    beta: Tensor | None = None,
    tau_w: float = 1.0,
    reduction: str = "mean",
    weighting: str = "interaction",
    detach_weights: bool = True,
    offset: float = 0.0,
    activation: str | None = None,
    score_scale: float = 2.0,
    positives_above: bool = False,
    softmax_mix: float = 0.0,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Tensor:
    r"""Log-DCG loss (see the module docstring): for each positive $i$ of a row,

    $$
    \ell_{ui} = w_{ui} \Big(\log \log_2 \Big(2 + \sum_{j \in N_u} e^{(s_{uj} - s_{ui}) / T}\Big) - c\Big)
    $$

    with $w_{ui} = 1$, or $\mathrm{sigmoid}((s_{ui} - \beta_u) / \tau_w)$ when the top-K
    thresholds `beta [Q]` are given; $c$ = `offset` (0 by default). By default the weights are
    constants (detached, as `beta` is): the log-log term is $\ge 0$, unlike SL's $\log \rho$,
    so a weight's own gradient would push every positive down, out of the top K. With
    `detach_weights=False` they keep it, and an offset such as $c = \log \log_2(2 + K)$ (the
    term's value where the bound puts the positive at rank K) gives that gradient SL@K's two
    signs: positives whose bound is inside the top K are pushed up, the others given up on.
    With detached weights $c$ only shifts the value. Computed as
    `log(logaddexp(log 2, lse)) - log(log 2)`, finite for any scores.

    With `activation` (one of PSL's, `softmax_losses.psl_activation`) the bound is PSL's,
    $\rho_{ui} = \sum_{j \in N_u} e^{\sigma(d_{uij} / c_s) / T}$ with $c_s$ = `score_scale`:
    since $e^{\sigma(x)} \ge [x \ge 0]$ it still bounds the count of negatives above $i$, and
    more tightly than $e^{x}$ on $[-1, 1]$. That bound is pairwise (`[M, N]` for a chunk's M
    positives), so rows are chunked so that a chunk's positives × N stay under `max_elements`;
    without it the cost is SL's.

    With `positives_above=True` the row's other positives count too, as in DCG, where a positive's
    rank is $r^+_{ui} + c_{ui}$ with $r^+_{ui}$ its exact rank among the row's positives (SupAP's
    $\mathrm{rank}^+$: exact, no gradient; `positive_ranks`):
    $\ell_{ui} = \log \log_2(1 + r^+_{ui} + \rho_{ui})$, the term above when $r^+_{ui} = 1$. A
    positive behind others gains less from passing a negative, and its gradient is smaller.

    `softmax_mix` λ adds SL's term, $\ell_{ui} + \lambda \log \rho_{ui}$: positives at the top
    keep being pushed (Log-DCG's own push fades as $\rho \to 0$).
    """
    check_rows(scores, relevance)
    assert temperature > 0 and tau_w > 0, f"temperature and tau_w must be > 0, got {temperature}, {tau_w}"
    assert weighting in WEIGHTINGS, f"weighting must be one of {WEIGHTINGS}, got {weighting!r}"
    assert activation is None or activation in PSL_ACTIVATIONS, f"activation must be None or one of {PSL_ACTIVATIONS}"
    assert score_scale > 0, f"score_scale must be > 0, got {score_scale}"
    if beta is not None:
        assert beta.shape == scores.shape[:1], f"beta must be [Q] = {scores.shape[0]}, got {tuple(beta.shape)}"
    fn = functools.partial(
        _log_dcg_rows, weighted=beta is not None, temperature=temperature, tau_w=tau_w,
        detach_weights=detach_weights, offset=offset, activation=activation, score_scale=score_scale,
        positives_above=positives_above, softmax_mix=softmax_mix,
    )
    thresholds = beta if beta is not None else scores.new_zeros(scores.shape[0])
    if activation is None:
        row_sum, n_pos, valid = fn(scores, relevance, thresholds)
    else:
        cost = (relevance > 0).sum(1) * scores.shape[1]  # [Q]  one [N] row per positive
        row_sum, n_pos, valid = map_rows(fn, scores, relevance, thresholds, max_elements=max_elements, row_elements=cost)
    return reduce_positives(row_sum, n_pos, valid, reduction, weighting)


class LogDCGLoss(WeightedLoss):
    r"""`dcg_losses.log_dcg` (temperature T = 0.2; with `k`, SL@K's top-K weight, τ_w = 2.5, β
    refreshed every 20 epochs, centered: weights with their gradient and
    $c = \log \log_2(2 + A)$, $A$ = `anchor`, K by default).

    $$
    \ell_{ui} = w_{ui} \log \log_2 \Big(2 + \sum_{j \in N_u} e^{(s_{uj} - s_{ui}) / T}\Big)
    $$

    Without `k`, $w_{ui} = 1$ and `forward(scores, relevance)`. With `k`, $w_{ui} =
    \mathrm{sigmoid}((s_{ui} - \beta_u) / \tau_w)$ and `forward(scores, relevance, beta [Q])`:
    the caller estimates the thresholds β as for `SLatKLoss` (`topk_estimate`, set with `k`).
    `centered=True` (with `k`) keeps the weights' gradient and subtracts $c = \log \log_2(2 + A)$
    from each term: a positive whose bound puts it above rank $A$ is pushed up by its weight's
    gradient, one below is given up on. Centered is the default with `k` (`centered=False`: detached weights, no
    offset): on IR-Benchmark's Health with LightGCN it tests at NDCG@20 0.1312 against 0.1248
    detached. T 0.2 / τ_w 2.5 / T_β 20 is the setting that transfers: the tuning study's best on
    Health's validation split (T 0.3, τ_w 5) gains 0.002 NDCG@20 there and loses on Electronic,
    ml-100k and ml-1m (benchmarks/RESULTS.md). `activation` (`"tanh"`, `"atan"`, `"relu"`) puts
    PSL's activation inside the bound, $e^{\sigma(d / c_s) / T}$ for $e^{d / T}$ ($c_s$ =
    `score_scale`, 2). `positives_above=True` counts the row's positives ranked above each positive
    exactly, as DCG does; `softmax_mix` λ adds λ log ρ, SL's term, and λ log A to the centered
    offset (`log_dcg`). With `mix_centered=False` the added term is not centered: each positive
    costs SL@K's own term on top of centered Log-DCG@K,

    $$
    \ell_{ui} = w_{ui} \big(\log \log_2(2 + \rho_{ui}) - \log \log_2(2 + A)\big) + \lambda\, w_{ui} \log \rho_{ui},
    $$

    so with λ = 1 and T = τ_d the loss is `log_dcg` centered plus `softmax_losses.sl_at_k`. On
    Health with LightGCN (3 seeds) that sum validates at NDCG@20 0.0958 against 0.0931 for
    centered Log-DCG@20 and 0.0953 for SL@20; the centered mix (the default) does not help.
    """

    param_rules: ClassVar[dict[str, tuple[str, Callable[[float], bool]]]] = {
        **TOPK_THRESHOLD_RULES,
        "temperature": ("> 0", lambda v: v > 0),
        "anchor": (">= 1", lambda v: v >= 1),
        "softmax_mix": (">= 0", lambda v: v >= 0),
    }

    def __init__(
        self,
        temperature: float = 0.2,
        k: int | None = None,
        tau_w: float = 2.5,
        refresh_every: int = 20,
        quantile_negatives: int = 1000,
        weighting: Weighting = "interaction",
        quantile_positives: int | None = None,
        centered: bool | None = None,
        anchor: float | None = None,
        activation: Literal["tanh", "atan", "relu"] | None = None,
        score_scale: float = 2.0,
        positives_above: bool = False,
        softmax_mix: float = 0.0,
        mix_centered: bool = True,
        max_elements: int = DEFAULT_MAX_ELEMENTS,
    ) -> None:
        super().__init__()
        self.positives_above, self.softmax_mix, self.mix_centered = positives_above, softmax_mix, mix_centered
        centered = (k is not None) if centered is None else centered
        assert not centered or k is not None, "centered needs k (the offset is the term at rank K)"
        assert anchor is None or centered, "anchor sets a centered loss's offset: it needs centered"
        self.centered, self.anchor = centered, anchor
        self.temperature, self.k, self.tau_w = temperature, k, tau_w
        self.weighting = weighting
        if k is not None:
            self.topk_estimate = TopKEstimate(refresh_every, quantile_negatives, quantile_positives)
        self.activation, self.score_scale, self.max_elements = activation, score_scale, max_elements

    def forward(self, scores: Tensor, relevance: Tensor, beta: Tensor | None = None) -> Tensor:
        assert (beta is not None) == self.topk_thresholds, "beta is given exactly when k is set"
        anchor = self.k if self.anchor is None else self.anchor
        offset = 0.0
        if self.centered:  # the term's value at rank A; λ log A, SL's, too when the mix is centered
            offset = math.log(math.log2(2 + anchor)) + (self.softmax_mix * math.log(anchor) if self.mix_centered else 0.0)
        return log_dcg(scores, relevance, self.temperature, beta, self.tau_w, weighting=self.weighting,
                       detach_weights=not self.centered, offset=offset, activation=self.activation,
                       score_scale=self.score_scale, positives_above=self.positives_above,
                       softmax_mix=self.softmax_mix, max_elements=self.max_elements)

    def extra_repr(self) -> str:
        top = "" if self.k is None else (f", k={self.k}, tau_w={self.tau_w}, "
                                         f"refresh_every={self.topk_estimate.refresh_every}"
                                         f"{', centered' if self.centered else ''}"
                                         f"{'' if self.anchor is None else f', anchor={self.anchor}'}")
        bound = "" if self.activation is None else f", activation={self.activation!r}, score_scale={self.score_scale}"
        above = ", positives_above" if self.positives_above else ""
        mix = f", softmax_mix={self.softmax_mix}{'' if self.mix_centered else ', mix not centered'}" if self.softmax_mix else ""
        return f"temperature={self.temperature}{top}{bound}{above}{mix}"


def sup_ndcg_at_k(
    scores: Tensor,
    relevance: Tensor,
    beta: Tensor,
    k: int = 20,
    tau_w: float = 1.0,
    tau: float = 0.2,
    rho: float = 1.0,
    delta: float = 0.05,
    start: float = 0.5,
    offset: float | None = None,
    reduction: str = "mean",
    weighting: str = "user",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Tensor:
    r"""Sup-NDCG@K: Sup-NDCG with SL@K's smooth top-K indicator on each positive.

    $$
    \mathcal{L}_u = 1 - \frac{1}{\mathrm{IDCG@K}_u} \sum_{i \in P_u}
    \mathrm{sigmoid}\Big(\frac{s_{ui} - \beta_u}{\tau_w}\Big)
    \frac{2^{\mathrm{rel}_{ui}} - 1}{\log_2(1 + \mathrm{rank}_s(i))}
    $$

    $\mathrm{rank}_s$ is Sup-NDCG's SupRank rank (exact among equally or more relevant items,
    $H^-$ with τ, ρ, δ below), $\beta_u$ the row's top-K threshold (detached, estimated by the
    caller as for SL@K), and IDCG@K the DCG of the row's best K gains. The weight keeps its
    gradient: raising $s_{ui}$ above $\beta_u$ adds that positive's gain, which is NDCG@K's
    cut-off made smooth; positives far below the threshold weigh little. `weighting="user"`
    averages the rows' losses, `"interaction"` weighs each row by its number of positives.
    """
    check_rows(scores, relevance)
    assert beta.shape == scores.shape[:1], f"beta must be [Q] = {scores.shape[0]}, got {tuple(beta.shape)}"
    assert k >= 1 and tau_w > 0, f"k must be >= 1 and tau_w > 0, got {k}, {tau_w}"
    assert weighting in WEIGHTINGS, f"weighting must be one of {WEIGHTINGS}, got {weighting!r}"
    index, mask = positives(relevance)  # [Q, P]
    rank_geq, rank_lt = surrogate_ranks(scores, relevance, SupRank(tau, rho, delta, start, offset), index, max_elements)
    gain = torch.exp2(relevance.gather(1, index)) - 1  # [Q, P]
    weight = torch.sigmoid((scores.gather(1, index) - beta.detach()[:, None]) / tau_w)  # [Q, P]
    dcg = (weight * gain / torch.log2(1 + rank_geq + rank_lt) * mask).sum(1)  # [Q]
    ideal = (torch.exp2(relevance.clamp(min=0)) - 1).topk(min(k, relevance.shape[1]), dim=1).values  # [Q, K]
    discount = torch.log2(torch.arange(2, ideal.shape[1] + 2, device=scores.device, dtype=scores.dtype))
    idcg = (ideal / discount).sum(1)  # [Q]
    per_row = 1 - dcg / idcg.clamp(min=torch.finfo(scores.dtype).tiny)  # [Q]
    n_pos = mask.sum(1)
    valid = n_pos > 0
    return reduce_positives(torch.where(valid, per_row, 0.0) * n_pos, n_pos, valid, reduction, weighting)


class SupNDCGAtKLoss(WeightedLoss):
    r"""`dcg_losses.sup_ndcg_at_k` (K = 20, τ_w = 1; SupRank's $H^-$ with τ = 0.2, ρ = 1).

    $$
    \mathcal{L}_u = 1 - \frac{1}{\mathrm{IDCG@K}_u} \sum_{i \in P_u}
    \mathrm{sigmoid}\Big(\frac{s_{ui} - \beta_u}{\tau_w}\Big)
    \frac{2^{\mathrm{rel}_{ui}} - 1}{\log_2(1 + \mathrm{rank}_s(i))}
    $$

    `forward(scores, relevance, beta [Q])`: the caller estimates the thresholds β as for
    `SLatKLoss` (`topk_estimate`).
    """

    param_rules: ClassVar[dict[str, tuple[str, Callable[[float], bool]]]] = {
        **TOPK_THRESHOLD_RULES,
        "tau": ("> 0", lambda v: v > 0),
    }

    def __init__(
        self,
        k: int = 20,
        tau_w: float = 1.0,
        refresh_every: int = 5,
        quantile_negatives: int = 1000,
        quantile_positives: int | None = None,
        tau: float = 0.2,
        rho: float = 1.0,
        delta: float = 0.05,
        start: float = 0.5,
        offset: float | None = None,
        weighting: Weighting = "user",
        max_elements: int = DEFAULT_MAX_ELEMENTS,
    ) -> None:
        super().__init__()
        self.k, self.tau_w = k, tau_w
        self.topk_estimate = TopKEstimate(refresh_every, quantile_negatives, quantile_positives)
        self.tau, self.rho, self.delta, self.start, self.offset = tau, rho, delta, start, offset
        self.weighting, self.max_elements = weighting, max_elements

    def forward(self, scores: Tensor, relevance: Tensor, beta: Tensor) -> Tensor:
        return sup_ndcg_at_k(
            scores, relevance, beta, self.k, self.tau_w, self.tau, self.rho, self.delta, self.start, self.offset,
            weighting=self.weighting, max_elements=self.max_elements,
        )

    def extra_repr(self) -> str:
        return (f"k={self.k}, tau_w={self.tau_w}, tau={self.tau}, rho={self.rho}, "
                f"refresh_every={self.topk_estimate.refresh_every}")
