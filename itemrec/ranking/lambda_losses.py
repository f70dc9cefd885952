r"""LambdaLoss@K (Jagerman et al., "On Optimizing Top-K Metrics for Neural Ranking Models", SIGIR
2022): pairwise logistic losses, each weighted by what swapping its pair does to NDCG@K at the
current ranking.

Rows as everywhere in the core: `scores [Q, N]`, `relevance [Q, N]` (`> 0` marks a positive).
With $r_{ui}$ the rank of entry $i$ in its row by the current scores (1 = highest, no gradient),
$D(r) = \log_2(1 + r)$ and binary gains, each (positive $i$, negative $j$) pair of a row gets

$$
\delta_{ij} = \Big| \frac{1}{D(|r_i - r_j|)} - \frac{1}{D(|r_i - r_j| + 1)} \Big|, \qquad
\mu_{ij} = \begin{cases} \big(1 - 1 / D(\max(r_i, r_j))\big)^{-1} & \max(r_i, r_j) > K \\
1 & \text{otherwise} \end{cases}
$$

and the loss of positive $i$ of row $u$ is

$$
\ell_{ui} = \frac{1}{\mathrm{IDCG}_u@K} \sum_{j \in N_u} \delta_{ij}\, \mu_{ij}\,
\log\big(1 + e^{(s_{uj} - s_{ui}) / T}\big),
$$

$\mathrm{IDCG}_u@K = \sum_{r=1}^{\min(|P_u|, K)} 1 / D(r)$, $T$ = `temperature` (the logistic's
scale; with cosine scores in $[-1, 1]$ a small $T$ such as 0.1). $\delta$ is LambdaLoss's
NDCG weight; $\mu$ lifts pairs that reach below rank K, whose swap matters to NDCG@K only by
bringing one of them into the top K (without it such pairs would weigh almost nothing). In
recommendation the ranks are within the row (its positives and sampled negatives), as SL@K's
top-K threshold is. Pairwise: one `[N]` row per positive (`[M, N]` for a chunk's M positives),
chunked under `max_elements`. Reduction as in `softmax_losses`.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from itemrec.ranking.losses import WEIGHTINGS, reduce_positives
from itemrec.ranking.modules import WeightedLoss, Weighting
from itemrec.ranking.ranks import DEFAULT_MAX_ELEMENTS, check_rows, map_rows


def row_ranks(scores: Tensor) -> Tensor:
    """`[Q, N]` rank of each entry in its row by descending score, from 1 (ties in stored order),
    no gradient."""
    with torch.no_grad():
        order = scores.argsort(dim=1, descending=True, stable=True)  # [Q, N]
        ranks = torch.empty_like(order)
        ranks.scatter_(1, order, torch.arange(1, scores.shape[1] + 1, device=scores.device).expand_as(order))
        return ranks.to(scores.dtype)


def ideal_dcg_at_k(n_pos: Tensor, k: int) -> Tensor:
    """`[Q]` IDCG@K of rows with `n_pos [Q]` binary positives: $\\sum_{r=1}^{\\min(n, K)} 1/\\log_2(1 + r)$."""
    discounts = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64, device=n_pos.device))  # [K]
    cumulative = torch.cat([discounts.new_zeros(1), discounts.cumsum(0)])  # [K + 1]
    return cumulative[n_pos.clamp(max=k).long()]


def _lambda_rows(scores: Tensor, relevance: Tensor, *, k: int, temperature: float) -> tuple[Tensor, Tensor, Tensor]:
    """Row sums of the LambdaLoss@K terms over the positives, their counts, and the rows where defined."""
    pos = relevance > 0  # [Q, N]
    neg = ~pos
    n_pos = pos.sum(1)  # [Q]
    valid = pos.any(1) & neg.any(1)  # [Q]
    rows, cols = pos.nonzero(as_tuple=True)  # [M] each: every positive of the chunk, no padding
    with torch.no_grad():
        ranks = row_ranks(scores)  # [Q, N]
        r_i = ranks[rows, cols][:, None]  # [M, 1]
        r_j = ranks[rows]  # [M, N]
        gap = (r_i - r_j).abs().clamp(min=1)  # [M, N]  ≥ 1 between distinct entries
        delta = 1 / torch.log2(1 + gap) - 1 / torch.log2(2 + gap)  # [M, N]
        top = torch.maximum(r_i, r_j)  # [M, N]
        mu = torch.where(top > k, 1 / (1 - 1 / torch.log2(1 + top)), torch.ones_like(top))  # [M, N]
        ideal = ideal_dcg_at_k(n_pos, k).to(scores.dtype)  # [Q]
        weight = (delta * mu / ideal[rows, None]).masked_fill_(pos[rows], 0.0)  # [M, N]  negatives only
    logistic = F.softplus((scores[rows] - scores[rows, cols][:, None]) / temperature)  # [M, N]
    per_pos = (weight * logistic).sum(1)  # [M]
    row_sum = torch.zeros(scores.shape[0], dtype=scores.dtype, device=scores.device).index_add(0, rows, per_pos)
    return row_sum, n_pos, valid


def lambda_loss_at_k(
    scores: Tensor,
    relevance: Tensor,
    k: int = 20,
    temperature: float = 0.1,
    reduction: str = "mean",
    weighting: str = "interaction",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Tensor:
    r"""LambdaLoss@K (see the module docstring): for each positive $i$ of a row,

    $$
    \ell_{ui} = \frac{1}{\mathrm{IDCG}_u@K} \sum_{j \in N_u} \delta_{ij}\, \mu_{ij}\,
    \log\big(1 + e^{(s_{uj} - s_{ui}) / T}\big)
    $$

    with the weights $\delta_{ij} \mu_{ij}$ from the row's current ranks (no gradient through
    them). `weighting` and `reduction` as in `softmax_losses.sampled_softmax`; a row without a
    positive or a negative is left out.
    """
    check_rows(scores, relevance)
    assert k >= 1 and temperature > 0, f"k must be >= 1 and temperature > 0, got {k}, {temperature}"
    assert weighting in WEIGHTINGS, f"weighting must be one of {WEIGHTINGS}, got {weighting!r}"
    fn = functools.partial(_lambda_rows, k=k, temperature=temperature)
    row_sum, n_pos, valid = map_rows(fn, scores, relevance, max_elements=max_elements)
    return reduce_positives(row_sum, n_pos, valid, reduction, weighting)



class LambdaLossAtK(WeightedLoss):
    r"""`lambda_losses.lambda_loss_at_k` (K = 20, T = 0.1: cosine scores).

    $$
    \ell_{ui} = \frac{1}{\mathrm{IDCG}_u@K} \sum_{j \in N_u} \delta_{ij}\, \mu_{ij}\,
    \log\big(1 + e^{(s_{uj} - s_{ui}) / T}\big)
    $$

    Jagerman et al., SIGIR 2022. The ranks that set $\delta_{ij} \mu_{ij}$ are the row's, by
    the current scores.
    """

    def __init__(
        self,
        k: int = 20,
        temperature: float = 0.1,
        weighting: Weighting = "interaction",
        max_elements: int = DEFAULT_MAX_ELEMENTS,
    ) -> None:
        super().__init__()
        self.k, self.temperature, self.weighting, self.max_elements = k, temperature, weighting, max_elements

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        return lambda_loss_at_k(scores, relevance, self.k, self.temperature, weighting=self.weighting,
                                max_elements=self.max_elements)

    def extra_repr(self) -> str:
        return f"k={self.k}, temperature={self.temperature}, weighting={self.weighting!r}"
