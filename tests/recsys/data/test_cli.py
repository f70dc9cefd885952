"""`itemrec data info|prepare` through the real entry point: output, files, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tests.test_cli import run_main as run


def test_info_prints_the_numbers(monkeypatch, capsys, table_csv: Path):
    code, out, _ = run(monkeypatch, capsys, "data", "info", str(table_csv), "-q", "--split", "random", "--ratios", "0.5,0.25,0.25")
    assert code == 0
    for label, value in (("users", "40"), ("items", "30"), ("interactions", "600"), ("density", "0.500000"), ("train", "300")):
        assert any(label in line and line.rstrip(" │").endswith(value) for line in out.splitlines()), (label, out)
    assert "popularity gini" in out


def test_prepare_writes_files_that_reload(monkeypatch, capsys, table_csv: Path, tmp_path: Path):
    out = tmp_path / "prepared"
    code, _, _ = run(monkeypatch, capsys, "data", "prepare", str(table_csv), "--out", str(out), "--split", "inductive", "--seed", "5", "-q")
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["interactions.parquet", "items.parquet", "params.json", "users.parquet"]
    parts = pl.read_parquet(out / "interactions.parquet")["part"].value_counts()
    assert set(parts["part"]) == {"train", "val", "test", "val_fold_in", "val_target", "test_fold_in", "test_target"}
    code, again, _ = run(monkeypatch, capsys, "data", "info", str(out))
    assert code == 0 and "inductive, seed 5" in again


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user-col", "who"], "no column 'who' for the user id"),
        (["--ratios", "0.8,x,0.1", "--split", "random"], "--ratios: expected 3 comma-separated numbers"),
        (["--k-core", "many"], "--k-core: expected K or USER,ITEM integers"),
        (["--split", "sideways"], "split: unknown kind 'sideways'"),
        (["--min-rating", "9"], "no interactions left after keeping ratings >= 9"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(monkeypatch, capsys, table_csv: Path, args: list[str], message: str):
    code, _, err = run(monkeypatch, capsys, "data", "info", str(table_csv), "-q", *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in err


def test_list_shows_the_named_datasets(monkeypatch, capsys, tmp_path: Path):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run(monkeypatch, capsys, "data", "list", "--cache", str(tmp_path))
    assert code == 0
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 4}
    for name in ("ml-100k", "gowalla", "irb/amazon2014-health", "irb/amazon2014-electronic", "irb/gowalla", "irb/yelp2018"):
        assert name in lines, (name, out)
    assert "md5 7fef9f11a5184ecccd63573466a6a38e" in lines["irb/amazon2014-health"]
    assert "1,974 / 1,200 / 48,189" in lines["irb/amazon2014-health"]
    assert "none recorded" in lines["irb/yelp2018"]


@pytest.mark.parametrize(
    ("args", "val", "split"),
    [([], "2", "given, val 10 % of training rows, seed 0"), (["--val-ratio", "0"], None, "given, no val part, seed 0")],
)
def test_info_on_an_ir_benchmark_archive(monkeypatch, capsys, tmp_path: Path, make_irbench, args, val, split):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run(monkeypatch, capsys, "data", "info", str(make_irbench(tmp_path / "proc.zip")), "-q", *args)
    assert code == 0 and split in out
    found = [line.rstrip(" │").split()[-1] for line in out.splitlines() if line.lstrip("│ ").startswith("val ")]
    assert found == ([val] if val else [])
