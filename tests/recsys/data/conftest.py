"""Shared helpers for the data tests: small interaction tables written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest


def random_interactions(n_users: int, n_items: int, n_rows: int, seed: int = 0) -> pl.DataFrame:
    """A canonical-looking table with distinct (user, item) pairs, ratings 1..5 and timestamps."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, size=n_rows, replace=False)
    return pl.DataFrame(
        {
            "user_id": (pairs // n_items).astype(np.int64) + 100,
            "item_id": (pairs % n_items).astype(np.int64) + 500,
            "rating": rng.integers(1, 6, size=n_rows).astype(np.float64),
            "timestamp": rng.integers(0, 10_000, size=n_rows),
        }
    )


@pytest.fixture
def make_table():
    """The `random_interactions` builder, for tests that need their own sizes."""
    return random_interactions


@pytest.fixture
def write(tmp_path: Path):
    """write(name, text) -> path of a text file under the test's temporary directory."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return _write


@pytest.fixture
def table_csv(tmp_path: Path) -> Path:
    """A 40-user, 30-item CSV with 600 distinct interactions."""
    path = tmp_path / "table.csv"
    random_interactions(40, 30, 600).write_csv(path)
    return path
