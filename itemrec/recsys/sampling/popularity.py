"""Popularity negatives: items drawn proportionally to `popularity^β`, positives excluded."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from itemrec.experiment.registry import NON_NEGATIVE, Rule
from itemrec.recsys.sampling.base import NegativeSampler, reject_positives


class PopularityNegatives(NegativeSampler):
    """`P(i | u) ∝ pop(i)^β` for `i ∉ H_u`, `pop(i)` = training interactions of item i.

    Items never interacted with have weight 0 (never drawn, unless a user owns every other
    item; see `itemrec.recsys.sampling.base`). `β = 0` is uniform over the popular items, `β = 1` is
    proportional to popularity.
    """

    param_rules: ClassVar[dict[str, Rule]] = {"beta": NON_NEGATIVE}  # an exponent, not a cosine

    def __init__(self, train: sp.spmatrix, beta: float = 0.75) -> None:
        super().__init__(train)
        self.beta = beta
        counts = np.diff(self.positives.matrix.tocsc().indptr).astype(np.float64)  # [I]
        weights = np.where(counts > 0, counts**beta, 0.0)
        if weights.sum() == 0:
            weights = np.ones_like(weights)
        self.weights = torch.from_numpy(weights / weights.sum())  # [I], sums to 1
        self.cdf = torch.cumsum(self.weights, 0)  # [I], float64

    def draw(self, count: int, generator: torch.Generator) -> Tensor:
        """`count` items drawn (with replacement) with probability `weights` (inverse CDF)."""
        uniform = torch.rand(count, generator=generator, dtype=torch.float64) * self.cdf[-1]
        return torch.searchsorted(self.cdf, uniform, right=True).clamp(max=self.n_items - 1)

    def sample(self, users: Tensor, n: int, generator: torch.Generator) -> Tensor:
        users = users.long().cpu()
        items = self.draw(len(users) * n, generator).view(len(users), n)  # [B, n]
        return reject_positives(
            self.positives, users, items, lambda u: self.draw(len(u), generator), generator
        )
