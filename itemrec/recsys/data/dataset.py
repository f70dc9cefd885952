"""The dataset object the trainer and evaluator consume: split interaction matrices and id maps.

Rows of every matrix are global user indices (0..n_users-1), columns item indices
(0..n_items-1), so all matrices share one shape. Inductive (held-out) users keep their global
index but have empty rows in `train`, `val` and `test`; their interactions live only in
`inductive` (fold-in and target matrices), and their indices are `inductive.val_users` and
`inductive.test_users`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch

from itemrec.recsys.data.columns import ITEM, USER
from itemrec.recsys.data.idmap import IdMap
from itemrec.recsys.data.splits import Part, SplitSpec

PART = "part"
"""Column of the interaction frame holding each row's `Part` code (UInt8)."""


@dataclass(frozen=True)
class InductiveSplit:
    """Held-out users: indices, and per part a [n_users, n_items] CSR with rows only for them."""

    val_users: np.ndarray
    test_users: np.ndarray
    val_fold_in: sp.csr_matrix
    val_target: sp.csr_matrix
    test_fold_in: sp.csr_matrix
    test_target: sp.csr_matrix


@dataclass(frozen=True)
class DataStats:
    """Summary of a dataset: sizes, density, popularity concentration, part sizes."""

    users: int
    items: int
    interactions: int
    density: float
    popularity_gini: float
    parts: dict[str, int]
    users_without_test: int

    def rows(self) -> list[tuple[str, str]]:
        """(label, formatted value) pairs for printing."""
        lines = [
            ("users", f"{self.users:,}"),
            ("items", f"{self.items:,}"),
            ("interactions", f"{self.interactions:,}"),
            ("density", f"{self.density:.6f}"),
            ("popularity gini", f"{self.popularity_gini:.4f}"),
        ]
        lines += [(name, f"{count:,}") for name, count in self.parts.items() if count]
        lines.append(("users without test", f"{self.users_without_test:,}"))
        return lines


@dataclass(frozen=True)
class InteractionData:
    """A split implicit-feedback dataset.

    - `source`: where it came from (dataset name or path), used in messages.
    - `interactions`: every kept interaction: `user`, `item` (indices, UInt32), `rating` and
      `timestamp` when the source has them, and `part` (a `Part` code).
    - `users`, `items`: id maps, index <-> the source's own ids.
    - `train`, `val`, `test`: binary [n_users, n_items] CSR (float32) of the transductive parts.
    - `inductive`: held-out users and their fold-in / target matrices (inductive splits only).
    - `split`, `seed`: how the parts were drawn; the same pair on the same data gives the same parts.
    - `users_without_test`: users that train but got no test row (too few interactions).
    """

    source: str
    interactions: pl.DataFrame
    users: IdMap
    items: IdMap
    train: sp.csr_matrix
    val: sp.csr_matrix
    test: sp.csr_matrix
    inductive: InductiveSplit | None
    split: SplitSpec
    seed: int
    users_without_test: int = 0

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def item_popularity(self) -> np.ndarray:
        """Training interactions per item (int64, length n_items): what a model may know."""
        return np.asarray(self.train.sum(axis=0)).ravel().astype(np.int64)

    @property
    def has_validation(self) -> bool:
        """Whether the transductive validation part holds any rows (what per-epoch validation
        ranks). False for a given split loaded with `val_ratio` 0, or ratios with no val share;
        an inductive split's held-out validation users are in `inductive`, not counted here."""
        return self.val.nnz > 0

    @property
    def train_users(self) -> np.ndarray:
        """Indices of users with at least one training interaction."""
        return np.flatnonzero(np.diff(self.train.indptr))

    def edge_index(self) -> torch.Tensor:
        """Bipartite training graph for torch_geometric: LongTensor [2, 2 * nnz(train)].

        Nodes 0..n_users-1 are users, n_users..n_users+n_items-1 items; each training
        interaction appears in both directions. Held-out users have no edges.
        """
        coo = self.train.tocoo()
        users = torch.from_numpy(coo.row.astype(np.int64))
        items = torch.from_numpy(coo.col.astype(np.int64)) + self.n_users
        return torch.stack([torch.cat([users, items]), torch.cat([items, users])])

    def stats(self) -> DataStats:
        """Counts, density, Gini of item popularity over all interactions, and part sizes."""
        counts = np.bincount(self.interactions[PART].to_numpy(), minlength=len(Part))
        n_rows = self.interactions.height
        popularity = np.bincount(self.interactions[ITEM].to_numpy(), minlength=self.n_items)
        return DataStats(
            users=self.n_users,
            items=self.n_items,
            interactions=n_rows,
            density=n_rows / max(1, self.n_users * self.n_items),
            popularity_gini=gini(popularity),
            parts={part.label: int(counts[part]) for part in Part},
            users_without_test=self.users_without_test,
        )


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative `values` (0: all equal, -> 1: all mass on one)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n, total = x.size, x.sum()
    if n == 0 or total == 0:
        return 0.0
    rank = np.arange(1, n + 1)
    return float(((2 * rank - n - 1) * x).sum() / (n * total))


def part_matrix(frame: pl.DataFrame, parts: tuple[Part, ...], shape: tuple[int, int]) -> sp.csr_matrix:
    """Binary CSR (float32) of the rows of `frame` whose part is in `parts`."""
    rows = frame.filter(pl.col(PART).is_in([int(p) for p in parts]))
    users = rows[USER].to_numpy().astype(np.int64)
    items = rows[ITEM].to_numpy().astype(np.int64)
    matrix = sp.csr_matrix((np.ones(users.size, dtype=np.float32), (users, items)), shape=shape)
    matrix.sum_duplicates()
    return matrix


def build_dataset(
    source: str, frame: pl.DataFrame, users: IdMap, items: IdMap, split: SplitSpec, seed: int, users_without_test: int = 0
) -> InteractionData:
    """Assemble the dataset from an indexed frame that already carries its `part` column."""
    shape = (len(users), len(items))
    inductive = None
    if split.kind == "inductive":
        inductive = InductiveSplit(
            val_users=_users_in(frame, Part.VAL_FOLD_IN),
            test_users=_users_in(frame, Part.TEST_FOLD_IN),
            val_fold_in=part_matrix(frame, (Part.VAL_FOLD_IN,), shape),
            val_target=part_matrix(frame, (Part.VAL_TARGET,), shape),
            test_fold_in=part_matrix(frame, (Part.TEST_FOLD_IN,), shape),
            test_target=part_matrix(frame, (Part.TEST_TARGET,), shape),
        )
    return InteractionData(
        source=source,
        interactions=frame,
        users=users,
        items=items,
        train=part_matrix(frame, (Part.TRAIN,), shape),
        val=part_matrix(frame, (Part.VAL,), shape),
        test=part_matrix(frame, (Part.TEST,), shape),
        inductive=inductive,
        split=split,
        seed=seed,
        users_without_test=users_without_test,
    )


def _users_in(frame: pl.DataFrame, part: Part) -> np.ndarray:
    """Sorted indices of users having rows in `part`."""
    return np.unique(frame.filter(pl.col(PART) == int(part))[USER].to_numpy()).astype(np.int64)


def to_torch_csr(matrix: sp.csr_matrix) -> torch.Tensor:
    """A scipy CSR as a torch sparse CSR tensor (float32), e.g. `to_torch_csr(data.train)`."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return _torch_csr(matrix)


def _torch_csr(matrix: sp.csr_matrix) -> torch.Tensor:
    return torch.sparse_csr_tensor(
        torch.from_numpy(matrix.indptr.astype(np.int64)),
        torch.from_numpy(matrix.indices.astype(np.int64)),
        torch.from_numpy(matrix.data.astype(np.float32)),
        size=matrix.shape,
        check_invariants=False,
    )
