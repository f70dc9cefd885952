"""EASE: a shallow linear item-item autoencoder with a closed-form solution (Steck, WWW 2019).

    P = (XᵀX + λI)^{-1},   B = I - P · diag(1 / diag(P))   (so B_ij = -P_ij / P_jj, B_jj = 0)

and `score(u, j) = Σ_i x_ui B_ij`. As vectors (`D = I`): a user's vector is its binary history
row, item j's vector the column `B[:, j]`, so `item_vectors() = Bᵀ [I, I]` (dense; EASE needs
`I²` memory anyway).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import torch
from torch import Tensor

from itemrec.experiment.registry import POSITIVE, Rule
from itemrec.recsys.models.base import ScoringModel, check_history, dense_rows
from itemrec.recsys.models.graph import binary


def ease_weights(interactions: sp.csr_matrix, lam: float) -> np.ndarray:
    """`B [I, I]` (float64) from the binary `X [U, I]` and the L2 weight `λ`."""
    gram = (interactions.T @ interactions).toarray().astype(np.float64)  # [I, I]
    gram[np.diag_indices_from(gram)] += lam
    inverse = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)  # P
    weights = -inverse / np.diag(inverse)[None, :]
    np.fill_diagonal(weights, 0.0)
    return weights


class EASE(ScoringModel):
    """EASE with L2 weight `lam` (500.0)."""

    learned = False
    param_rules: ClassVar[dict[str, Rule]] = {"lam": POSITIVE}  # the ridge penalty, not a mixing weight

    def __init__(self, n_users: int, n_items: int, train: sp.spmatrix, lam: float = 500.0) -> None:
        super().__init__(n_users, n_items, train)
        if lam <= 0:
            raise ValueError(f"lam must be > 0, got {lam}")
        self.lam = lam
        self.interactions = binary(train)  # [U, I]
        weights = ease_weights(self.interactions, lam)
        self.register_buffer("item_weights", torch.from_numpy(np.ascontiguousarray(weights.T, dtype=np.float32)))

    @torch.no_grad()
    def user_vectors(self, users: Tensor) -> Tensor:
        return dense_rows(self.interactions[users.cpu().numpy()], self.device)  # [n, I]

    @torch.no_grad()
    def item_vectors(self) -> Tensor:
        return self.item_weights  # [I, I]  Bᵀ

    @torch.no_grad()
    def new_user_vectors(self, history: sp.spmatrix) -> Tensor:
        return dense_rows(check_history(history, self.n_items), self.device)  # [n, I]
