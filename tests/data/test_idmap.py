"""Id maps: sorted, contiguous, reversible; unknown ids fail by value."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from itemrec.data.idmap import IdMap
from itemrec.errors import UserError


def test_indices_follow_sorted_ids_and_round_trip():
    ids = pl.Series(["b", "a", "c", "a"])
    mapping = IdMap.from_ids("user", ids)
    assert mapping.ids.to_list() == ["a", "b", "c"]
    assert mapping.to_index(["c", "a"]).tolist() == [2, 0]
    assert mapping.to_ids(np.array([1, 2])).to_list() == ["b", "c"]
    assert pl.DataFrame({"u": ids}).select(mapping.encode("u"))["u"].to_list() == [1, 0, 2, 0]
    assert mapping.frame().rows() == [(0, "a"), (1, "b"), (2, "c")]


def test_unknown_id_and_index_fail():
    mapping = IdMap.from_ids("item", pl.Series([10, 20]))
    with pytest.raises(UserError, match="unknown item id 30"):
        mapping.to_index([10, 30])
    with pytest.raises(UserError, match="out of range"):
        mapping.to_ids([2])


def test_compact_renumbers_the_surviving_ids():
    mapping = IdMap.from_ids("item", pl.Series(["a", "b", "c", "d"]))
    compact, renumbered = mapping.compact(pl.Series("item", [3, 1, 3], dtype=pl.UInt32))
    assert compact.ids.to_list() == ["b", "d"]
    assert renumbered.to_list() == [1, 0, 1]
    assert compact.ids.equals(IdMap.from_ids("item", pl.Series(["d", "b"])).ids)
