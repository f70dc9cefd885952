"""Training rows for the ranking losses: per user, a sample of its positives plus negatives.

A batch is a set of users; row b holds candidate items of `users[b]` and their relevance, the
`[Q, N]` layout of `itemrec.ranking` (`Q` = users, `N` = candidates). With `sampling.unit:
interaction` a batch is a set of (user, positive) pairs instead (`training_pairs`), each its own
row of that positive plus sampled negatives (`pair_rows`): the benchmark's batches, in which a
user counts once per interaction.
"""

from __future__ import annotations

import scipy.sparse as sp
import torch
from torch import Tensor

from itemrec.recsys.sampling.base import NegativeSampler, TrainPositives


def sample_positives(
    positives: TrainPositives, users: Tensor, count: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Up to `count` training positives per user, without replacement, uniformly at random.

    Every positive of the batch gets a uniform random key; sorting by (row, key) and keeping
    the first `count` of each row is a uniform sample without replacement. Returns
    `items [B, count]` (long; unused slots 0) and `mask [B, count]` (True for a real positive).
    """
    row, item = positives.gather(users)  # [M], [M]
    keys = torch.rand(len(row), generator=generator, dtype=torch.float64)
    order = torch.argsort(row.double() + keys)  # by row, then random key (keys < 1)
    row, item = row[order], item[order]
    counts = positives.counts(users)  # [B]
    starts = torch.cumsum(counts, 0) - counts  # [B]
    slot = torch.arange(len(row)) - starts[row]  # [M]  rank of the positive within its row
    keep = slot < count
    items = torch.zeros(len(users), count, dtype=torch.long)
    items[row[keep], slot[keep]] = item[keep]
    mask = torch.arange(count) < counts.clamp(max=count)[:, None]  # [B, count]
    return items, mask


def training_rows(
    users: Tensor,
    train: sp.spmatrix | TrainPositives,
    positives_per_row: int,
    negatives_per_row: int,
    sampler: NegativeSampler,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Rows of up to `P` sampled positives then `N` sampled negatives per user.

    Returns `items [B, W + N]` (long) and `relevance [B, W + N]` (float32, 1 for the positives),
    `W = min(P, the batch's largest count of positives)`. A user with `d < W` positives has them
    in its first `d` slots and extra negatives (from a second sampler call, relevance 0) in
    slots `d..W-1`, so every row has the same width; the last `N` slots are always the
    sampler's N negatives. Rows are no wider than the batch needs, so that a light user's
    positives meet about N negatives rather than N + P (a softmax term over twice the negatives is
    log 2 larger). `train` may be the CSR or a prebuilt `TrainPositives` (faster for repeated
    calls). CPU tensors.
    """
    positives = train if isinstance(train, TrainPositives) else TrainPositives(train)
    users = users.long().cpu()
    largest = int(positives.counts(users).max()) if len(users) else 1
    width = max(1, min(positives_per_row, largest))
    pos_items, pos_mask = sample_positives(positives, users, width, generator)  # [B, W]
    negatives = sampler.sample(users, negatives_per_row, generator)  # [B, N]
    if not bool(pos_mask.all()):
        fill = sampler.sample(users, width, generator)  # [B, W]
        pos_items = torch.where(pos_mask, pos_items, fill)
    items = torch.cat([pos_items, negatives], dim=1)  # [B, W + N]
    relevance = torch.cat([pos_mask.float(), negatives.new_zeros(negatives.shape, dtype=torch.float32)], 1)
    return items, relevance


def all_items_rows(users: Tensor, train: sp.spmatrix | TrainPositives) -> tuple[Tensor, Tensor]:
    """Every item as a candidate: `items [B, I]` (an expanded `arange`, no copy) and
    `relevance [B, I]`, the users' dense training rows (for small catalogues, one batch at a time).
    """
    positives = train if isinstance(train, TrainPositives) else TrainPositives(train)
    users = users.long().cpu()
    items = torch.arange(positives.n_items).expand(len(users), positives.n_items)
    return items, positives.dense(users)


def training_pairs(train: sp.spmatrix | TrainPositives, users: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Every training interaction of `users` (default: all users) as `(user [M], item [M])` pairs,
    by user then item: what an epoch of `sampling.unit: interaction` passes over."""
    positives = train if isinstance(train, TrainPositives) else TrainPositives(train)
    users = torch.arange(positives.n_users) if users is None else users.long().cpu()
    row, item = positives.gather(users)  # [M], [M]
    return users[row], item


def pair_rows(
    users: Tensor, items: Tensor, negatives_per_row: int, sampler: NegativeSampler, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """One row per (user, positive) pair: `items [B, 1 + N]` (the positive, then the sampler's N
    negatives for `users[b]`) and `relevance [B, 1 + N]` (float32, 1 in the first column). CPU tensors."""
    users, items = users.long().cpu(), items.long().cpu()
    negatives = sampler.sample(users, negatives_per_row, generator)  # [B, N]
    rows = torch.cat([items[:, None], negatives], dim=1)  # [B, 1 + N]
    relevance = torch.zeros(rows.shape, dtype=torch.float32)
    relevance[:, 0] = 1.0
    return rows, relevance
