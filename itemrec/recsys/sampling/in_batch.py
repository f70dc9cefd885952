"""In-batch negatives: the positives of the other users of the batch."""

from __future__ import annotations

import scipy.sparse as sp
import torch
from torch import Tensor

from itemrec.recsys.sampling.base import NegativeSampler, reject_positives


class InBatchNegatives(NegativeSampler):
    """Draws uniformly from the multiset of the batch users' training positives.

    An item is drawn with probability proportional to the number of batch users that hold it
    (popularity within the batch); draws that are the user's own positives are redrawn. A batch
    without any positive falls back to uniform items.
    """

    def __init__(self, train: sp.spmatrix) -> None:
        super().__init__(train)

    def sample(self, users: Tensor, n: int, generator: torch.Generator) -> Tensor:
        users = users.long().cpu()
        _, pool = self.positives.gather(users)  # [M]  positives of every batch user
        if pool.numel() == 0:
            pool = torch.arange(self.n_items)

        def draw(shape: tuple[int, ...]) -> Tensor:
            return pool[torch.randint(len(pool), shape, generator=generator)]

        items = draw((len(users), n))  # [B, n]
        return reject_positives(self.positives, users, items, lambda u: draw((len(u),)), generator)
