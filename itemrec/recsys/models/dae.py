"""DAE: a user is encoded from their item history; a denoising autoencoder over the interaction rows.

User u has no parameters of its own. With `x_u ∈ {0, 1}^I` the user's training items, a dropout
mask `m_u` (each interaction kept with probability `1 - dropout`, training only) and `W ∈ R^{I×D}`
the input item embeddings,

    h⁰_u = (m_u ⊙ x_u) W / ||m_u ⊙ x_u||₂          (an L2-normalized bag of the kept items)
    h^k_u = tanh(h^{k-1}_u A_k + b_k),  k = 1..layers  (A_k ∈ R^{D×D}; `layers: 0` keeps the bag)
    score(u, i) = h^K_u · q_i                         (q_i ∈ R^D: the output item embeddings)

Trained against the user's own training items (the dropped ones included), the model learns to
recover a history from part of it, as Mult-DAE (Liang et al., WWW 2018) does with a multinomial
likelihood; here any ranking loss of `itemrec.ranking` trains it on the candidate rows.

New users need no fitting: `new_user_vectors(history)` is the same encoder (no dropout) applied
to their rows, so a user seen in training and a new user with the same history get the same vector.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from itemrec.recsys.models.base import ScoringModel, check_history
from itemrec.recsys.models.graph import binary

ENCODE_CHUNK = 4096
"""New users encoded at once."""


class DAE(ScoringModel):
    """Denoising autoencoder over the history (see the module docstring): `dim`-d item embeddings
    in and out, `layers` tanh layers, interaction `dropout` during training."""

    learned = True

    def __init__(
        self,
        n_users: int,
        n_items: int,
        train: sp.spmatrix,
        dim: int = 64,
        layers: int = 0,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(n_users, n_items, train)
        self.dim = dim
        self.layers = layers
        self.dropout = dropout
        history = binary(train).tocoo()
        indices = torch.from_numpy(np.vstack([history.row, history.col]).astype(np.int64))  # [2, nnz]
        self.register_buffer("history_indices", indices, persistent=False)
        self.input_embedding = nn.Parameter(torch.randn(n_items, dim) * 0.1)  # [I, D]  W
        self.item_embedding = nn.Parameter(torch.randn(n_items, dim) * 0.1)  # [I, D]  q
        self.hidden = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))

    def encode(self, rows: Tensor, cols: Tensor, n: int) -> Tensor:
        """User vectors `[n, D]` of the binary rows given by their nonzeros `(rows, cols)` `[nnz]`."""
        counts = torch.zeros(n, device=rows.device).index_add_(0, rows, torch.ones_like(rows, dtype=torch.float32))
        weights = counts.clamp(min=1).rsqrt()[rows]  # [nnz]  1 / ||x_u||₂
        bag = torch.sparse_coo_tensor(torch.stack([rows, cols]), weights, (n, self.n_items), is_coalesced=True, check_invariants=False)
        hidden = torch.sparse.mm(bag, self.input_embedding)  # [n, D]
        for layer in self.hidden:
            hidden = torch.tanh(layer(hidden))
        return hidden

    def forward(self, users: Tensor | None = None, items: Tensor | None = None) -> tuple[Tensor, Tensor]:
        rows, cols = self.history_indices
        if self.training and self.dropout > 0:
            keep = torch.rand(rows.shape[0], device=rows.device) >= self.dropout  # [nnz]
            rows, cols = rows[keep], cols[keep]
        return self.encode(rows, cols, self.n_users), self.item_embedding

    def l2(self, users: Tensor, items: Tensor) -> Tensor:
        """`Σ_i ||W_i||² + ||q_i||²` over the batch's items (users have no parameters)."""
        return self.input_embedding[items].pow(2).sum() + self.item_embedding[items].pow(2).sum()

    @torch.no_grad()
    def new_user_vectors(self, history: sp.spmatrix) -> Tensor:
        history = check_history(history, self.n_items)
        chunks = []
        for start in range(0, history.shape[0], ENCODE_CHUNK):
            part = binary(history[start : start + ENCODE_CHUNK]).tocoo()
            rows = torch.from_numpy(part.row.astype(np.int64)).to(self.device)
            cols = torch.from_numpy(part.col.astype(np.int64)).to(self.device)
            chunks.append(self.encode(rows, cols, part.shape[0]))
        return torch.cat(chunks) if chunks else self.item_embedding.new_zeros(0, self.dim)
