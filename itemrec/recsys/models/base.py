"""The interface every recommender implements, and the helpers they share.

A model scores user u and item i by a dot product of vectors: `score = user_vectors(u) @
item_vectors().T`. Learned models (`learned = True`: MF, LightGCN, NGCF) are trained through
`forward()` (final user and item representations, with autograd) and `l2()` (the squared layer-0
embeddings of a batch). Baselines (`learned = False`: Pop, ItemKNN, EASE) are fit in `__init__`.

Every model also embeds users never seen in training from their interactions, without
retraining: `new_user_vectors(history)`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn


class ScoringModel(nn.Module):
    """Base class: `n_users`, `n_items`, the scoring interface, and an eval-mode cache.

    Learned models implement `forward()`; `user_vectors` / `item_vectors` then score known users
    from one `forward()` that is cached while the module is in eval mode (dropped on `train()` and
    on a device or dtype change). Baselines override the scoring methods instead.
    """

    learned: ClassVar[bool] = True

    def __init__(self, n_users: int, n_items: int, train: sp.spmatrix) -> None:
        super().__init__()
        if train.shape != (n_users, n_items):
            raise ValueError(f"train has shape {train.shape}, expected ({n_users}, {n_items})")
        self.n_users = n_users
        self.n_items = n_items
        self._cache: tuple[Tensor, Tensor] | None = None

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters (or buffers, for baselines)."""
        for tensor in (*self.parameters(), *self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def forward(self, users: Tensor | None = None, items: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Final user `[U, D]` and item `[I, D]` representations, with autograd.

        With `users` and `items` (any shape: the indices a training batch reads), only those rows
        need be right: a model may leave the others zero to save work (LightGCN does)."""
        raise NotImplementedError(f"{type(self).__name__} is not trained: it has no forward()")

    def l2(self, users: Tensor, items: Tensor) -> Tensor:
        """`Σ ||e_u⁰||² + Σ ||e_i⁰||²` over the given user and item indices (layer-0 embeddings)."""
        raise NotImplementedError(f"{type(self).__name__} is not trained: it has no l2()")

    def representations(self) -> tuple[Tensor, Tensor]:
        """`forward()` without autograd; computed once and reused while in eval mode."""
        if self._cache is not None and not self.training:
            return self._cache
        with torch.no_grad():
            result = self.forward()
        if not self.training:
            self._cache = result
        return result

    @torch.no_grad()
    def user_vectors(self, users: Tensor) -> Tensor:
        """Vectors `[n, D]` of known users (training indices)."""
        return self.representations()[0][users.to(self.device)]

    @torch.no_grad()
    def item_vectors(self) -> Tensor:
        """Vectors `[I, D]` of all items."""
        return self.representations()[1]

    @torch.no_grad()
    def new_user_vectors(self, history: sp.spmatrix) -> Tensor:
        """Vectors `[n, D]` of users unseen in training, from their interactions `history [n, I]`."""
        raise NotImplementedError

    def train(self, mode: bool = True) -> ScoringModel:
        self._cache = None
        return super().train(mode)

    def _apply(self, fn, recurse: bool = True):  # type: ignore[no-untyped-def]
        self._cache = None
        return super()._apply(fn, recurse)


def check_history(history: sp.spmatrix, n_items: int) -> sp.csr_matrix:
    """`history` as a binary float32 CSR `[n, n_items]`, or a ValueError naming the mismatch."""
    if history.ndim != 2 or history.shape[1] != n_items:
        raise ValueError(f"history must be [n, {n_items}] (one column per item), got {history.shape}")
    matrix = sp.csr_matrix(history, dtype=np.float32, copy=True)
    matrix.eliminate_zeros()
    matrix.data[:] = 1.0
    return matrix


def dense_rows(matrix: sp.spmatrix, device: torch.device) -> Tensor:
    """The rows of a (small, chunk-sized) sparse matrix as a dense float32 tensor `[n, I]`."""
    return torch.from_numpy(np.asarray(matrix.toarray(), dtype=np.float32)).to(device)

