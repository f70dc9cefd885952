"""SL@K's per-user top-K score thresholds `β_u^K`, estimated from the current model.

SL@K (`itemrec.ranking.sl_at_k`) weights each positive's softmax term by
`sigmoid((s_ui - β_u^K) / τ_w)`, where `β_u^K` is the score of the user's K-th ranked item. The
threshold is not learned: following the authors' protocol it is estimated by sorting, as the K-th
largest score among the user's training positives and N uniformly sampled negatives (N = the
number of training negatives, 1,000 in their runs), with no rescaling of ranks to the catalogue
(a sample of the catalogue puts fewer items above any score, so the estimate is lower than the
exact threshold), no gradient, and refreshed every T_β epochs while the model is held fixed.

Here the estimate is refreshed at the start of epochs 1, 1 + T_β, 1 + 2 T_β, ... (`due`), for
every training user, with all of its training positives (at most `max_positives`, a random
sample, if set), in chunks of users (no users × items matrix). The authors recompute it for each batch's users during epochs T_β, 2 T_β, ..., from a
table that keeps at most the 90th percentile of users' positive counts, and start from β = 0, so
their first T_β epochs train with a constant threshold where these start from the initial
model's. All draws come from the run's seeded generator; `state_dict` goes into checkpoints so
that a resumed run continues with the same thresholds.
"""

from __future__ import annotations

from collections.abc import Callable

import scipy.sparse as sp
import torch
from torch import Tensor

from itemrec.ranking import topk_quantile
from itemrec.recsys.sampling.base import TrainPositives, reject_positives
from itemrec.recsys.sampling.rows import sample_positives

DEFAULT_MAX_ELEMENTS = 2**24
"""Largest `[users, candidates, dim]` block gathered at once while estimating."""


class UserQuantiles:
    """`beta [n_users]` (float32, CPU): each user's estimated top-K score threshold.

    `train`: the training matrix (or its `TrainPositives`); `k`: K; `negatives`: uniform negatives
    per user in each estimate; `refresh_every`: T_β, in epochs; `users`: the users to estimate
    (default: those with a training positive; the others keep 0, the initial value);
    `max_positives`: at most this many of a user's positives in each estimate, drawn at random
    (default all). The authors keep at most the 90th percentile of users' positive counts: with
    all of them, a user with hundreds of positives has a higher threshold than their estimate.
    """

    def __init__(
        self,
        train: sp.spmatrix | TrainPositives,
        k: int,
        negatives: int,
        refresh_every: int = 1,
        users: Tensor | None = None,
        max_elements: int = DEFAULT_MAX_ELEMENTS,
        max_positives: int | None = None,
    ) -> None:
        assert k >= 1 and negatives >= 1 and refresh_every >= 1, (k, negatives, refresh_every)
        assert max_positives is None or max_positives >= 1, max_positives
        self.positives = train if isinstance(train, TrainPositives) else TrainPositives(train)
        self.k, self.negatives, self.refresh_every = k, negatives, refresh_every
        self.max_positives = max_positives
        counts = self.positives.indptr.diff()
        self.users = counts.nonzero().squeeze(1) if users is None else torch.as_tensor(users, dtype=torch.long)
        self.max_elements = max_elements
        self.beta = torch.zeros(self.positives.n_users)  # [U]

    def due(self, epoch: int) -> bool:
        """Whether epoch `epoch` (from 1) starts with a refresh: epochs 1, 1 + T_β, 1 + 2 T_β, ..."""
        return (epoch - 1) % self.refresh_every == 0

    def maybe_refresh(self, epoch: int, vectors: Callable[[], tuple[Tensor, Tensor]], generator: torch.Generator) -> bool:
        """Re-estimate every user's β when `due(epoch)`; `vectors()` gives the current model's user
        `[U, D]` and item `[I, D]` vectors (normalised for cosine scores). True when it refreshed."""
        if not self.due(epoch):
            return False
        with torch.no_grad():
            user_vectors, item_vectors = vectors()
            self.beta[self.users] = self.estimate(user_vectors, item_vectors, self.users, generator)
        return True

    @torch.no_grad()
    def estimate(self, user_vectors: Tensor, item_vectors: Tensor, users: Tensor, generator: torch.Generator) -> Tensor:
        """`[len(users)]` K-th largest score of each user over its training positives plus
        `negatives` uniform non-positive items (CPU, float32), in chunks of users."""
        users = torch.as_tensor(users, dtype=torch.long)
        counts = self.positives.counts(users)
        if self.max_positives is not None:
            counts = counts.clamp(max=self.max_positives)
        width = int(counts.max()) + self.negatives if len(users) else 1
        chunk = max(1, self.max_elements // (width * user_vectors.shape[1]))
        out = [self._chunk(user_vectors, item_vectors, part, generator) for part in users.split(chunk)]
        return torch.cat(out) if out else torch.zeros(0)

    def _chunk(self, user_vectors: Tensor, item_vectors: Tensor, users: Tensor, generator: torch.Generator) -> Tensor:
        if self.max_positives is None:
            row, item = self.positives.gather(users)  # [M], [M]
            counts = self.positives.counts(users)  # [B]
            starts = torch.cumsum(counts, 0) - counts
            slot = torch.arange(len(row)) - starts[row]  # position of each positive within its row
            width = int(counts.max()) if len(users) else 0
            pos_items = torch.zeros(len(users), width, dtype=torch.long)
            pos_items[row, slot] = item
            pos_mask = torch.arange(width) < counts[:, None]  # [B, P]
        else:  # a uniform sample without replacement of at most max_positives per user
            width = min(self.max_positives, int(self.positives.counts(users).max()) if len(users) else 0)
            pos_items, pos_mask = sample_positives(self.positives, users, width, generator)  # [B, P]
        draws = torch.randint(self.positives.n_items, (len(users), self.negatives), generator=generator)
        negatives = reject_positives(
            self.positives, users, draws,
            lambda u: torch.randint(self.positives.n_items, (len(u),), generator=generator), generator,
        )  # [B, N]
        candidates = torch.cat([pos_items, negatives], dim=1)  # [B, P + N]
        mask = torch.cat([pos_mask, torch.ones(negatives.shape, dtype=torch.bool)], dim=1)
        device = user_vectors.device
        rows = item_vectors[candidates.to(device)]  # [B, P + N, D]
        scores = torch.einsum("bd,bcd->bc", user_vectors[users.to(device)], rows)  # [B, P + N]
        return topk_quantile(scores, self.k, mask.to(device)).float().cpu()

    def state_dict(self) -> dict[str, Tensor]:
        return {"beta": self.beta.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.beta.copy_(state["beta"])
