"""Cleaning steps before the split: de-duplication, implicit threshold, iterative k-core.

Each step takes and returns a canonical interaction frame (see `readers`) and prints what it
dropped. None of them fails on an empty result; `load_dataset` checks after each step and names
the source in its error.
"""

from __future__ import annotations

import polars as pl

from itemrec.experiment.errors import UserError
from itemrec.recsys.data.columns import ITEM, RATING, TIMESTAMP, USER
from itemrec.recsys.data.report import say

_ROW = "_row"


def deduplicate(frame: pl.DataFrame, *, quiet: bool = False) -> pl.DataFrame:
    """Keep one row per (user, item): the latest by timestamp, ties and untimed rows by file order.

    Sorts only the key columns and gathers the kept rows, so the memory cost is small on integer
    ids (`load_dataset` deduplicates after turning ids into integers).
    """
    time = [TIMESTAMP] if TIMESTAMP in frame.columns else []
    pair_ends = (pl.col(USER) != pl.col(USER).shift(-1)) | (pl.col(ITEM) != pl.col(ITEM).shift(-1))
    keep = (
        frame.select(USER, ITEM, *time)
        .with_row_index(_ROW)
        .sort([USER, ITEM, *time, _ROW])
        .filter(pair_ends.fill_null(True))[_ROW]
    )
    kept = frame if keep.len() == frame.height else frame[keep.sort().to_numpy()]
    say(f"dedup: dropped {frame.height - kept.height:,} repeated (user, item) rows, kept the latest", quiet=quiet)
    return kept


def keep_ratings_at_least(frame: pl.DataFrame, threshold: float, *, quiet: bool = False) -> pl.DataFrame:
    """Implicit feedback: keep rows with rating >= `threshold`."""
    if RATING not in frame.columns:
        raise UserError(f"a rating threshold ({threshold:g}) needs a rating column, and this source has none")
    kept = frame.filter(pl.col(RATING) >= threshold)
    say(f"threshold: dropped {frame.height - kept.height:,} rows rated below {threshold:g}", quiet=quiet)
    return kept


def k_core(frame: pl.DataFrame, min_user: int, min_item: int, *, quiet: bool = False) -> pl.DataFrame:
    """Iteratively drop users with fewer than `min_user` rows and items with fewer than `min_item`,
    until no row is dropped (the fixpoint: the largest sub-table meeting both bounds)."""
    current, rounds = frame, 0
    while True:
        kept = current.filter(
            (pl.len().over(USER) >= min_user) & (pl.len().over(ITEM) >= min_item)
        )
        rounds += 1
        if kept.height == current.height:
            break
        current = kept
    users = frame[USER].n_unique() - current[USER].n_unique()
    items = frame[ITEM].n_unique() - current[ITEM].n_unique()
    say(
        f"k-core (users >= {min_user}, items >= {min_item}): dropped {frame.height - current.height:,} rows, "
        f"{users:,} users, {items:,} items in {rounds} rounds",
        quiet=quiet,
    )
    return current
