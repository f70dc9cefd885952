"""Id maps: the user's own ids <-> contiguous integer indices 0..n-1."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from itemrec.errors import UserError

INDEX = "index"
ID = "id"


@dataclass(frozen=True)
class IdMap:
    """One kind of id (users or items): `ids[i]` is the original id of index `i`.

    Indices are assigned in sorted order of the original ids, so the same set of ids always gets
    the same indices whatever the row order of the file.
    """

    kind: str
    ids: pl.Series

    def __len__(self) -> int:
        return self.ids.len()

    @classmethod
    def from_ids(cls, kind: str, ids: pl.Series) -> IdMap:
        """The map over the distinct values of `ids`, indices in sorted id order."""
        return cls(kind, ids.unique().sort().alias(ID))

    def to_ids(self, indices: Sequence[int] | np.ndarray) -> pl.Series:
        """Original ids of integer `indices`."""
        index = np.asarray(indices, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise UserError(f"{self.kind} index out of range 0..{len(self) - 1}")
        return self.ids.gather(index)

    def to_index(self, ids: Sequence[object] | pl.Series) -> np.ndarray:
        """Indices of original `ids`; an id this map does not know fails with its value."""
        query = pl.Series(ID, ids).cast(self.ids.dtype, strict=False)
        found = pl.DataFrame({ID: query}).join(self.frame(), on=ID, how="left", maintain_order="left")
        unknown = found.filter(pl.col(INDEX).is_null())
        if unknown.height:
            raise UserError(f"unknown {self.kind} id {pl.Series(ids)[0] if query.null_count() else unknown[ID][0]!r}")
        return found[INDEX].to_numpy().astype(np.int64)

    def compact(self, indices: pl.Series) -> tuple[IdMap, pl.Series]:
        """The map restricted to the indices still in use, and `indices` renumbered into it.

        Sorted order is kept, so the result equals `from_ids` over the surviving original ids.
        """
        used = np.unique(indices.to_numpy())
        renumbered = np.searchsorted(used, indices.to_numpy()).astype(np.uint32)
        return IdMap(self.kind, self.ids.gather(used)), pl.Series(indices.name, renumbered, dtype=pl.UInt32)

    def frame(self) -> pl.DataFrame:
        """The map as a table: `index` (UInt32), `id`."""
        return pl.DataFrame({INDEX: pl.arange(0, len(self), dtype=pl.UInt32, eager=True), ID: self.ids})

    def encode(self, column: pl.Expr | str) -> pl.Expr:
        """Expression mapping a column of original ids to their indices (UInt32)."""
        expr = pl.col(column) if isinstance(column, str) else column
        return expr.replace_strict(self.ids, pl.arange(0, len(self), dtype=pl.UInt32, eager=True), return_dtype=pl.UInt32)
