"""Batch samplers for metric learning: m-per-class and hierarchical (class within super-class).

They follow pytorch-metric-learning's `MPerClassSampler` and `HierarchicalSampler` in what a
batch holds, but draw from their own `torch.Generator`, so the sampler's state is saved in a
checkpoint and a resumed run draws the same batches. Each yields lists of dataset indices
(`DataLoader(batch_sampler=...)`); under torch.distributed every rank draws the same global
batches and keeps its share (`rank::world_size`).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import Sampler

from itemrec.experiment.errors import UserError


class _BatchSampler(Sampler[list[int]]):
    def __init__(
        self, batch_size: int, steps: int, generator: torch.Generator, rank: int = 0, world_size: int = 1
    ) -> None:
        self.batch_size, self.steps, self.generator = batch_size, steps, generator
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        return self.steps

    def global_batch(self) -> list[int]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[list[int]]:
        batches = [self.global_batch() for _ in range(self.steps)]  # drawn up front: state = epoch start
        for batch in batches:
            yield batch[self.rank :: self.world_size]

    def _pick(self, n: int, k: int) -> Tensor:
        return torch.randperm(n, generator=self.generator)[:k]


class RandomBatchSampler(_BatchSampler):
    """Uniform batches without replacement within a batch."""

    def __init__(self, n: int, batch_size: int, steps: int, generator: torch.Generator, **kw) -> None:
        super().__init__(batch_size, steps, generator, **kw)
        self.n = n

    def global_batch(self) -> list[int]:
        return self._pick(self.n, self.batch_size).tolist()


def class_members(labels: Tensor, m: int, small_classes: str) -> dict[int, Tensor]:
    """Indices of each class with at least `m` images; smaller classes are an error or dropped."""
    members = {int(c): torch.nonzero(labels == c).flatten() for c in torch.unique(labels)}
    small = {c: len(idx) for c, idx in members.items() if len(idx) < m}
    if small:
        listed = ", ".join(f"{c} ({n})" for c, n in list(small.items())[:5])
        more = f" and {len(small) - 5} more" if len(small) > 5 else ""
        if small_classes == "error":
            raise UserError(
                f"sampler.m: {len(small)} class(es) have fewer than m={m} images: {listed}{more} "
                "(lower sampler.m or set sampler.small_classes=drop)"
            )
        print(f"warning: sampler: dropped {len(small)} class(es) with fewer than m={m} images: {listed}{more}")
    return {c: idx for c, idx in members.items() if c not in small}


class MPerClassSampler(_BatchSampler):
    """Each batch: `batch_size // m` distinct classes, `m` distinct images of each."""

    def __init__(
        self, labels: Tensor, batch_size: int, m: int, steps: int, generator: torch.Generator,
        small_classes: str = "error", **kw,
    ) -> None:
        super().__init__(batch_size, steps, generator, **kw)
        self.m = m
        self.members = class_members(labels, m, small_classes)
        self.classes = sorted(self.members)
        self.classes_per_batch = batch_size // m
        if len(self.classes) < self.classes_per_batch:
            raise UserError(
                f"sampler: a batch of {batch_size} with m={m} needs {self.classes_per_batch} classes, "
                f"only {len(self.classes)} have at least m images (lower train.batch_size or raise sampler.m)"
            )

    def global_batch(self) -> list[int]:
        batch: list[int] = []
        for i in self._pick(len(self.classes), self.classes_per_batch).tolist():
            idx = self.members[self.classes[i]]
            batch += idx[self._pick(len(idx), self.m)].tolist()
        return batch


class HierarchicalSampler(_BatchSampler):
    """Each batch: fine classes (m images each) drawn from `coarse_per_batch` coarse classes.

    The `batch_size // m` fine classes are spread evenly over the chosen coarse classes; when
    those hold too few fine classes the rest come from other coarse classes.
    """

    def __init__(
        self, labels: Tensor, batch_size: int, m: int, coarse_per_batch: int, steps: int,
        generator: torch.Generator, small_classes: str = "error", **kw,
    ) -> None:
        super().__init__(batch_size, steps, generator, **kw)
        if labels.dim() != 2 or labels.shape[1] < 2:
            raise UserError("sampler.name: hierarchical needs labels with a coarse level (2+ label columns)")
        self.m, self.coarse_per_batch = m, coarse_per_batch
        self.members = class_members(labels[:, 0], m, small_classes)
        coarse_of = {int(f): int(c) for f, c in labels[:, :2].tolist()}
        self.children: dict[int, list[int]] = {}
        for fine in sorted(self.members):
            self.children.setdefault(coarse_of[fine], []).append(fine)
        self.coarse = sorted(self.children)
        self.fine_per_batch = batch_size // m
        if len(self.members) < self.fine_per_batch:
            raise UserError(
                f"sampler: a batch of {batch_size} with m={m} needs {self.fine_per_batch} classes, "
                f"only {len(self.members)} have at least m images"
            )

    def global_batch(self) -> list[int]:
        order = [self.coarse[i] for i in self._pick(len(self.coarse), len(self.coarse)).tolist()]
        chosen, rest = order[: self.coarse_per_batch], order[self.coarse_per_batch :]
        pools = [[self.children[c][i] for i in self._pick(len(self.children[c]), len(self.children[c])).tolist()] for c in chosen]
        fine: list[int] = []
        while len(fine) < self.fine_per_batch and any(pools):  # round-robin over the chosen coarse classes
            for pool in pools:
                if pool and len(fine) < self.fine_per_batch:
                    fine.append(pool.pop(0))
        for c in rest:
            for f in self.children[c]:
                if len(fine) < self.fine_per_batch:
                    fine.append(f)
        batch: list[int] = []
        for f in fine:
            idx = self.members[f]
            batch += idx[self._pick(len(idx), self.m)].tolist()
        return batch


def build_sampler(
    name: str, labels: Tensor, batch_size: int, m: int, coarse_per_batch: int, steps: int | None,
    generator: torch.Generator, small_classes: str = "error", rank: int = 0, world_size: int = 1,
) -> _BatchSampler:
    """The configured batch sampler over `labels [N, L]`; `steps` defaults to N // batch_size."""
    steps = steps or max(1, len(labels) // batch_size)
    kw = dict(rank=rank, world_size=world_size)
    if name == "random":
        return RandomBatchSampler(len(labels), batch_size, steps, generator, **kw)
    if name == "m_per_class":
        return MPerClassSampler(labels[:, 0], batch_size, m, steps, generator, small_classes, **kw)
    if name == "hierarchical":
        return HierarchicalSampler(labels, batch_size, m, coarse_per_batch, steps, generator, small_classes, **kw)
    raise UserError(f"sampler.name: unknown sampler {name!r}")
