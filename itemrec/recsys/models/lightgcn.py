"""LightGCN: linear propagation of ego embeddings on the normalized user-item graph.

    E⁰ ∈ R^{(U+I)×D} (learned),   E^{k+1} = Â E^k,   E = 1/(K+1) Σ_{k=0..K} E^k

with `Â = D^{-1/2} A D^{-1/2}` (see `itemrec.recsys.models.graph`). User u scores item i by `e_u · e_i`.

New users (`new_user_vectors`) are attached to the graph: their rows of `history` become edges to
the items, `Â` is recomputed on the enlarged graph (so the degrees of their items grow), their
layer-0 embedding is the mean of their history items' ego embeddings (`new_user_init="mean"`,
or 0 with `"zero"`), and one propagation with the learned user and item ego embeddings gives
their final vectors. All users of one call are attached together (from layer 2 on they see each
other's messages through shared items, an O(1/degree) effect), and one call is one propagation
over the whole graph, so pass all new users at once when they fit in memory (`[U + n + I, D]`).
The enlarged graph always uses the `"fast"` CSR backend (all backends compute the same product).
"""

from __future__ import annotations

import scipy.sparse as sp
import torch
from torch import Tensor, nn

from itemrec.recsys.models.base import ScoringModel, check_history
from itemrec.recsys.models.graph import (
    GraphPropagation,
    attach_new_users,
    binary,
    check_new_user_init,
    light_propagation,
)


class LightGCN(ScoringModel):
    """LightGCN (He et al., SIGIR 2020), `dim`-d ego embeddings, `layers` propagation steps.

    `propagation` picks the sparse backend (`"fast"`, `"csr"`, `"coo"`, `"torch_sparse"`,
    `"pyg"`; all equal up to float rounding, see `itemrec.recsys.models.graph`). The ego
    embeddings start from normal(0, `init_std` = 0.1).
    """

    learned = True

    def __init__(
        self,
        n_users: int,
        n_items: int,
        train: sp.spmatrix,
        dim: int = 64,
        layers: int = 3,
        propagation: str = "fast",
        new_user_init: str = "mean",
        init_std: float = 0.1,
    ) -> None:
        super().__init__(n_users, n_items, train)
        self.dim = dim
        self.layers = layers
        self.new_user_init = check_new_user_init(new_user_init)
        self.interactions = binary(train)  # [U, I], kept to attach new users
        self.ego = nn.Parameter(torch.randn(n_users + n_items, dim) * init_std)  # [U + I, D]
        self.propagate = GraphPropagation(self.interactions, propagation)

    def forward(self, users: Tensor | None = None, items: Tensor | None = None) -> tuple[Tensor, Tensor]:
        needed = None
        # A training batch reads only its rows: on CPU the propagation then skips work
        # (`LightPropagation`); elsewhere its products compute every row anyway, and the mask would
        # only add kernel launches to a step that waits on them.
        if users is not None and items is not None and self.ego.device.type == "cpu":
            needed = torch.zeros(self.n_users + self.n_items, dtype=torch.bool, device=self.ego.device)
            needed[users] = True
            needed[self.n_users + items.reshape(-1)] = True
        final = light_propagation(self.propagate, self.ego, self.layers, needed)  # [U + I, D]
        return final[: self.n_users], final[self.n_users :]

    def l2(self, users: Tensor, items: Tensor) -> Tensor:
        return self.ego[users].pow(2).sum() + self.ego[self.n_users + items].pow(2).sum()

    @torch.no_grad()
    def new_user_vectors(self, history: sp.spmatrix) -> Tensor:
        history = check_history(history, self.n_items)
        n = history.shape[0]
        enlarged, ego = attach_new_users(self.interactions, self.ego, history, self.new_user_init)
        final = light_propagation(enlarged, ego, self.layers)  # [U + n + I, D]
        return final[self.n_users : self.n_users + n]
