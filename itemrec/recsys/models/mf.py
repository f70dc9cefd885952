"""Matrix factorization: one learned vector per user and per item, `score = p_u · q_i`.

New users are folded in: a fresh vector per user, the item vectors frozen, minimizing the full
softmax loss of the user's history plus an L2 term,

    L(p) = -1/|H| Σ_{i∈H} log softmax(Q p)_i + λ ||p||²,

with `fold_in_steps` Adam steps (learning rate `fold_in_lr`) from `p⁰ = mean of the history
items' vectors`. The loss is summed over users, so every user's fold-in is independent of the
others in the call (chunks give the same vectors). Deterministic: no sampling.
"""

from __future__ import annotations

import scipy.sparse as sp
import torch
from torch import Tensor, nn

from itemrec.recsys.models.base import ScoringModel, check_history, dense_rows

FOLD_IN_CHUNK = 1024
"""Users folded in at once (the softmax is `[chunk, I]`)."""


class MF(ScoringModel):
    """Matrix factorization, `dim`-d embeddings initialized from normal(0, `init_std` = 0.1)."""

    learned = True

    def __init__(
        self,
        n_users: int,
        n_items: int,
        train: sp.spmatrix,
        dim: int = 64,
        fold_in_steps: int = 50,
        fold_in_lr: float = 0.1,
        fold_in_l2: float = 1e-3,
        init_std: float = 0.1,
    ) -> None:
        super().__init__(n_users, n_items, train)
        self.dim = dim
        self.fold_in_steps = fold_in_steps
        self.fold_in_lr = fold_in_lr
        self.fold_in_l2 = fold_in_l2
        self.user_embedding = nn.Parameter(torch.randn(n_users, dim) * init_std)  # [U, D]
        self.item_embedding = nn.Parameter(torch.randn(n_items, dim) * init_std)  # [I, D]

    def forward(self, users: Tensor | None = None, items: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.user_embedding, self.item_embedding

    def l2(self, users: Tensor, items: Tensor) -> Tensor:
        return self.user_embedding[users].pow(2).sum() + self.item_embedding[items].pow(2).sum()

    @torch.no_grad()
    def new_user_vectors(self, history: sp.spmatrix) -> Tensor:
        history = check_history(history, self.n_items)
        items = self.item_embedding.detach()  # [I, D]
        chunks = [
            self.fold_in(dense_rows(history[start : start + FOLD_IN_CHUNK], self.device), items)
            for start in range(0, history.shape[0], FOLD_IN_CHUNK)
        ]
        return torch.cat(chunks) if chunks else items.new_zeros(0, self.dim)

    def fold_in_loss(self, users: Tensor, targets: Tensor, items: Tensor) -> Tensor:
        """`Σ_u L(p_u)` (see the module docstring), users `[n, D]`, targets `[n, I]` (0/1)."""
        counts = targets.sum(1).clamp(min=1)  # [n]
        log_probs = torch.log_softmax(users @ items.T, dim=1)  # [n, I]
        nll = -(log_probs * targets).sum(1) / counts  # [n]
        return nll.sum() + self.fold_in_l2 * users.pow(2).sum()

    def fold_in(self, targets: Tensor, items: Tensor) -> Tensor:
        """Fold-in vectors `[n, D]` for the history rows `targets [n, I]`, item vectors frozen."""
        counts = targets.sum(1, keepdim=True).clamp(min=1)
        users = nn.Parameter(targets @ items / counts)  # [n, D]  start: mean of history items
        optimizer = torch.optim.Adam([users], lr=self.fold_in_lr)
        with torch.enable_grad():
            for _ in range(self.fold_in_steps):
                optimizer.zero_grad()
                self.fold_in_loss(users, targets, items).backward()
                optimizer.step()
        empty = targets.sum(1, keepdim=True) == 0
        return users.detach().masked_fill(empty, 0.0)
