"""NGCF: neural graph collaborative filtering (Wang et al., SIGIR 2019).

One layer, on the normalized adjacency `Â` (see `itemrec.recsys.models.graph`):

    E^{k+1} = LeakyReLU_{0.2}( (Â + I) E^k W1 + b1  +  (Â E^k ⊙ E^k) W2 + b2 )

followed by message dropout (rate `dropout`, training only). The final representation
concatenates the ego embeddings and each layer's output L2-normalized per node (as in the
authors' code): `E = [E⁰ ‖ Ê¹ ‖ … ‖ Ê^K]`, `[U + I, D (K+1)]`.

New users are attached to the graph as in LightGCN (`itemrec.recsys.models.lightgcn`): edges to their
history items, `Â` recomputed on the enlarged graph, layer-0 embedding the mean of their history
items' ego embeddings (`new_user_init="mean"`) or 0, one propagation with the learned weights.
"""

from __future__ import annotations

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from itemrec.recsys.models.base import ScoringModel, check_history
from itemrec.recsys.models.graph import (
    GraphPropagation,
    attach_new_users,
    binary,
    check_new_user_init,
)


class NGCFLayer(nn.Module):
    """`x -> LeakyReLU((Â + I) x W1 + b1 + (Â x ⊙ x) W2 + b2)`, `[N, D_in] -> [N, D_out]`."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.sum_weight = nn.Linear(dim_in, dim_out)  # W1, b1
        self.product_weight = nn.Linear(dim_in, dim_out)  # W2, b2
        nn.init.xavier_uniform_(self.sum_weight.weight)
        nn.init.xavier_uniform_(self.product_weight.weight)
        nn.init.zeros_(self.sum_weight.bias)
        nn.init.zeros_(self.product_weight.bias)

    def forward(self, x: Tensor, propagate: GraphPropagation) -> Tensor:
        neighbours = propagate(x)  # [N, D_in]  Â x
        mixed = self.sum_weight(x + neighbours) + self.product_weight(neighbours * x)
        return F.leaky_relu(mixed, negative_slope=0.2)


class NGCF(ScoringModel):
    """NGCF with `dim`-d ego embeddings and `layers` layers of width `dim`; output `dim·(layers+1)`."""

    learned = True

    def __init__(
        self,
        n_users: int,
        n_items: int,
        train: sp.spmatrix,
        dim: int = 64,
        layers: int = 3,
        dropout: float = 0.1,
        propagation: str = "fast",
        new_user_init: str = "mean",
    ) -> None:
        super().__init__(n_users, n_items, train)
        self.dim = dim
        self.dropout = dropout
        self.new_user_init = check_new_user_init(new_user_init)
        self.interactions = binary(train)  # [U, I], kept to attach new users
        self.ego = nn.Parameter(torch.randn(n_users + n_items, dim) * 0.1)  # [U + I, D]
        self.propagate = GraphPropagation(self.interactions, propagation)
        self.layers = nn.ModuleList(NGCFLayer(dim, dim) for _ in range(layers))

    def embed(self, propagate: GraphPropagation, ego: Tensor) -> Tensor:
        """`[E⁰ ‖ Ê¹ ‖ … ‖ Ê^K]` of all nodes of the graph `propagate`, `[N, D (K+1)]`."""
        outputs = [ego]
        x = ego
        for layer in self.layers:
            x = F.dropout(layer(x, propagate), p=self.dropout, training=self.training)  # [N, D]
            outputs.append(F.normalize(x, p=2, dim=1))
        return torch.cat(outputs, dim=1)

    def forward(self, users: Tensor | None = None, items: Tensor | None = None) -> tuple[Tensor, Tensor]:
        final = self.embed(self.propagate, self.ego)  # [U + I, D (K+1)]
        return final[: self.n_users], final[self.n_users :]

    def l2(self, users: Tensor, items: Tensor) -> Tensor:
        return self.ego[users].pow(2).sum() + self.ego[self.n_users + items].pow(2).sum()

    @torch.no_grad()
    def new_user_vectors(self, history: sp.spmatrix) -> Tensor:
        history = check_history(history, self.n_items)
        n = history.shape[0]
        enlarged, ego = attach_new_users(self.interactions, self.ego, history, self.new_user_init)
        training = self.training
        self.training = False  # no message dropout when embedding
        try:
            final = self.embed(enlarged, ego)  # [U + n + I, D (K+1)]
        finally:
            self.training = training
        return final[self.n_users : self.n_users + n]
