"""What every negative sampler shares: the training positives and rejection of collisions.

A sampler draws, for each user of a batch, `n` items that are not its training positives:
`sample(users [B], n, generator) -> items [B, n]` (long, CPU). All randomness comes from the
`torch.Generator` passed in, so a trainer can checkpoint `generator.get_state()` and resume with
identical draws.

Draws follow a proposal distribution (uniform, popularity, ...); draws that hit one of the
user's positives are redrawn from the same proposal, which samples the proposal conditioned on
"not a positive". After `MAX_ROUNDS` rounds the few draws still colliding (users owning nearly
every item of the proposal's support) are drawn uniformly from the user's non-positive items;
a user with no non-positive item at all keeps a positive.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

MAX_ROUNDS = 100
"""Rejection rounds before the exact fallback for the draws still colliding."""

Redraw = Callable[[Tensor], Tensor]
"""Redraw one item for each user of `users [m]`: returns `[m]` long."""


class TrainPositives:
    """The binary training matrix, for vectorized row gathers and membership tests.

    A pair `(u, i)` is encoded as `u · I + i`; the sorted keys of all training pairs turn a
    membership test into a `searchsorted`.
    """

    def __init__(self, train: sp.spmatrix) -> None:
        matrix = sp.csr_matrix(train, dtype=np.float32, copy=True)
        matrix.eliminate_zeros()
        matrix.sum_duplicates()
        matrix.sort_indices()
        self.matrix = matrix
        self.n_users, self.n_items = matrix.shape
        self.indptr = torch.from_numpy(matrix.indptr.astype(np.int64))  # [U + 1]
        self.indices = torch.from_numpy(matrix.indices.astype(np.int64))  # [nnz]
        rows = torch.repeat_interleave(torch.arange(self.n_users), self.indptr.diff())
        self.keys = rows * self.n_items + self.indices  # [nnz], sorted

    def counts(self, users: Tensor) -> Tensor:
        """Number of training positives of each user, `[B]`."""
        return self.indptr[users + 1] - self.indptr[users]

    def gather(self, users: Tensor) -> tuple[Tensor, Tensor]:
        """All positives of `users [B]` flattened: `(row [M], item [M])`, row = position in users."""
        counts = self.counts(users)  # [B]
        row = torch.repeat_interleave(torch.arange(len(users)), counts)  # [M]
        starts = torch.cumsum(counts, 0) - counts  # [B]  first flat slot of each row
        offset = torch.arange(len(row)) - starts[row]  # [M]  position within the row
        return row, self.indices[self.indptr[users][row] + offset]

    def contains(self, users: Tensor, items: Tensor) -> Tensor:
        """`(users[b], items[b, j])` is a training pair: bool, shape of `items` (`users [B]`)."""
        if self.keys.numel() == 0:
            return torch.zeros_like(items, dtype=torch.bool)
        key = users.reshape(-1, *([1] * (items.dim() - 1))) * self.n_items + items
        slot = torch.searchsorted(self.keys, key).clamp(max=self.keys.numel() - 1)
        return self.keys[slot] == key

    def dense(self, users: Tensor) -> Tensor:
        """The training rows of `users [B]` as a dense float32 `[B, I]` (for a batch only)."""
        row, item = self.gather(users)
        out = torch.zeros(len(users), self.n_items)
        out[row, item] = 1.0
        return out


def reject_positives(
    positives: TrainPositives, users: Tensor, items: Tensor, redraw: Redraw, generator: torch.Generator
) -> Tensor:
    """Replace the draws `items [B, n]` that are positives of their row's user (see module doc).

    One membership test over the whole batch, then rounds over the colliding entries only.
    """
    flat_items = items.reshape(-1).clone()  # [B n]
    flat_users = users.repeat_interleave(items.shape[1]) if items.dim() == 2 else users
    bad = positives.contains(flat_users, flat_items).nonzero().squeeze(1)  # flat indices
    for _ in range(MAX_ROUNDS):
        if bad.numel() == 0:
            break
        redrawn = redraw(flat_users[bad])
        flat_items[bad] = redrawn
        bad = bad[positives.contains(flat_users[bad], redrawn)]
    if bad.numel():
        fill_from_complement(positives, flat_users, flat_items, bad, generator)
    return flat_items.view_as(items)


def fill_from_complement(
    positives: TrainPositives, flat_users: Tensor, flat_items: Tensor, bad: Tensor, generator: torch.Generator
) -> None:
    """Draw the entries `bad` (flat indices) uniformly from their user's non-positive items."""
    bad_users = flat_users[bad]
    for user in torch.unique(bad_users).tolist():
        where = bad[bad_users == user]
        start, end = positives.indptr[user], positives.indptr[user + 1]
        allowed = torch.ones(positives.n_items, dtype=torch.bool)
        allowed[positives.indices[start:end]] = False
        complement = allowed.nonzero().squeeze(1)
        if complement.numel():
            flat_items[where] = complement[torch.randint(len(complement), (len(where),), generator=generator)]


class NegativeSampler:
    """Base class: holds the training positives; `maybe_refresh` is a no-op unless overridden."""

    def __init__(self, train: sp.spmatrix) -> None:
        self.positives = TrainPositives(train)
        self.n_items = self.positives.n_items

    def sample(self, users: Tensor, n: int, generator: torch.Generator) -> Tensor:
        """`[len(users), n]` item indices, none a training positive of its user where possible."""
        raise NotImplementedError

    def maybe_refresh(self, epoch: int) -> bool:
        """Called by the trainer at the start of each epoch; True when the sampler recomputed."""
        return False
