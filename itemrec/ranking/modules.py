"""`nn.Module` wrappers: each holds a loss's hyper-parameters and calls the function in `losses`.

`forward(scores [Q, N], relevance [Q, N]) -> scalar` for every loss except `HAPPIERLoss`, which
also takes the embeddings and fine labels for its proxy term.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from itemrec.ranking import losses as L
from itemrec.ranking.ranks import DEFAULT_MAX_ELEMENTS


class _SupRankLoss(nn.Module):
    """Shared hyper-parameters of SupRank's surrogate `H-` (τ, ρ, δ, start, offset)."""

    def __init__(
        self,
        tau: float = 0.01,
        rho: float = 100.0,
        delta: float = 0.05,
        start: float = 0.5,
        offset: float | None = None,
        max_elements: int = DEFAULT_MAX_ELEMENTS,
    ) -> None:
        super().__init__()
        self.tau, self.rho, self.delta, self.start, self.offset = tau, rho, delta, start, offset
        self.max_elements = max_elements

    def _step_kwargs(self) -> dict:
        return dict(
            tau=self.tau, rho=self.rho, delta=self.delta, start=self.start, offset=self.offset,
            max_elements=self.max_elements,
        )

    def extra_repr(self) -> str:
        return f"tau={self.tau}, rho={self.rho}, delta={self.delta}, start={self.start}"


class SupAPLoss(_SupRankLoss):
    """`losses.sup_ap`."""

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        return L.sup_ap(scores, relevance, **self._step_kwargs())


class SupNDCGLoss(_SupRankLoss):
    """`losses.sup_ndcg`."""

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        return L.sup_ndcg(scores, relevance, **self._step_kwargs())


class SupHAPLoss(_SupRankLoss):
    """`losses.sup_hap`."""

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        return L.sup_hap(scores, relevance, **self._step_kwargs())


class SupRecallLoss(_SupRankLoss):
    """`losses.sup_recall_at_k` (ks = 1, 2, 4, 8, 16; temperature 1)."""

    def __init__(self, ks: tuple[int, ...] = L.RECALL_KS, temperature: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ks, self.temperature = tuple(ks), temperature

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        return L.sup_recall_at_k(
            scores, relevance, ks=self.ks, temperature=self.temperature, **self._step_kwargs()
        )


class ROADMAPLoss(_SupRankLoss):
    """`losses.roadmap`: `(1 - λ) · SupAP + λ · calibration`."""

    def __init__(self, lam: float = 0.1, alpha: float = 0.9, beta: float = 0.6, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lam, self.alpha, self.beta = lam, alpha, beta

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        return L.roadmap(
            scores, relevance, lam=self.lam, alpha=self.alpha, beta=self.beta, **self._step_kwargs()
        )


class HAPPIERLoss(_SupRankLoss):
    """`losses.happier`, holding the learnable class proxies `[num_classes, dim]`."""

    def __init__(
        self, num_classes: int, dim: int, lam: float = 0.1, temperature: float = 0.05, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.lam, self.temperature = lam, temperature
        self.proxies = nn.Parameter(torch.randn(num_classes, dim) / dim**0.5)

    def forward(self, scores: Tensor, relevance: Tensor, embeddings: Tensor, labels: Tensor) -> Tensor:
        return L.happier(
            scores, relevance, embeddings, labels, self.proxies,
            lam=self.lam, temperature=self.temperature, **self._step_kwargs(),
        )


class SmoothAPLoss(nn.Module):
    """`losses.smooth_ap` (sigmoid on every pair, τ = 0.01)."""

    def __init__(self, tau: float = 0.01, max_elements: int = DEFAULT_MAX_ELEMENTS) -> None:
        super().__init__()
        self.tau, self.max_elements = tau, max_elements

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        return L.smooth_ap(scores, relevance, tau=self.tau, max_elements=self.max_elements)


class CalibrationLoss(nn.Module):
    """`losses.calibration` (decomposability gap, α = 0.9, β = 0.6)."""

    def __init__(self, alpha: float = 0.9, beta: float = 0.6) -> None:
        super().__init__()
        self.alpha, self.beta = alpha, beta

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        return L.calibration(scores, relevance, self.alpha, self.beta)


class BPRLoss(nn.Module):
    """`losses.bpr`."""

    def __init__(self, max_elements: int = DEFAULT_MAX_ELEMENTS) -> None:
        super().__init__()
        self.max_elements = max_elements

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        return L.bpr(scores, relevance, max_elements=self.max_elements)


class SampledSoftmaxLoss(nn.Module):
    """`losses.sampled_softmax` (temperature 0.1)."""

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        return L.sampled_softmax(scores, relevance, self.temperature)


class CosineContrastiveLoss(nn.Module):
    """`losses.cosine_contrastive` (SimpleX CCL, margin 0.9, negative weight 10)."""

    def __init__(self, margin: float = 0.9, negative_weight: float = 10.0) -> None:
        super().__init__()
        self.margin, self.negative_weight = margin, negative_weight

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        return L.cosine_contrastive(scores, relevance, self.margin, self.negative_weight)
