"""The synthetic-data generator: exact counts, distinct pairs, determinism, skew, communities, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from itemrec.experiment.errors import UserError
from itemrec.recsys.data.dataset import gini
from itemrec.recsys.data.load import load_dataset
from itemrec.recsys.data.synth import (
    SynthSpec,
    allocate,
    community_labels,
    synthesize,
    write_synthetic,
)
from tests.recsys.data.test_cli import run as run_cli

SPEC = SynthSpec(users=600, items=900, interactions=24_000, seed=3, communities=6)


@pytest.fixture(scope="module")
def table() -> pl.DataFrame:
    return synthesize(SPEC)


def test_shape_and_exact_counts(table: pl.DataFrame):
    assert table.columns == ["user_id", "item_id", "timestamp"]
    assert table.height == SPEC.interactions
    assert table["user_id"].n_unique() == SPEC.users
    assert table["user_id"].min() == 0 and table["user_id"].max() == SPEC.users - 1
    assert 0 <= table["item_id"].min() and table["item_id"].max() < SPEC.items
    per_user = table.group_by("user_id").len()["len"]
    assert per_user.min() >= SPEC.min_per_user
    assert table.select(pl.struct("user_id", "item_id").is_unique().all()).item()
    assert table["timestamp"].min() >= 1_577_836_800  # 2020-01-01


def test_deterministic_under_a_seed(table: pl.DataFrame):
    assert synthesize(SPEC).equals(table)
    other = synthesize(SynthSpec(**{**SPEC.__dict__, "seed": 4}))
    assert other.height == table.height and not other.equals(table)


def test_popularity_is_skewed_and_activity_spread(table: pl.DataFrame):
    popularity = table["item_id"].value_counts()["count"].to_numpy()
    activity = table.group_by("user_id").len()["len"].to_numpy()
    assert gini(popularity) > 0.35  # uniform draws of this size give about 0.1
    top = np.sort(popularity)[::-1]
    assert top[: len(top) // 10].sum() > 0.25 * SPEC.interactions  # top 10% of items: > 25% of rows
    assert activity.max() > 5 * np.median(activity)  # log-normal tail


def test_community_structure_is_measurable(table: pl.DataFrame):
    user_community, item_community = community_labels(SPEC)
    same = user_community[table["user_id"].to_numpy()] == item_community[table["item_id"].to_numpy()]
    # 0.8 of the draws inside (fewer kept: heavy users exhaust their 150-item community and repeats
    # inside are dropped); without communities the share would be about 1/6
    assert 0.6 < same.mean() < 0.9


def test_flat_model_has_no_structure():
    spec = SynthSpec(users=300, items=400, interactions=6_000, communities=5, in_community=0.0, popularity=0.0)
    frame = synthesize(spec)
    user_community, item_community = community_labels(spec)
    same = user_community[frame["user_id"].to_numpy()] == item_community[frame["item_id"].to_numpy()]
    assert abs(same.mean() - 0.2) < 0.05
    assert gini(frame["item_id"].value_counts()["count"].to_numpy()) < 0.2


def test_dense_extreme_fills_every_pair():
    frame = synthesize(SynthSpec(users=7, items=30, interactions=7 * 30, communities=3))
    assert frame.height == 210 and frame.select(pl.struct("user_id", "item_id").n_unique()).item() == 210


def test_chunks_do_not_change_the_model(monkeypatch):
    import itemrec.recsys.data.synth as synth

    spec = SynthSpec(users=400, items=500, interactions=8_000, seed=1)
    whole = synth.synthesize(spec)
    monkeypatch.setattr(synth, "CHUNK_INTERACTIONS", 1_000)
    chunked = synth.synthesize(spec)
    assert chunked.height == whole.height and chunked["user_id"].n_unique() == 400
    assert chunked.select(pl.struct("user_id", "item_id").is_unique().all()).item()
    assert (chunked.group_by("user_id").len().sort("user_id")["len"] == whole.group_by("user_id").len().sort("user_id")["len"]).all()


def test_allocate_is_exact_and_respects_floor_and_cap():
    weights = np.array([100.0, 1.0, 1.0, 1.0, 50.0])
    counts = allocate(40, weights, floor=2, cap=12)
    assert counts.sum() == 40 and counts.min() >= 2 and counts.max() <= 12
    assert counts[0] == 12 and counts[4] == 12


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".tsv"])
def test_written_file_loads_with_default_columns(tmp_path: Path, suffix: str):
    out = tmp_path / f"synth{suffix}"
    summary = write_synthetic(SynthSpec(users=50, items=80, interactions=1_000), out)
    assert summary.interactions == 1_000 and summary.users == 50
    data = load_dataset(out, quiet=True)
    assert data.n_users == 50 and data.n_items == summary.items_used
    assert data.train.nnz + data.val.nnz + data.test.nnz == 1_000


def run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    return run_cli(monkeypatch, capsys, "data", "synth", *args)


def test_cli_writes_the_table(monkeypatch, capsys, tmp_path: Path):
    out = tmp_path / "g.parquet"
    code, text, _ = run(monkeypatch, capsys, "--users", "40", "--items", "60", "--interactions", "500", "--seed", "2", "--out", str(out))
    assert code == 0 and "500 interactions, 40 users" in text
    assert pl.read_parquet(out).equals(synthesize(SynthSpec(users=40, items=60, interactions=500, seed=2)))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--users", "0", "--items", "5", "--interactions", "3"], "--users: must be >= 1, got 0"),
        (["--users", "-4", "--items", "5", "--interactions", "3"], "--users: must be >= 1, got -4"),
        (["--users", "4", "--items", "0", "--interactions", "3"], "--items: must be >= 1, got 0"),
        (["--users", "4", "--items", "5", "--interactions", "21"], "--interactions: must be in [4, 20]"),
        (["--users", "4", "--items", "5", "--interactions", "3"], "--interactions: must be in [4, 20]"),
        (["--users", "4", "--items", "5", "--interactions", "8", "--in-community", "1.5"], "--in-community: must be in [0, 1]"),
        (["--users", "4", "--items", "5", "--interactions", "8", "--seed", "-1"], "--seed: must be >= 0"),
        (["--users", "4", "--items", "5", "--interactions", "8", "--communities", "0"], "--communities: must be >= 1"),
    ],
)
def test_cli_bad_input_is_one_line(monkeypatch, capsys, tmp_path: Path, args: list[str], message: str):
    code, _, err = run(monkeypatch, capsys, *args, "--out", str(tmp_path / "x.parquet"))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not (tmp_path / "x.parquet").exists()


def test_cli_bad_output_name(monkeypatch, capsys, tmp_path: Path):
    code, _, err = run(monkeypatch, capsys, "--users", "4", "--items", "5", "--interactions", "8", "--out", str(tmp_path / "x.json"))
    assert code == 2 and err.strip() == "error: --out: must end in .parquet, .pq, .csv or .tsv, got 'x.json'"


def test_spec_check_raises_user_error():
    with pytest.raises(UserError, match="--interactions"):
        synthesize(SynthSpec(users=2, items=2, interactions=5))
