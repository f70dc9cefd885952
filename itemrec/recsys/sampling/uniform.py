"""Uniform negatives: items drawn uniformly from the user's non-positive items."""

from __future__ import annotations

import scipy.sparse as sp
import torch
from torch import Tensor

from itemrec.recsys.sampling.base import NegativeSampler, reject_positives


class UniformNegatives(NegativeSampler):
    """`P(i | u) = 1 / (I - |H_u|)` for `i ∉ H_u` (uniform draws, collisions redrawn)."""

    def __init__(self, train: sp.spmatrix) -> None:
        super().__init__(train)

    def draw(self, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        """Uniform item indices of the given shape."""
        return torch.randint(self.n_items, shape, generator=generator)

    def sample(self, users: Tensor, n: int, generator: torch.Generator) -> Tensor:
        users = users.long().cpu()
        items = self.draw((len(users), n), generator)  # [B, n]
        return reject_positives(
            self.positives, users, items, lambda u: self.draw((len(u),), generator), generator
        )
