"""Small interaction matrices for the sampler tests."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def random_train(n_users: int, n_items: int, density: float, seed: int = 0) -> sp.csr_matrix:
    """Binary float32 CSR; every user and every item has at least one interaction."""
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < density
    dense[np.arange(n_users), rng.integers(0, n_items, n_users)] = True
    dense[rng.integers(0, n_users, n_items), np.arange(n_items)] = True
    return sp.csr_matrix(dense.astype(np.float32))


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def is_positive(train: sp.csr_matrix, users: torch.Tensor, items: torch.Tensor) -> np.ndarray:
    """Reference membership test, `[B, n]` bool."""
    dense = train.toarray() > 0
    return dense[users.numpy()[:, None], items.numpy()]
