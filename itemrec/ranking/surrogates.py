r"""Step functions that count "is j ranked before k?" from a score difference $x = s_j - s_k$.

All functions are elementwise and shape-preserving.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def heaviside(x: Tensor) -> Tensor:
    r"""Exact step $H(x) = [x \ge 0]$: 1 if $x \ge 0$, else 0.

    $H(0) = 1$: a tie counts as wrongly ordered (pessimistic ranks). No useful gradient.
    """
    return (x >= 0).to(x.dtype)


def sigmoid_step(x: Tensor, tau: float = 0.01) -> Tensor:
    r"""Smooth-AP's surrogate $\sigma(x / \tau)$. Neither an upper nor a lower bound of $H$."""
    return torch.sigmoid(x / tau)


def suprank_offset(tau: float, delta: float, start: float) -> float:
    r"""Default offset of the linear branch, $\sigma(\delta / \tau) + \text{start}$: continuous at δ."""
    return 1.0 / (1.0 + math.exp(-delta / tau)) + start


class _SupRankStep(torch.autograd.Function):
    r"""$H^-$ with a fused forward and a backward that recomputes its derivative from $x$ alone.

    $$
    \frac{dH^-}{dx} = \sigma'(x / \tau) / \tau \text{ for } x \le \delta, \qquad \rho \text{ for } x > \delta
    $$

    Only `x` is kept for backward, and each pass allocates one tensor of x's size, so the
    `[Q, P, N]` pairwise step costs a few elementwise passes instead of a dozen.
    """

    @staticmethod
    def forward(ctx, x: Tensor, tau: float, rho: float, delta: float, start: float, offset: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.constants = (tau, rho, delta)
        value = torch.sigmoid(x * (1 / tau))
        value.add_((x > 0).to(value.dtype), alpha=start)  # the jump at 0 (exact for 0 < x ≤ δ)
        return torch.where(x > delta, x * rho + (offset - rho * delta), value)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        tau, rho, delta = ctx.constants
        sig = torch.sigmoid(x * (1 / tau))
        deriv = sig.mul_(1 - sig).mul_(1 / tau).masked_fill_(x > delta, rho)
        return deriv.mul_(grad), None, None, None, None, None


@dataclass(frozen=True)
class SupRank:
    """SupRank's $H^-$ with its parameters bound: `SupRank(...)(x) == suprank_step(x, ...)`.

    `surrogate_ranks` recognizes it and sums `H-` over the pairs block by block
    (`itemrec.ranking.blockwise`) instead of through autograd.
    """

    tau: float = 0.01
    rho: float = 100.0
    delta: float = 0.05
    start: float = 0.5
    offset: float | None = None

    def __call__(self, x: Tensor) -> Tensor:
        return suprank_step(x, self.tau, self.rho, self.delta, self.start, self.offset)

    @property
    def resolved_offset(self) -> float:
        return suprank_offset(self.tau, self.delta, self.start) if self.offset is None else self.offset


def suprank_step(
    x: Tensor,
    tau: float = 0.01,
    rho: float = 100.0,
    delta: float = 0.05,
    start: float = 0.5,
    offset: float | None = None,
) -> Tensor:
    r"""SupRank's piecewise surrogate $H^-$, applied to $x = s_{\text{neg}} - s_{\text{pos}}$.

    $$
    H^-(x) = \begin{cases}
    \sigma(x / \tau) & x \le 0 \\
    \text{start} + \sigma(x / \tau) & 0 < x \le \delta \\
    \rho (x - \delta) + \text{offset} & x > \delta
    \end{cases}
    $$

    with $\text{offset} = \sigma(\delta / \tau) + \text{start}$ by default (`suprank_offset`).
    With start ≥ 0.5 it upper-bounds $H$ everywhere except $x = 0$ exactly, where $H(0) = 1$
    and $H^-(0) = 0.5$ (ties have measure zero), so ranks built from it bound the true ranks from
    above. The linear branch keeps a gradient of $\rho$ on badly ordered pairs, where a sigmoid
    saturates.
    """
    if offset is None:
        offset = suprank_offset(tau, delta, start)
    return _SupRankStep.apply(x, tau, rho, delta, start, offset)
