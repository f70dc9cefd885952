"""Item-based k-nearest neighbours with cosine similarity.

    sim(i, j) = |U_i ∩ U_j| / sqrt(|U_i| |U_j|)      (U_i: the training users of item i)

Each item j keeps its `k` most similar other items `N_k(j)` (ties broken by the lower index;
no self-similarity), and `score(u, j) = Σ_{i ∈ H_u ∩ N_k(j)} sim(i, j)`. As vectors (`D = I`):
a user's vector is its binary history row, item j's vector the row `W[j] = sim(j, ·)` on
`N_k(j)`, 0 elsewhere, so `score = x_u · W[j]`. `W` is stored sparse (`I k` entries);
`item_vectors()` returns it dense `[I, I]`, and user vectors come in the caller's chunks.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from itemrec.recsys.models.base import ScoringModel, check_history, dense_rows
from itemrec.recsys.models.graph import binary

SIMILARITY_CHUNK = 2048
"""Items whose similarity rows are computed at once (`[chunk, I]` sparse)."""


def cosine_similarity(interactions: sp.csr_matrix, items: slice) -> sp.csr_matrix:
    """`sim(i, j)` for `i` in `items` and all `j`, self-similarity removed: CSR `[len, I]`."""
    columns = interactions.tocsc()
    norms = np.sqrt(np.diff(columns.indptr)).astype(np.float64)  # [I]
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    block = (columns[:, items].T @ columns).tocsr().astype(np.float64)  # [len, I]  co-counts
    rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
    first = items.start or 0
    block.data *= inv[rows + first] * inv[block.indices]
    block.data[block.indices == rows + first] = 0.0
    block.eliminate_zeros()
    return block


def top_k_rows(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the `k` largest entries of each row (ties: lower column first)."""
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    order = np.lexsort((matrix.indices, -matrix.data, rows))  # by row, value desc, column asc
    start = matrix.indptr[rows[order]]
    keep = order[np.arange(order.size) - start < k]
    kept = sp.csr_matrix((matrix.data[keep], (rows[keep], matrix.indices[keep])), shape=matrix.shape)
    kept.sort_indices()
    return kept


def neighbour_weights(interactions: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """`W [I, I]`: row j holds `sim(j, i)` for the `k` nearest neighbours i of item j."""
    n_items = interactions.shape[1]
    blocks = [
        top_k_rows(cosine_similarity(interactions, slice(start, min(start + SIMILARITY_CHUNK, n_items))), k)
        for start in range(0, n_items, SIMILARITY_CHUNK)
    ]
    return sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, 0))


class ItemKNN(ScoringModel):
    """Cosine ItemKNN keeping `k` neighbours per item (`k=100`)."""

    learned = False

    def __init__(self, n_users: int, n_items: int, train: sp.spmatrix, k: int = 100) -> None:
        super().__init__(n_users, n_items, train)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k
        self.interactions = binary(train)  # [U, I]
        weights = neighbour_weights(self.interactions, k).tocoo()
        self.register_buffer("weight_index", torch.from_numpy(np.vstack([weights.row, weights.col]).astype(np.int64)))
        self.register_buffer("weight_values", torch.from_numpy(weights.data.astype(np.float32)))

    def weights(self) -> Tensor:
        """`W [I, I]` as a torch sparse COO tensor (row j: neighbours of item j)."""
        size = (self.n_items, self.n_items)
        return torch.sparse_coo_tensor(
            self.weight_index, self.weight_values, size, check_invariants=False
        ).coalesce()

    @torch.no_grad()
    def user_vectors(self, users: Tensor) -> Tensor:
        return dense_rows(self.interactions[users.cpu().numpy()], self.device)  # [n, I]

    @torch.no_grad()
    def item_vectors(self) -> Tensor:
        return self.weights().to_dense()  # [I, I]

    @torch.no_grad()
    def new_user_vectors(self, history: sp.spmatrix) -> Tensor:
        return dense_rows(check_history(history, self.n_items), self.device)  # [n, I]
