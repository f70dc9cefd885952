"""Step functions that count "is j ranked before k?" from a score difference `x = s_j - s_k`.

All functions are elementwise and shape-preserving.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def heaviside(x: Tensor) -> Tensor:
    """Exact step `H(x) = 1 if x >= 0 else 0`.

    `H(0) = 1`: a tie counts as wrongly ordered (pessimistic ranks). No useful gradient.
    """
    return (x >= 0).to(x.dtype)


def sigmoid_step(x: Tensor, tau: float = 0.01) -> Tensor:
    """Smooth-AP's surrogate `σ(x / τ)`. Neither an upper nor a lower bound of `H`."""
    return torch.sigmoid(x / tau)


def suprank_offset(tau: float, delta: float, start: float) -> float:
    """Default offset of the linear branch: `σ(δ / τ) + start`, which makes the step continuous at δ."""
    return 1.0 / (1.0 + math.exp(-delta / tau)) + start


def suprank_step(
    x: Tensor,
    tau: float = 0.01,
    rho: float = 100.0,
    delta: float = 0.05,
    start: float = 0.5,
    offset: float | None = None,
) -> Tensor:
    """SupRank's piecewise surrogate `H-`, applied to `x = s_neg - s_pos`::

        H-(x) = σ(x / τ)                 x ≤ 0
                start + σ(x / τ)         0 < x ≤ δ
                ρ · (x - δ) + offset     x > δ          offset = σ(δ / τ) + start by default

    With `start ≥ 0.5` it upper-bounds `H` everywhere except `x = 0` exactly, where `H(0) = 1`
    and `H-(0) = 0.5` (ties have measure zero), so ranks built from it bound the true ranks from
    above. The linear branch keeps a gradient of `ρ` on badly ordered pairs, where a sigmoid
    saturates.
    """
    if offset is None:
        offset = suprank_offset(tau, delta, start)
    sig = torch.sigmoid(x / tau)
    return torch.where(x <= 0, sig, torch.where(x <= delta, sig + start, rho * (x - delta) + offset))
