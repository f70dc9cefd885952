"""Id maps: the user's own ids <-> contiguous integer indices 0..n-1."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from itemrec.experiment.errors import UserError

INDEX = "index"
ID = "id"
LOOKUP_SPAN = 8
"""`encode` uses a lookup table when the id range is at most this many times the rows + ids."""
MISSING = np.iinfo(np.uint32).max


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
        Linear in the rows: a presence mask over this map's indices, no sort.
        """
        codes = indices.to_numpy()
        present = np.zeros(len(self), dtype=bool)
        present[codes] = True
        renumber = np.cumsum(present, dtype=np.int64) - 1
        return IdMap(self.kind, self.ids.filter(pl.Series(present))), pl.Series(indices.name, renumber[codes], dtype=pl.UInt32)

    def frame(self) -> pl.DataFrame:
        """The map as a table: `index` (UInt32), `id`."""
        return pl.DataFrame({INDEX: pl.arange(0, len(self), dtype=pl.UInt32, eager=True), ID: self.ids})

    def encode(self, values: pl.Series) -> pl.Series:
        """Indices (UInt32, named like `values`) of original ids `values`; an unknown id fails.

        Integer ids spanning a range at most `LOOKUP_SPAN` times the rows + ids (the usual case)
        go through a lookup table, linear in the rows; other ids through a hash join.
        """
        if len(self) == 0 or values.len() == 0:
            if values.len():
                raise UserError(f"unknown {self.kind} id {values[0]!r}")
            return pl.Series(values.name, [], dtype=pl.UInt32)
        if self.ids.dtype.is_integer() and values.dtype.is_integer():
            ids = self.ids.to_numpy().astype(np.int64)
            low, high = int(ids[0]), int(ids[-1])  # sorted
            span = high - low + 1
            if span <= LOOKUP_SPAN * (values.len() + len(self)):
                given = values.to_numpy().astype(np.int64)
                outside = (given < low) | (given > high)
                table = np.full(span, MISSING, dtype=np.uint32)
                table[ids - low] = np.arange(len(self), dtype=np.uint32)
                index = table[np.where(outside, 0, given - low)]
                unknown = outside | (index == MISSING)
                if unknown.any():
                    raise UserError(f"unknown {self.kind} id {int(given[np.argmax(unknown)])!r}")
                return pl.Series(values.name, index, dtype=pl.UInt32)
        found = pl.DataFrame({ID: values.cast(self.ids.dtype, strict=False)}).join(
            self.frame(), on=ID, how="left", maintain_order="left"
        )[INDEX]
        if found.null_count():
            raise UserError(f"unknown {self.kind} id {values.filter(found.is_null())[0]!r}")
        return found.alias(values.name)
