"""Shared helpers for the data tests: small interaction tables written by the tests themselves."""

from __future__ import annotations

import zipfile
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


IRB_TRAIN = [(3, 10), (3, 11), (3, 12), (7, 11), (7, 20), (9, 10)]
IRB_TEST = [(3, 20), (7, 10), (9, 12)]
"""A tiny IR-Benchmark split: users 3, 7, 9 (3, 2 and 1 training rows), items 10, 11, 12, 20."""


def irbench_text(pairs: list[tuple[int, int]]) -> str:
    """An IR-Benchmark `train.tsv` / `test.tsv`: header `user_procid<TAB>item_procid`, then the pairs."""
    return "user_procid\titem_procid\n" + "".join(f"{u}\t{i}\n" for u, i in pairs)


def write_irbench(target: Path, train=IRB_TRAIN, test=IRB_TEST, *, inner: str = "") -> Path:
    """`target` as an IR-Benchmark source: a folder with train.tsv / test.tsv, or (a name ending
    in .zip) an archive holding them under `inner` (e.g. "proc/")."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix == ".zip":
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            bundle.writestr(f"{inner}train.tsv", irbench_text(train))
            bundle.writestr(f"{inner}test.tsv", irbench_text(test))
            bundle.writestr(f"{inner}summary.txt", "Dataset: tiny\n")
    else:
        target.mkdir(parents=True, exist_ok=True)
        (target / "train.tsv").write_text(irbench_text(train))
        (target / "test.tsv").write_text(irbench_text(test))
    return target


@pytest.fixture
def make_irbench():
    """The `write_irbench` builder."""
    return write_irbench
