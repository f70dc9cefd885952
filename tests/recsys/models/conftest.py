"""Small random interaction matrices and dense reference implementations for the model tests."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch


def random_train(n_users: int, n_items: int, density: float, seed: int = 0) -> sp.csr_matrix:
    """Binary float32 CSR with every user and every item holding at least one interaction."""
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < density
    dense[np.arange(n_users), rng.integers(0, n_items, n_users)] = True
    dense[rng.integers(0, n_users, n_items), np.arange(n_items)] = True
    return sp.csr_matrix(dense.astype(np.float32))


def dense_normalized_adjacency(train: sp.spmatrix) -> torch.Tensor:
    """`D^{-1/2} A D^{-1/2}` of the bipartite graph, dense float64 `[U + I, U + I]`."""
    r = torch.tensor((train.toarray() != 0).astype(np.float64))
    u, i = r.shape
    a = torch.zeros(u + i, u + i, dtype=torch.float64)
    a[:u, u:] = r
    a[u:, :u] = r.T
    degree = a.sum(1)
    inv = torch.where(degree > 0, degree.clamp(min=1e-12).rsqrt(), torch.zeros_like(degree))
    return inv[:, None] * a * inv[None, :]


def dense_light_propagation(adjacency: torch.Tensor, ego: torch.Tensor, layers: int) -> torch.Tensor:
    """`1/(K+1) Σ_k Â^k E⁰` with dense matrix powers."""
    total, power = ego, ego
    for _ in range(layers):
        power = adjacency @ power
        total = total + power
    return total / (layers + 1)


@pytest.fixture
def train() -> sp.csr_matrix:
    return random_train(12, 9, 0.3, seed=1)
