"""`nn.Module` wrappers: each holds a loss's hyper-parameters and calls the function in `losses`.

`forward(scores [Q, N], relevance [Q, N]) -> scalar` for every loss except `HAPPIERLoss`, which
also takes the embeddings and fine labels for its proxy term, and `SLatKLoss`, which also takes
each row's top-K threshold `beta [Q]`. The softmax family (`BSLLoss`, `PSLLoss`, `LLPAUCLoss`,
`SLatKLoss`) calls `softmax_losses`; `LLPAUCLoss` holds learnable auxiliary variables, like
`HAPPIERLoss`'s proxies, to be optimised with the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from itemrec.ranking import losses as L
from itemrec.ranking import softmax_losses as S
from itemrec.ranking.ranks import DEFAULT_MAX_ELEMENTS
from itemrec.ranking.thresholds import TOPK_THRESHOLD_RULES, TopKEstimate

Weighting = Literal["user", "interaction"]


class WeightedLoss(nn.Module):
    """A loss whose `weighting` ("user" or "interaction") says how it averages its rows' terms;
    `batch_mean` tells the trainer that it averages over the batch's positives rather than its
    rows (so a distributed batch must be reduced as one, not per process). `topk_estimate` is set
    on a loss whose `forward` takes each row's top-K threshold `beta [Q]` (its `k`)."""

    weighting: Weighting
    topk_estimate: TopKEstimate | None = None

    @property
    def batch_mean(self) -> bool:
        return self.weighting == "interaction"

    @property
    def topk_thresholds(self) -> bool:
        """Whether `forward` takes each row's top-K threshold β (the caller keeps them fresh)."""
        return self.topk_estimate is not None


class _SupRankLoss(WeightedLoss):
    r"""Shared hyper-parameters of SupRank's surrogate `H-` (τ, ρ, δ, start, offset) and the
    weighting of the rows: `"user"` (the default) averages the rows' losses $\mathcal{L}_u$,
    `"interaction"` weighs each row by its number of positives, $\sum_u n_u \mathcal{L}_u /
    \sum_u n_u$, as a batch of (user, positive) pairs would."""

    def __init__(
        self,
        tau: float = 0.01,
        rho: float = 100.0,
        delta: float = 0.05,
        start: float = 0.5,
        offset: float | None = None,
        max_elements: int = DEFAULT_MAX_ELEMENTS,
        weighting: Weighting = "user",
    ) -> None:
        super().__init__()
        self.tau, self.rho, self.delta, self.start, self.offset = tau, rho, delta, start, offset
        self.max_elements, self.weighting = max_elements, weighting

    def _weighted(self, loss: Callable[..., Tensor], scores: Tensor, relevance: Tensor, **kwargs) -> Tensor:
        """`loss(scores, relevance, **kwargs)` reduced over the rows by `self.weighting`."""
        if self.weighting == "user":
            return loss(scores, relevance, **kwargs, **self._step_kwargs())
        per_row = loss(scores, relevance, reduction="none", **kwargs, **self._step_kwargs())  # [Q]
        n_pos = (relevance > 0).sum(1)
        return L.reduce_positives(per_row * n_pos, n_pos, n_pos > 0, "mean", "interaction")

    def _step_kwargs(self) -> dict:
        return dict(
            tau=self.tau, rho=self.rho, delta=self.delta, start=self.start, offset=self.offset,
            max_elements=self.max_elements,
        )

    def extra_repr(self) -> str:
        return f"tau={self.tau}, rho={self.rho}, delta={self.delta}, start={self.start}"


class SupAPLoss(_SupRankLoss):
    r"""`losses.sup_ap`, SupAP: one minus a smooth AP that upper-bounds $1 - \mathrm{AP}$.

    $$
    \mathcal{L} = 1 - \frac{1}{|\Omega^+|}
    \sum_{k \in \Omega^+} \frac{\mathrm{rank}^+(k)}{\mathrm{rank}^+(k) + \mathrm{rank}^-_s(k)}
    $$
    """

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        return self._weighted(L.sup_ap, scores, relevance)


class SupNDCGLoss(_SupRankLoss):
    r"""`losses.sup_ndcg`, Sup-NDCG: one minus a smooth NDCG with SupRank's ranks.

    $$
    \mathcal{L} = 1 - \frac{1}{\mathrm{IDCG}}
    \sum_{j \in \Omega^+} \frac{2^{\mathrm{rel}_j} - 1}{\log_2(1 + \mathrm{rank}_s(j))}
    $$
    """

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        return self._weighted(L.sup_ndcg, scores, relevance)


class SupHAPLoss(_SupRankLoss):
    r"""`losses.sup_hap`, HAPPIER's smooth hierarchical AP loss.

    $$
    \mathcal{L} = 1 - \frac{1}{\sum_{k \in \Omega^+} \mathrm{rel}(k)}
    \sum_{k \in \Omega^+} \frac{\text{H-rank}(k)}{\mathrm{rank}_s(k)}
    $$
    """

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        return self._weighted(L.sup_hap, scores, relevance)


class SupRecallLoss(_SupRankLoss):
    r"""`losses.sup_recall_at_k`, Sup-R@k (ks $K$ = 1, 2, 4, 8, 16; temperature $t$ = 1).

    $$
    \mathcal{L} = 1 - \frac{1}{|K|} \sum_{k \in K} \frac{1}{\min(|\Omega^+|, k)}
    \sum_{j \in \Omega^+} \sigma\big((k - \mathrm{rank}_s(j)) / t\big)
    $$
    """

    def __init__(self, ks: tuple[int, ...] = L.RECALL_KS, temperature: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ks, self.temperature = tuple(ks), temperature

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        return self._weighted(L.sup_recall_at_k, scores, relevance, ks=self.ks, temperature=self.temperature)


class ROADMAPLoss(_SupRankLoss):
    r"""`losses.roadmap`: SupAP plus the calibration loss (λ = 0.1).

    $$
    \mathcal{L} = (1 - \lambda) \mathcal{L}_{\mathrm{SupAP}} + \lambda \mathcal{L}_{\mathrm{DG}}
    $$
    """

    batch_mean = True
    """The calibration term averages over the pairs of the whole batch, not over rows."""

    def __init__(self, lam: float = 0.1, alpha: float = 0.9, beta: float = 0.6, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lam, self.alpha, self.beta = lam, alpha, beta

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        if self.weighting == "user":
            return L.roadmap(
                scores, relevance, lam=self.lam, alpha=self.alpha, beta=self.beta, **self._step_kwargs()
            )
        ap_loss = self._weighted(L.sup_ap, scores, relevance)
        return (1 - self.lam) * ap_loss + self.lam * L.calibration(scores, relevance, self.alpha, self.beta)


class HAPPIERLoss(_SupRankLoss):
    r"""`losses.happier`, holding the learnable class proxies `[num_classes, dim]`.

    $$
    \mathcal{L} = (1 - \lambda) (1 - \text{H-AP}_s) + \lambda \mathcal{L}_{\mathrm{cluster}}
    $$
    """

    def __init__(
        self, num_classes: int, dim: int, lam: float = 0.1, temperature: float = 0.05, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        assert self.weighting == "user", "HAPPIER averages its rows alike (weighting='user')"
        self.lam, self.temperature = lam, temperature
        self.proxies = nn.Parameter(torch.randn(num_classes, dim) / dim**0.5)

    def forward(self, scores: Tensor, relevance: Tensor, embeddings: Tensor, labels: Tensor) -> Tensor:
        return L.happier(
            scores, relevance, embeddings, labels, self.proxies,
            lam=self.lam, temperature=self.temperature, **self._step_kwargs(),
        )


class SmoothAPLoss(nn.Module):
    r"""`losses.smooth_ap` (sigmoid on every pair, τ = 0.01).

    $$
    \mathcal{L} = 1 - \frac{1}{|\Omega^+|}
    \sum_{k \in \Omega^+} \frac{1 + \sum_{j \in \Omega^+, j \ne k} \sigma_{jk}}{1 + \sum_{j \ne k} \sigma_{jk}},
    \qquad \sigma_{jk} = \sigma\big((s_j - s_k) / \tau\big)
    $$
    """

    def __init__(self, tau: float = 0.01, max_elements: int = DEFAULT_MAX_ELEMENTS) -> None:
        super().__init__()
        self.tau, self.max_elements = tau, max_elements

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        return L.smooth_ap(scores, relevance, tau=self.tau, max_elements=self.max_elements)


class CalibrationLoss(nn.Module):
    r"""`losses.calibration` (decomposability gap, α = 0.9, β = 0.6).

    $$
    \mathcal{L}_{\mathrm{DG}} = \operatorname{mean}_{\text{positive pairs}} [\alpha - s]_+
    + \operatorname{mean}_{\text{negative pairs}} [s - \beta]_+
    $$
    """

    batch_mean = True
    """Averages over the pairs of the whole batch, not over rows."""

    def __init__(self, alpha: float = 0.9, beta: float = 0.6) -> None:
        super().__init__()
        self.alpha, self.beta = alpha, beta

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        return L.calibration(scores, relevance, self.alpha, self.beta)


class BPRLoss(nn.Module):
    r"""`losses.bpr`, Bayesian personalized ranking.

    $$
    \mathcal{L} = -\frac{1}{|\Omega^+| \, |\Omega^-|}
    \sum_{k \in \Omega^+} \sum_{j \in \Omega^-} \log \sigma(s_k - s_j)
    $$
    """

    def __init__(self, max_elements: int = DEFAULT_MAX_ELEMENTS) -> None:
        super().__init__()
        self.max_elements = max_elements

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        return L.bpr(scores, relevance, max_elements=self.max_elements)


class SampledSoftmaxLoss(nn.Module):
    r"""`losses.sampled_softmax` (temperature 0.1; InfoNCE by default, the benchmark's SL with
    `include_positive=False`; `weighting=None` follows `include_positive`).

    $$
    \mathcal{L} = -\frac{1}{|\Omega^+|} \sum_{k \in \Omega^+}
    \log \frac{e^{s_k/T}}{e^{s_k/T} + \sum_{j \in \Omega^-} e^{s_j/T}}
    $$

    SL drops $e^{s_k/T}$ from the denominator; `push` $p$ (0: off) adds $p$ times the row's mean
    score to each positive's term.
    """

    def __init__(
        self, temperature: float = 0.1, include_positive: bool = True, weighting: Weighting | None = None,
        push: float = 0.0,
    ) -> None:
        super().__init__()
        self.temperature, self.include_positive, self.weighting = temperature, include_positive, weighting
        self.push = push

    @property
    def batch_mean(self) -> bool:
        """True when the mean runs over the batch's positives rather than its rows."""
        return (self.weighting or ("user" if self.include_positive else "interaction")) == "interaction"

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        return L.sampled_softmax(
            scores, relevance, self.temperature,
            include_positive=self.include_positive, weighting=self.weighting, push=self.push,
        )


class CosineContrastiveLoss(nn.Module):
    r"""`losses.cosine_contrastive` (SimpleX CCL, margin $m$ = 0.9, negative weight $w$ = 10).

    $$
    \mathcal{L} = \frac{1}{|\Omega^+|} \sum_{k \in \Omega^+} (1 - s_k)
    + \frac{w}{|\Omega^-|} \sum_{j \in \Omega^-} [s_j - m]_+
    $$
    """

    def __init__(self, margin: float = 0.9, negative_weight: float = 10.0) -> None:
        super().__init__()
        self.margin, self.negative_weight = margin, negative_weight

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        return L.cosine_contrastive(scores, relevance, self.margin, self.negative_weight)


class BSLLoss(WeightedLoss):
    r"""`softmax_losses.bsl` (τ1 = τ2 = 0.1: SL at the sampled softmax's temperature).

    $$
    \ell(u, i) = -\frac{s_{ui}}{\tau_1} + \frac{\tau_2}{\tau_1} \log \sum_{j \in N_u} e^{s_{uj}/\tau_2}
    $$
    """

    def __init__(self, tau1: float = 0.1, tau2: float = 0.1, weighting: Weighting = "interaction") -> None:
        super().__init__()
        self.tau1, self.tau2, self.weighting = tau1, tau2, weighting

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        return S.bsl(scores, relevance, self.tau1, self.tau2, weighting=self.weighting)


class PSLLoss(WeightedLoss):
    r"""`softmax_losses.psl` (τ = 0.05, tanh, score scale $c$ = 2: the benchmark's setting).

    $$
    \ell(u, i) = \log \sum_{j \in N_u} \exp\big(\sigma((s_{uj} - s_{ui}) / c) / \tau\big),
    \qquad \sigma(x) = \log(\tanh x + 1)
    $$
    """

    def __init__(
        self,
        tau: float = 0.05,
        activation: Literal["tanh", "atan", "relu"] = "tanh",
        score_scale: float = 2.0,
        weighting: Weighting = "interaction",
        max_elements: int = DEFAULT_MAX_ELEMENTS,
    ) -> None:
        super().__init__()
        self.tau, self.activation, self.score_scale = tau, activation, score_scale
        self.weighting, self.max_elements = weighting, max_elements

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        return S.psl(
            scores, relevance, tau=self.tau, activation=self.activation, score_scale=self.score_scale,
            weighting=self.weighting, max_elements=self.max_elements,
        )

    def extra_repr(self) -> str:
        return f"tau={self.tau}, activation={self.activation!r}, score_scale={self.score_scale}"


class LLPAUCLoss(nn.Module):
    r"""`softmax_losses.llpauc` with its auxiliary variables as parameters (α = 0.7, β = 0.1, κ = 5).

    $$
    \min_{\text{model}, a, b, s^-, \theta_a, \theta_b} \; \max_{s^+, \gamma} \; F
    $$

    with $F$ the surrogate of the lower-left partial AUC given in `softmax_losses.llpauc`.

    Parameters (0-d, initial values of the authors' code): `a` = 1, `b` = 0, `s_neg` = 0.5,
    `theta_a` = `theta_b` = 0.5 are minimised with the model; `s_pos` = 0.5 and `gamma` = 0 are
    maximised. Give `loss.parameters()` to the optimizer with the model's; `lr_scales()` names
    the learning-rate multiplier of each (`aux_lr_scale` for `s_pos`, `s_neg`, `gamma`: the
    authors' code trains them at twice the model's learning rate), for a parameter group each.

    The min-max is gradient descent-ascent with one optimizer: with `ascent=True` the maximised
    variables enter the objective through `softmax_losses.reverse_gradient`, so their `.grad` is
    `-∂F/∂v` and the optimizer's descent step on the loss is an ascent step on them, in the same
    step that descends on the model and the other variables. `ascent=False` descends on all of
    them (what the benchmark's re-implementation ended up doing). Each forward first projects
    every variable onto its range (`BOUNDS`, in place, no gradient), so the optimizer's step is
    followed by the projection of projected gradient descent-ascent; call forward once per step.
    """

    BOUNDS: ClassVar[dict[str, tuple[float, float | None]]] = {
        "a": (0.0, 1.0), "b": (0.0, 1.0), "gamma": (-1.0, 1.0), "s_pos": (-1.0, 4.0),
        "s_neg": (0.0, 5.0), "theta_a": (0.0, None), "theta_b": (0.0, None),
    }
    ASCENT: ClassVar[tuple[str, ...]] = ("s_pos", "gamma")
    # Config ranges (a class's `param_rules` override the registry's rules by name): α and β
    # are bounds on TPR and FPR here, not the cosine thresholds of the calibration loss.
    param_rules: ClassVar[dict[str, tuple[str, Callable[[float], bool]]]] = {
        "alpha": ("in (0, 1]", lambda v: 0 < v <= 1),
        "beta": ("in (0, 1]", lambda v: 0 < v <= 1),
        "aux_lr_scale": ("> 0", lambda v: v > 0),
    }

    def __init__(
        self,
        alpha: float = 0.7,
        beta: float = 0.1,
        kappa: float = 5.0,
        sigmoid: bool = True,
        ascent: bool = True,
        weighting: Weighting = "interaction",
        free_multipliers: bool = False,
        aux_lr_scale: float = 1.0,
    ) -> None:
        super().__init__()
        assert aux_lr_scale > 0, f"aux_lr_scale must be > 0, got {aux_lr_scale}"
        self.alpha, self.beta, self.kappa, self.sigmoid = alpha, beta, kappa, sigmoid
        self.ascent, self.weighting, self.free_multipliers = ascent, weighting, free_multipliers
        self.aux_lr_scale = aux_lr_scale
        initial = {"a": 1.0, "b": 0.0, "gamma": 0.0, "s_pos": 0.5, "s_neg": 0.5, "theta_a": 0.5, "theta_b": 0.5}
        for name, value in initial.items():
            self.register_parameter(name, nn.Parameter(torch.tensor(value)))

    @property
    def batch_mean(self) -> bool:
        """True: the auxiliary variables are shared by the whole batch."""
        return True

    def lr_scales(self) -> dict[str, float]:
        """Learning-rate multiplier per parameter name (the others train at the model's rate)."""
        return {name: self.aux_lr_scale for name in ("s_pos", "s_neg", "gamma")}

    @torch.no_grad()
    def project_(self) -> None:
        """Clamp every auxiliary variable into its range (`BOUNDS`), then γ into its feasible
        set `[max(-a, b - 1), 1]`, which depends on a and b.

        Without the last clamp, `a + γ` can go negative: the descent on `θ_a` then grows it
        without bound, the objective falls linearly and the model's positives are pushed down.
        `free_multipliers=True` leaves θ_a, θ_b unclamped, as the benchmark's re-implementation
        does: descending on them then drives them to -∞ (the objective with them), while γ's
        clamp keeps the model's terms as they are. That is what reproduces the published LLPAUC
        rows: on Amazon2014-Electronic, MF, test NDCG@20 0.0506 free against 0.0427 clamped
        (published 0.0499; `configs/recsys/irb/*_llpauc.yaml`).
        """
        for name, (low, high) in self.BOUNDS.items():
            if not (self.free_multipliers and name.startswith("theta")):
                getattr(self, name).clamp_(low, high)
        self.gamma.clamp_(torch.maximum(-self.a, self.b - 1), torch.ones_like(self.gamma))

    def forward(self, scores: Tensor, relevance: Tensor) -> Tensor:
        self.project_()
        v = {name: getattr(self, name) for name in self.BOUNDS}
        if self.ascent:
            v.update({name: S.reverse_gradient(v[name]) for name in self.ASCENT})
        return S.llpauc(
            scores, relevance, **v, alpha=self.alpha, beta=self.beta, kappa=self.kappa,
            sigmoid=self.sigmoid, weighting=self.weighting,
        )

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, kappa={self.kappa}, ascent={self.ascent}"


class SLatKLoss(WeightedLoss):
    r"""`softmax_losses.sl_at_k` for given top-K thresholds β (K = 20, τ_d = 0.2, τ_w = 1).

    $$
    \ell(u) = \sum_{i \in P_u} \mathrm{sigmoid}\big((s_{ui} - \beta_u) / \tau_w\big)
    \log \sum_{j \in N_u} e^{(s_{uj} - s_{ui}) / \tau_d}
    $$

    `forward(scores [Q, N], relevance [Q, N], beta [Q])`: β_u^K of each row's user comes from the
    caller, who estimates it from the current model as `topk_estimate` says (`refresh_every`,
    `quantile_negatives`, `quantile_positives`); the loss itself reads only τ_d, τ_w and the
    weighting. The weights keep their gradient (`detach_weights=False`), as in the authors'
    code; β never has one. `shift_invariant=True` drops the part of the weights' gradient that
    lowers all of a row's scores together (`sl_at_k`).
    """

    param_rules: ClassVar[dict[str, tuple[str, Callable[[float], bool]]]] = {
        **TOPK_THRESHOLD_RULES,
        "tau_d": ("> 0", lambda v: v > 0),
    }

    def __init__(
        self,
        k: int = 20,
        tau_d: float = 0.2,
        tau_w: float = 1.0,
        refresh_every: int = 5,
        quantile_negatives: int = 1000,
        detach_weights: bool = False,
        weighting: Weighting = "interaction",
        shift_invariant: bool = False,
        quantile_positives: int | None = None,
    ) -> None:
        super().__init__()
        self.k, self.tau_d, self.tau_w = k, tau_d, tau_w
        self.topk_estimate = TopKEstimate(refresh_every, quantile_negatives, quantile_positives)
        self.detach_weights, self.weighting, self.shift_invariant = detach_weights, weighting, shift_invariant

    def forward(self, scores: Tensor, relevance: Tensor, beta: Tensor) -> Tensor:
        return S.sl_at_k(
            scores, relevance, beta, tau_d=self.tau_d, tau_w=self.tau_w, detach_weights=self.detach_weights,
            weighting=self.weighting, shift_invariant=self.shift_invariant,
        )

    def extra_repr(self) -> str:
        return (
            f"k={self.k}, tau_d={self.tau_d}, tau_w={self.tau_w}, refresh_every={self.topk_estimate.refresh_every}, "
            f"quantile_negatives={self.topk_estimate.negatives}"
        )

