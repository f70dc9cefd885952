"""Popularity: every user gets the items ranked by their number of training interactions."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from itemrec.recsys.models.base import ScoringModel, check_history


class Pop(ScoringModel):
    """`score(u, i) = |{v : (v, i) ∈ train}|`, as `D = 1` vectors: user 1, item its popularity."""

    learned = False

    def __init__(self, n_users: int, n_items: int, train: sp.spmatrix) -> None:
        super().__init__(n_users, n_items, train)
        counts = np.asarray((sp.csr_matrix(train) != 0).sum(axis=0), dtype=np.float32).ravel()
        self.register_buffer("popularity", torch.from_numpy(counts))  # [I]

    @torch.no_grad()
    def user_vectors(self, users: Tensor) -> Tensor:
        return self.popularity.new_ones(len(users), 1)  # [n, 1]

    @torch.no_grad()
    def item_vectors(self) -> Tensor:
        return self.popularity[:, None]  # [I, 1]

    @torch.no_grad()
    def new_user_vectors(self, history: sp.spmatrix) -> Tensor:
        history = check_history(history, self.n_items)
        return self.popularity.new_ones(history.shape[0], 1)  # [n, 1]
