"""Dedup keeps the latest row, the threshold keeps rating >= t, k-core reaches its fixpoint."""

from __future__ import annotations

from collections import Counter

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from itemrec.experiment.errors import UserError
from itemrec.recsys.data.preprocess import deduplicate, k_core, keep_ratings_at_least


def test_dedup_keeps_latest_by_time_then_by_file_order(capsys):
    frame = pl.DataFrame(
        {"user": [1, 1, 1, 2, 2], "item": [5, 5, 6, 5, 5], "rating": [1.0, 4.0, 2.0, 3.0, 5.0], "timestamp": [30, 10, 5, 7, 7]}
    )
    kept = deduplicate(frame)
    assert sorted(kept.rows()) == [(1, 5, 1.0, 30), (1, 6, 2.0, 5), (2, 5, 5.0, 7)]
    assert "dropped 2 repeated" in capsys.readouterr().err


def test_dedup_without_time_keeps_last_row():
    frame = pl.DataFrame({"user": [1, 1], "item": [5, 5], "rating": [1.0, 4.0]})
    assert deduplicate(frame, quiet=True).rows() == [(1, 5, 4.0)]


def test_threshold(capsys):
    frame = pl.DataFrame({"user": [1, 1, 2], "item": [1, 2, 3], "rating": [3.5, 4.0, 5.0]})
    assert keep_ratings_at_least(frame, 4).rows() == [(1, 2, 4.0), (2, 3, 5.0)]
    assert "dropped 1 rows rated below 4" in capsys.readouterr().err
    with pytest.raises(UserError, match="needs a rating column"):
        keep_ratings_at_least(frame.drop("rating"), 4)


def brute_force_core(pairs: set[tuple[int, int]], min_user: int, min_item: int) -> set[tuple[int, int]]:
    """Remove one under-connected user or item at a time until none is left."""
    pairs = set(pairs)
    while True:
        users, items = Counter(u for u, _ in pairs), Counter(i for _, i in pairs)
        weak_users = [u for u, count in users.items() if count < min_user]
        weak_items = [i for i, count in items.items() if count < min_item]
        if weak_users:
            pairs = {p for p in pairs if p[0] != weak_users[0]}
        elif weak_items:
            pairs = {p for p in pairs if p[1] != weak_items[0]}
        else:
            return pairs


def test_k_core_hand_example(capsys):
    # Users 1-3 each rate items 10-11; user 4 rates 10 and 12; item 12 has one rating.
    # 2-core: item 12 goes, then user 4 has one rating and goes; the rest stays.
    frame = pl.DataFrame({"user": [1, 1, 2, 2, 3, 3, 4, 4], "item": [10, 11, 10, 11, 10, 11, 10, 12]})
    kept = k_core(frame, 2, 2)
    assert sorted(kept.rows()) == [(1, 10), (1, 11), (2, 10), (2, 11), (3, 10), (3, 11)]
    assert "dropped 2 rows, 1 users, 1 items in 3 rounds" in capsys.readouterr().err


@settings(max_examples=40, deadline=None)
@given(
    pairs=st.sets(st.tuples(st.integers(0, 12), st.integers(0, 9)), max_size=80),
    min_user=st.integers(1, 5),
    min_item=st.integers(1, 5),
)
def test_k_core_matches_brute_force_and_is_a_fixpoint(pairs, min_user, min_item):
    frame = pl.DataFrame({"user": [u for u, _ in pairs], "item": [i for _, i in pairs]}, schema={"user": pl.Int64, "item": pl.Int64})
    kept = k_core(frame, min_user, min_item, quiet=True)
    assert set(kept.rows()) == brute_force_core(pairs, min_user, min_item)
    if kept.height:
        assert kept.group_by("user").len()["len"].min() >= min_user
        assert kept.group_by("item").len()["len"].min() >= min_item
    assert k_core(kept, min_user, min_item, quiet=True).height == kept.height
