"""Id maps: sorted, contiguous, reversible; unknown ids fail by value."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from itemrec.experiment.errors import UserError
from itemrec.recsys.data.idmap import IdMap


def test_indices_follow_sorted_ids_and_round_trip():
    ids = pl.Series(["b", "a", "c", "a"])
    mapping = IdMap.from_ids("user", ids)
    assert mapping.ids.to_list() == ["a", "b", "c"]
    assert mapping.to_index(["c", "a"]).tolist() == [2, 0]
    assert mapping.to_ids(np.array([1, 2])).to_list() == ["b", "c"]
    assert mapping.encode(ids).to_list() == [1, 0, 2, 0]
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


@pytest.mark.parametrize("spread", [1, 10**12])  # a lookup table over the id range / a hash join
def test_encode_equals_the_sorted_position_of_each_id(spread: int):
    rng = np.random.default_rng(0)
    values = pl.Series("item", rng.integers(-50, 50, 2_000) * 2 * spread)  # even ids: odd ones are unknown
    mapping = IdMap.from_ids("item", values)
    reference = np.searchsorted(np.unique(values.to_numpy()), values.to_numpy())
    encoded = mapping.encode(values)
    assert encoded.dtype == pl.UInt32 and encoded.name == "item"
    assert encoded.to_numpy().tolist() == reference.tolist()
    with pytest.raises(UserError, match=f"unknown item id {14 * spread + 1}"):
        mapping.encode(pl.Series([0, 14 * spread + 1]))
    with pytest.raises(UserError, match=f"unknown item id {198 * spread}"):
        mapping.encode(pl.Series([198 * spread]))


def test_compact_equals_unique_and_searchsorted_on_random_codes():
    rng = np.random.default_rng(1)
    mapping = IdMap.from_ids("user", pl.Series(np.arange(500) * 3))
    codes = rng.integers(0, 500, 300).astype(np.uint32)
    compact, renumbered = mapping.compact(pl.Series("user", codes))
    used = np.unique(codes)
    assert compact.ids.to_list() == (used * 3).tolist()
    assert renumbered.to_list() == np.searchsorted(used, codes).tolist()
