"""A prepared directory reloads to exactly the same dataset, split included."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from itemrec.experiment.errors import UserError
from itemrec.recsys.data import SplitSpec, load_dataset, prepare_dataset


def assert_same(a, b):
    assert a.interactions.equals(b.interactions)
    assert a.users.ids.equals(b.users.ids) and a.items.ids.equals(b.items.ids)
    for name in ("train", "val", "test"):
        assert (getattr(a, name) != getattr(b, name)).nnz == 0
    assert a.split == b.split and a.seed == b.seed


@pytest.mark.parametrize("spec", [SplitSpec(), SplitSpec("inductive", by_time=True)])
def test_prepare_then_load_reproduces_the_split(table_csv: Path, tmp_path: Path, spec: SplitSpec):
    out = tmp_path / "prepared"
    made = prepare_dataset(table_csv, out, min_rating=2, k_core=2, split=spec, seed=11, quiet=True)
    again = load_dataset(out)
    assert_same(made, again)
    if spec.kind == "inductive":
        assert np.array_equal(made.inductive.test_users, again.inductive.test_users)
        assert (made.inductive.val_fold_in != again.inductive.val_fold_in).nnz == 0
    params = json.loads((out / "params.json").read_text())
    assert params["seed"] == 11 and params["min_rating"] == 2 and params["k_core"] == 2
    assert params["split"]["kind"] == spec.kind
    saved = pl.read_parquet(out / "interactions.parquet")
    assert set(saved["part"].unique()) <= {"train", "val", "test", "val_fold_in", "val_target", "test_fold_in", "test_target"}
    # the maps speak the file's own ids
    saved_users = pl.read_parquet(out / "users.parquet")
    assert saved_users["index"].to_list() == list(range(made.n_users))
    assert saved_users["id"].to_list() == sorted(saved_users["id"].to_list())
    assert set(saved_users["id"]) <= set(pl.read_csv(table_csv)["user_id"])


def test_prepared_directory_refuses_new_options(table_csv: Path, tmp_path: Path):
    prepare_dataset(table_csv, tmp_path / "p", quiet=True)
    with pytest.raises(UserError, match="loaded as saved"):
        load_dataset(tmp_path / "p", k_core=5)


def test_prepared_directory_missing_a_file(table_csv: Path, tmp_path: Path):
    prepare_dataset(table_csv, tmp_path / "p", quiet=True)
    (tmp_path / "p" / "items.parquet").unlink()
    with pytest.raises(UserError, match=r"items\.parquet: missing from the prepared dataset"):
        load_dataset(tmp_path / "p")


def test_prepared_given_split_keeps_its_carved_validation(tmp_path: Path, make_irbench):
    made = prepare_dataset(make_irbench(tmp_path / "proc.zip"), tmp_path / "p", split=SplitSpec("given", val_ratio=0.4), seed=2, quiet=True)
    again = load_dataset(tmp_path / "p")
    assert_same(made, again)
    assert again.split.val_ratio == 0.4 and again.val.nnz == 2 and again.has_validation
