r"""Recommendation losses of the softmax family, in the style of `torch.nn.functional`.

Rows as everywhere in the core: `scores [Q, N]`, `relevance [Q, N]` (`> 0` marks a positive);
each row is a user $u$ with its positives $P_u$ and sampled negatives $N_u$, and
$d_{uij} = s_{uj} - s_{ui}$ for a positive $i$ and a negative $j$. Other positives of the row
are never in a normaliser.

Reduction. The benchmark these losses come from draws its batches as (user, positive) pairs,
each with its own negatives, and averages over the pairs. Here a row holds several positives
sharing the row's negatives; `weighting="interaction"` (the default) averages over every
(row, positive) pair of the batch, which weights a user by its number of positives as the
benchmark does; `weighting="user"` averages over each row's positives, then over rows.
`reduction="none"` returns each row's mean over its positives (0 for a row without a positive
or without a negative: such rows are skipped, never NaN). See `losses.reduce_positives`.

- `sampled_softmax(..., include_positive=False)` (in `losses`): SL, the benchmark's softmax loss.
- `bsl`: bilateral softmax loss, two temperatures.
- `psl`: pairwise softmax loss, $e^{d/\tau}$ replaced by $e^{\sigma(d)/\tau}$.
- `llpauc`: lower-left partial AUC, a min-max objective with auxiliary variables.
- `sl_at_k` and `topk_quantile`: SL@K's per-row loss for a given top-K threshold.

Sources: the benchmark's code (Tiny-Snow/IR-Benchmark, IR-Benchmark-SLatK) and, for LLPAUC,
the authors' code (swt-user/LLPAUC).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from itemrec.ranking.losses import WEIGHTINGS, reduce_positives
from itemrec.ranking.ranks import (
    DEFAULT_MAX_ELEMENTS,
    check_rows,
    map_rows,
    reduce_queries,
)

PSL_ACTIVATIONS = ("tanh", "atan", "relu")


def _negative_logsumexp(logits: Tensor, neg: Tensor) -> tuple[Tensor, Tensor]:
    """`[Q, 1]` `log Σ_{j∈N} exp(logits_j)` and `[Q]` has-a-negative; 0 (not -inf) without one."""
    has_neg = neg.any(1)
    masked = logits.masked_fill(~neg, float("-inf"))
    masked = torch.where(has_neg[:, None], masked, torch.zeros_like(logits))  # finite grads
    return torch.logsumexp(masked, dim=1, keepdim=True), has_neg


def _sum_over_positives(per_pos: Tensor, pos: Tensor, has_neg: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Row sums of `per_pos [Q, N]` over the positives, counts, and rows where it is defined."""
    valid = pos.any(1) & has_neg  # [Q]
    per_pos = torch.where(pos & has_neg[:, None], per_pos, torch.zeros_like(per_pos))
    return per_pos.sum(1), pos.sum(1), valid


# --------------------------------------------------------------------------- BSL


def bsl(
    scores: Tensor,
    relevance: Tensor,
    tau1: float = 0.1,
    tau2: float = 0.1,
    reduction: str = "mean",
    weighting: str = "interaction",
) -> Tensor:
    r"""Bilateral softmax loss (BSL, Wu et al., ICDE 2024), temperature τ1 on the positive and τ2 on
    the negatives.

    For a positive $i$ of user $u$:

    $$
    \ell(u, i) = -\log \frac{e^{s_{ui}/\tau_1}}{(\sum_{j \in N_u} e^{s_{uj}/\tau_2})^{\tau_2/\tau_1}}
    $$

    that is

    $$
    \ell(u, i) = -\frac{s_{ui}}{\tau_1} + \frac{\tau_2}{\tau_1} \log \sum_{j \in N_u} e^{s_{uj}/\tau_2}
    $$

    averaged over the positives (see the module docstring for `weighting`). With τ1 = τ2 = τ it
    is SL, `sampled_softmax(..., temperature=τ, include_positive=False)`; for any τ1 it is SL at
    τ2 times $\tau_2 / \tau_1$, so Adam, invariant to the loss's scale up to its ε, trains it as SL
    at τ2 unless weight decay or another term is added (the benchmark's form, with one positive per
    term; BSL's paper and code). On IR-Benchmark Health the tuning study's BSL (τ1 0.1, τ2 0.2)
    tested identically to SL at τ 0.2 in every seed.
    """
    check_rows(scores, relevance)
    assert tau1 > 0 and tau2 > 0, f"temperatures must be > 0, got {tau1}, {tau2}"
    pos = relevance > 0  # [Q, N]
    lse_neg, has_neg = _negative_logsumexp(scores / tau2, ~pos)  # [Q, 1], [Q]
    per_pos = (tau2 / tau1) * lse_neg - scores / tau1  # [Q, N]
    return reduce_positives(*_sum_over_positives(per_pos, pos, has_neg), reduction, weighting)


# --------------------------------------------------------------------------- PSL


def psl_activation(d: Tensor, activation: str = "tanh") -> tuple[Tensor, Tensor]:
    r"""PSL's $\sigma(d)$ with where it is finite: `(σ [...], defined [...])`.

    - `"tanh"`: $\log(\tanh d + 1)$, computed as $\log 2 - \mathrm{softplus}(-2d)$ (finite for
      finite $d$);
    - `"atan"`: $\log(\arctan d + 1)$, `-inf` where $\arctan d + 1 \le 0$
      ($d \le \tan(-1) \approx -1.557$);
    - `"relu"`: $\log \mathrm{relu}(d + 1)$, `-inf` where $d \le -1$.

    Where `defined` is False the returned value is 0 (a placeholder with zero gradient), so the
    caller can mask it without a NaN in the backward pass; `exp(σ)` is 0 there.
    """
    assert activation in PSL_ACTIVATIONS, f"activation must be one of {PSL_ACTIVATIONS}, got {activation!r}"
    if activation == "tanh":
        return math.log(2.0) - F.softplus(-2 * d), torch.ones_like(d, dtype=torch.bool)
    inner = torch.atan(d) + 1 if activation == "atan" else d + 1
    defined = inner > 0
    return torch.log(torch.where(defined, inner, torch.ones_like(inner))), defined


def _psl_slope(d: Tensor | None, sigma: Tensor, defined: Tensor | None, activation: str) -> Tensor:
    r"""$\sigma'(d)$ where `defined`, 0 elsewhere, from `d` and `σ(d)` (`psl_activation`); `"tanh"`
    is defined everywhere and needs σ alone (`d`, `defined` may be None)."""
    if activation == "tanh":
        return 2 - sigma.exp()  # 1 - tanh d = 2 - (tanh d + 1)
    if activation == "atan":
        slope = (-sigma).exp() / (1 + d * d)  # 1 / ((1 + d²)(atan d + 1))
    else:
        slope = (-sigma).exp()  # 1 / (d + 1)
    return slope.masked_fill_(~defined, 0.0)


class _PairwiseSoftmax(torch.autograd.Function):
    r"""Row sums over each row's positives of $\log \sum_{j \in N} e^{\sigma(d_{ij}/c)/\tau}$ with a
    hand-written backward: $\partial \ell_i / \partial s_j = p_{ij} \sigma'_{ij} / (\tau c)$ for a
    negative $j$ ($p_i$ the softmax of the row's logits) and minus their sum for $s_i$. Autograd
    would keep and revisit more `[M, N]` tensors; `test_gradcheck_psl` checks it. `"tanh"` takes
    its closed form (`_tanh_pairs_forward`: fewer passes over `[M, N]`) unless `general` is set;
    `general=True` computes it as the other activations (tests and benchmarks compare the two)."""

    @staticmethod
    def forward(
        ctx, scores: Tensor, pos: Tensor, tau: float, activation: str, score_scale: float, general: bool = False
    ) -> Tensor:
        rows, cols = pos.nonzero(as_tuple=True)  # [M] each: every positive of the chunk, no padding
        ctx.closed_form = activation == "tanh" and not general
        if ctx.closed_form:
            per_pos, saved = _tanh_pairs_forward(scores, pos, rows, cols, tau, score_scale)
        else:
            per_pos, saved = _pairs_forward(scores, pos, rows, cols, tau, activation, score_scale)
        ctx.save_for_backward(rows, cols, *saved)
        ctx.tau, ctx.activation, ctx.score_scale, ctx.shape = tau, activation, score_scale, scores.shape
        return torch.zeros(scores.shape[0], dtype=scores.dtype, device=scores.device).index_add_(0, rows, per_pos)

    @staticmethod
    def backward(ctx, grad_rows: Tensor):
        rows, cols, *saved = ctx.saved_tensors
        if ctx.closed_form:
            grad_d = _tanh_pairs_backward(grad_rows[rows], *saved, ctx.tau, ctx.score_scale)  # [M, N]
        else:
            grad_d = _pairs_backward(grad_rows[rows], *saved, ctx.tau, ctx.activation, ctx.score_scale)
        grad = torch.zeros(ctx.shape, dtype=grad_d.dtype, device=grad_d.device).index_add_(0, rows, grad_d)
        grad.index_put_((rows, cols), -grad_d.sum(1), accumulate=True)
        return grad, None, None, None, None, None


def _tanh_pairs_forward(
    scores: Tensor, pos: Tensor, rows: Tensor, cols: Tensor, tau: float, score_scale: float
) -> tuple[Tensor, tuple[Tensor, ...]]:
    r"""PSL-tanh's `[M]` terms and what its backward keeps. With $y = 2d = k (s_j - s_i)$,
    $k = 2 / c$: $\sigma = \log(1 + \tanh d) = \log 2 + \log \mathrm{sigmoid}(y)$, increasing in
    $s_j$, so a row's largest logit is its largest negative's, known without a pass over `[M, N]`:
    $\ell_i = (\log 2 + m_i) / \tau + \log \sum_j e^{(L_{ij} - m_i) / \tau}$,
    $L = \log \mathrm{sigmoid}(y)$, $m_i = \log \mathrm{sigmoid}(k (\max_{j \in N} s_j - s_i))$. The sum is
    $\ge 1$ on any row with a negative: no floor needed. Positives enter as $s_j = -\infty$."""
    k = 2.0 / score_scale
    scaled = scores * k  # [q, N]
    negatives = scaled.masked_fill(pos, float("-inf"))  # [q, N]
    has_neg = (~pos).any(1)[rows]  # [M]
    anchor = scaled[rows, cols]  # [M]  k s_i
    top = F.logsigmoid(negatives.amax(1)[rows] - anchor).masked_fill_(~has_neg, 0.0)  # [M]  m_i
    y = negatives.index_select(0, rows).sub_(anchor[:, None])  # [M, N]  -inf at the row's positives
    weights = F.logsigmoid(y).sub_(top[:, None]).mul_(1.0 / tau).exp_()  # [M, N]  e^{(L - m)/τ}, 0 at positives
    total = weights.sum(1)  # [M]  >= 1 where has_neg
    per_pos = ((math.log(2.0) + top) / tau + total.log()).masked_fill_(~has_neg, 0.0)  # [M]
    return per_pos, (y, weights, torch.where(has_neg, total, torch.ones_like(total)), has_neg)


def _tanh_pairs_backward(
    grad: Tensor, y: Tensor, weights: Tensor, total: Tensor, has_neg: Tensor, tau: float, score_scale: float
) -> Tensor:
    r"""`[M, N]` $\partial \ell_i / \partial s_j = p_{ij} \sigma'(d_{ij}) / (\tau c)$ with
    $p_{ij}$ = `weights / total` and $\sigma'(d) = 1 - \tanh d = 2\,\mathrm{sigmoid}(-y)$."""
    scale = (grad * 2.0 / (tau * score_scale) / total).masked_fill_(~has_neg, 0.0)  # [M]
    return torch.neg(y).sigmoid_().mul_(weights).mul_(scale[:, None])  # 0 at positives (weights 0)


def _pairs_forward(
    scores: Tensor, pos: Tensor, rows: Tensor, cols: Tensor, tau: float, activation: str, score_scale: float
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """PSL's `[M]` terms for any activation (`atan`, `relu`: some pairs beyond the support) and what
    its backward keeps: `d`, σ(d) and every logit, `[M, N]` each."""
    neg = ~pos
    has_neg = neg.any(1)[rows]  # [M]
    d = scores[rows].sub_(scores[rows, cols][:, None]).div_(score_scale)  # [M, N]
    sigma, defined = psl_activation(d, activation)  # [M, N]
    logits = (sigma / tau).masked_fill_(~(defined & neg[rows]), float("-inf"))  # [M, N]  terms with exp(σ) > 0
    lse = torch.logsumexp(logits, dim=1)  # [M]  -inf where no term is alive
    floor = math.log(torch.finfo(scores.dtype).tiny)
    live = (lse > floor) & has_neg  # [M]  terms that carry a gradient
    per_pos = lse.clamp(min=floor).masked_fill_(~has_neg, 0.0)  # [M]
    return per_pos, (d, sigma, defined, logits, lse.masked_fill(~live, 0.0), live)


def _pairs_backward(
    grad: Tensor, d: Tensor, sigma: Tensor, defined: Tensor, logits: Tensor, lse: Tensor, live: Tensor,
    tau: float, activation: str, score_scale: float,
) -> Tensor:
    g = grad.masked_fill(~live, 0.0) / (tau * score_scale)  # [M]
    grad_d = (logits - lse[:, None]).exp_()  # [M, N]  each row's softmax; 0 where masked (-inf)
    return grad_d.mul_(_psl_slope(d, sigma, defined, activation)).mul_(g[:, None])


def _psl_rows(
    scores: Tensor, relevance: Tensor, tau: float, activation: str, score_scale: float, general: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    pos = relevance > 0  # [q, N]
    row_sum = _PairwiseSoftmax.apply(scores, pos, tau, activation, score_scale, general)  # [q]
    return row_sum, pos.sum(1), pos.any(1) & (~pos).any(1)


def psl(
    scores: Tensor,
    relevance: Tensor,
    tau: float = 0.05,
    activation: str = "tanh",
    score_scale: float = 2.0,
    reduction: str = "mean",
    weighting: str = "interaction",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Tensor:
    r"""Pairwise softmax loss (PSL, Yang et al., NeurIPS 2024): SL with $e^{d/\tau}$ replaced by
    $e^{\sigma(d)/\tau}$.

    For a positive $i$ of user $u$, with $d_{uij} = s_{uj} - s_{ui}$:

    $$
    \ell(u, i) = \log \sum_{j \in N_u} \exp\big(\sigma(d_{uij} / c) / \tau\big)
    $$

    where $\sigma$ is one of (`psl_activation`)

    $$
    \sigma(x) = \log(\tanh x + 1), \quad \log(\arctan x + 1), \quad \log \mathrm{relu}(x + 1)
    $$

    for `"tanh"`, `"atan"`, `"relu"`. Each satisfies $[x \ge 0] \le e^{\sigma(x)} \le e^x$ on
    $x \in [-1, 1]$, which makes PSL a tighter surrogate of $-\log \mathrm{DCG}$ than SL;
    $c$ = `score_scale` (2, the benchmark's default) brings differences of cosine scores into
    that interval. $\tau$ is the temperature applied after the activation (the benchmark's
    `tau_star`); since $\sigma(x) \approx x$ near 0, PSL at ($\tau$, $c = 2$) is close to SL at
    temperature $2\tau$: the default τ = 0.05 pairs with SL's 0.1.

    Numerics: `"tanh"` is computed in closed form, exact for any finite scores:
    $\sigma = \log 2 + \log \mathrm{sigmoid}(2x)$, shifted by each positive's largest logit, which
    is its largest negative's ($\sigma$ is increasing), so no pass over the pairs finds it
    (`python -m benchmarks.losses --kernel psl_tanh`). For `"atan"`/`"relu"` a pair beyond the
    activation's support has $e^{\sigma} = 0$ and no gradient. A positive whose pairs all lie there
    has $\log 0 = -\infty$; its value is floored at `log(finfo.tiny)` (≈ -87 in float32) with zero
    gradient, so the loss and its gradient stay finite. Pairwise work is one `[N]` row per positive
    (`[M, N]` for a chunk's M positives, no padding to its longest row), chunked over rows so that
    a chunk's positives × N stay under `max_elements`; the backward is written by hand
    (`_PairwiseSoftmax`), with autograd's gradient and less work (`python -m benchmarks.losses
    --kernel psl`).
    """
    check_rows(scores, relevance)
    assert tau > 0 and score_scale > 0, f"tau and score_scale must be > 0, got {tau}, {score_scale}"
    assert activation in PSL_ACTIVATIONS, f"activation must be one of {PSL_ACTIVATIONS}, got {activation!r}"
    fn = functools.partial(_psl_rows, tau=tau, activation=activation, score_scale=score_scale)
    cost = (relevance > 0).sum(1) * scores.shape[1]  # [Q]  one [N] row per positive
    row_sum, n_pos, valid = map_rows(fn, scores, relevance, max_elements=max_elements, row_elements=cost)
    return reduce_positives(row_sum, n_pos, valid, reduction, weighting)


# --------------------------------------------------------------------------- LLPAUC


def reverse_gradient(x: Tensor) -> Tensor:
    """`x` in the forward pass, `-grad` in the backward pass (`x.detach() + (x.detach() - x)`).

    Feeding a variable through it turns a descent step on the loss into an ascent step on that
    variable: how `modules.LLPAUCLoss` does gradient descent-ascent with one optimizer.
    """
    return x.detach() + (x.detach() - x)


def _row_means(values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """`[Q]` mean of `values [Q, N]` over `mask [Q, N]` and the counts (0 mean where empty)."""
    count = mask.sum(1)
    total = torch.where(mask, values, torch.zeros_like(values)).sum(1)
    return total / count.clamp(min=1), count


def llpauc(
    scores: Tensor,
    relevance: Tensor,
    a: Tensor | float,
    b: Tensor | float,
    gamma: Tensor | float,
    s_pos: Tensor | float,
    s_neg: Tensor | float,
    theta_a: Tensor | float = 0.0,
    theta_b: Tensor | float = 0.0,
    alpha: float = 0.7,
    beta: float = 0.1,
    kappa: float = 5.0,
    sigmoid: bool = True,
    reduction: str = "mean",
    weighting: str = "interaction",
) -> Tensor:
    r"""The min-max objective of the lower-left partial AUC (Shi et al., WWW 2024).

    LLPAUC(α, β) is the area under the ROC curve restricted to its lower-left corner,
    TPR ≤ α and FPR ≤ β: it counts only pairs of a top-ranked positive and a top-ranked
    negative, which ties it to Top-K metrics. Its surrogate uses the square loss, the
    average-top-k trick and $r_\kappa(x) = \mathrm{softplus}(\kappa x)/\kappa$ for $[x]_+$, with
    $p = \mathrm{sigmoid}(s)$ (or $p = s$ when `sigmoid=False`, for scores already in [0, 1]).
    Per row, with $s^+$ = `s_pos` and $s^-$ = `s_neg`:

    $$
    F = -s^+ - \frac{1}{\alpha} \bar r^+ + s^- + \frac{1}{\beta} \bar r^- + G
    $$

    $$
    \bar r^+ = \frac{1}{|P_u|} \sum_{i \in P_u} r_\kappa\big(2(1 + \gamma) p_i - (p_i - a)^2 - s^+\big)
    $$

    $$
    \bar r^- = \frac{1}{|N_u|} \sum_{j \in N_u} r_\kappa\big((p_j - b)^2 + 2(1 + \gamma) p_j - s^-\big)
    $$

    $$
    G = -\gamma^2 + \theta_a (a + \gamma) + \theta_b (1 + \gamma - b)
    $$

    to be solved as $\min_{\text{model}, a, b, s^-, \theta_a, \theta_b} \max_{s^+, \gamma} F$,
    with $a, b \in [0, 1]$, $\gamma \in [-1, 1]$, $s^+ \in [-1, 4]$, $s^- \in [0, 5]$,
    $\theta_a, \theta_b \ge 0$ (Lagrange multipliers of the constraint
    $\gamma \ge \max(-a, b - 1)$). This function only evaluates F at the given variables
    (scalars or 0-d tensors; it neither clips them nor reverses any gradient):
    `modules.LLPAUCLoss` holds them as parameters and realises the min-max.
    Defaults α = 0.7, β = 0.1, κ = 5 are those of the authors' code.

    The two means run over a row's positives and negatives; `weighting="interaction"` weights
    each row by its positive count (both terms), `"user"` weights rows equally;
    `reduction="none"` gives F per row (the scalar terms included), 0 for rows lacking a
    positive or a negative.
    """
    check_rows(scores, relevance)
    assert weighting in WEIGHTINGS, f"weighting must be one of {WEIGHTINGS}, got {weighting!r}"
    assert alpha > 0 and beta > 0 and kappa > 0, f"alpha, beta, kappa must be > 0, got {alpha}, {beta}, {kappa}"
    p = torch.sigmoid(scores) if sigmoid else scores  # [Q, N]
    pos = relevance > 0
    neg = ~pos
    pos_inner = 2 * (1 + gamma) * p - (p - a) ** 2 - s_pos  # [Q, N]
    neg_inner = (p - b) ** 2 + 2 * (1 + gamma) * p - s_neg  # [Q, N]
    pos_term, n_pos = _row_means(F.softplus(pos_inner, beta=kappa), pos)  # [Q]
    neg_term, n_neg = _row_means(F.softplus(neg_inner, beta=kappa), neg)  # [Q]
    constant = -s_pos + s_neg - gamma**2 + theta_a * (a + gamma) + theta_b * (1 + gamma - b)
    per_row = constant - pos_term / alpha + neg_term / beta  # [Q]
    valid = (n_pos > 0) & (n_neg > 0)
    if weighting == "user" or reduction == "none":
        return reduce_queries(per_row, valid, reduction)
    return reduce_positives(per_row * n_pos, n_pos, valid, reduction, weighting)


# --------------------------------------------------------------------------- SL@K


def topk_quantile(scores: Tensor, k: int, mask: Tensor | None = None) -> Tensor:
    r"""`[Q]` estimate of each row's top-K score threshold $\beta_u^K$: its K-th largest score.

    `scores [Q, M]` are a user's scores on its positives plus N sampled negatives (SL@K's
    estimator; `mask [Q, M]` marks the real entries when rows are padded). Sampling negatives
    makes it a lower estimate of the threshold over the whole catalogue. A row with fewer than K
    entries gets its smallest score; an empty row `-inf`. No gradient: the threshold is refreshed
    outside the loss (every T_β epochs in SL@K's training).
    """
    assert scores.dim() == 2, f"scores must be [Q, M], got {tuple(scores.shape)}"
    assert k >= 1, f"k must be >= 1, got {k}"
    scores = scores.detach()
    if mask is None:
        mask = torch.ones_like(scores, dtype=torch.bool)
    assert mask.shape == scores.shape, f"mask {tuple(mask.shape)} must match scores {tuple(scores.shape)}"
    ordered = scores.masked_fill(~mask, float("-inf")).sort(dim=1, descending=True).values  # [Q, M]
    count = mask.sum(1)  # [Q]
    position = (count.clamp(max=k) - 1).clamp(min=0)  # [Q]
    out = ordered.gather(1, position[:, None]).squeeze(1)
    return torch.where(count > 0, out, torch.full_like(out, float("-inf")))


def sl_at_k(
    scores: Tensor,
    relevance: Tensor,
    beta: Tensor,
    tau_d: float = 0.1,
    tau_w: float = 1.0,
    detach_weights: bool = False,
    reduction: str = "mean",
    weighting: str = "interaction",
    shift_invariant: bool = False,
) -> Tensor:
    r"""SL@K's per-row loss (Yang et al., KDD 2025) for given top-K thresholds `beta [Q]` (`topk_quantile`).

    With $\beta_u$ the threshold of user $u$ and $d_{uij} = s_{uj} - s_{ui}$:

    $$
    \ell(u) = \sum_{i \in P_u} w_{ui} \log \sum_{j \in N_u} e^{d_{uij} / \tau_d}
    $$

    $$
    w_{ui} = \mathrm{sigmoid}\big((s_{ui} - \beta_u) / \tau_w\big)
    $$

    SL weighted by a smooth indicator that positive $i$ is in the user's top K; a surrogate of
    $-\log \mathrm{DCG@K}$. In the authors' code the weights keep their gradient (`detach_weights=False`)
    and β is a constant refreshed every few epochs, never learned; `beta` is detached here.
    Averaged over positives as in the module docstring.

    Kept, the weights' gradient has a direction that leaves the ranking alone: lowering all of a
    row's scores by the same amount leaves every SL term as it is and lowers every weight, so the
    loss falls by $\sum_i w_{ui}(1 - w_{ui})\,\mathrm{SL}_{ui} / \tau_w$ per unit of shift where the
    SL terms are positive. Between two refreshes of β nothing holds it back; each refresh moves β
    down after the scores. `detach_weights=True` removes that direction (the shift's derivative is
    then 0) and keeps the weights as per-positive importances. `shift_invariant=True` removes only
    that direction and keeps the rest of the weights' gradient: in the backward pass β moves with
    the row's mean score $m_u$ (the value is unchanged),

    $$
    w_{ui} = \mathrm{sigmoid}\big((s_{ui} - \beta_u - m_u + \mathrm{sg}(m_u)) / \tau_w\big),
    $$

    so each row's gradient is SL@K's minus its mean over the row's candidates (an ablation: on
    IR-Benchmark's Health it trains below SL, benchmarks/RESULTS.md).
    """
    check_rows(scores, relevance)
    assert beta.shape == scores.shape[:1], f"beta must be [Q] = {scores.shape[0]}, got {tuple(beta.shape)}"
    assert tau_d > 0 and tau_w > 0, f"temperatures must be > 0, got {tau_d}, {tau_w}"
    pos = relevance > 0  # [Q, N]
    lse_neg, has_neg = _negative_logsumexp(scores / tau_d, ~pos)  # [Q, 1], [Q]
    softmax = lse_neg - scores / tau_d  # [Q, N]  SL of each positive
    threshold = beta.detach()[:, None]  # [Q, 1]
    if shift_invariant:
        mean = scores.mean(1, keepdim=True)  # [Q, 1]
        threshold = threshold + (mean - mean.detach())
    weights = torch.sigmoid((scores - threshold) / tau_w)  # [Q, N]
    if detach_weights:
        weights = weights.detach()
    return reduce_positives(*_sum_over_positives(weights * softmax, pos, has_neg), reduction, weighting)


__all__ = [
    "PSL_ACTIVATIONS", "bsl", "llpauc", "psl", "psl_activation", "reverse_gradient", "sl_at_k",
    "topk_quantile",
]
