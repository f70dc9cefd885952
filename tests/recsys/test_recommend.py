"""Recommendations from a trained run: the exported model equals the checkpoint rebuilt from the
data, `--all-users` equals per-user answers, bad requests are one line."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from itemrec.cli import app
from itemrec.experiment.config import load_config
from itemrec.experiment.loop import run_dir
from itemrec.recsys.frontend import train
from itemrec.recsys.recommend import Recommender, recommend, write_all_users
from tests.recsys.test_train import write_config, write_interactions
from tests.stores import mlflow_store
from tests.test_cli import run_main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small LightGCN run: (folder, tracking uri, run id, best checkpoint state)."""
    from itemrec.experiment.checkpoint import load_checkpoint

    folder = tmp_path_factory.mktemp("rec")
    write_interactions(folder / "inter.csv", n_users=40, n_items=40)
    cfg = load_config(write_config(folder, train={"epochs": 2}, model={"name": "lightgcn", "dim": 8, "layers": 2}))
    uri = mlflow_store(folder / "mlflow.db")
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        run_id = train(cfg, tracking_uri=uri, quiet=True)
    finally:
        os.chdir(cwd)
    return folder, uri, run_id, load_checkpoint(run_dir(cfg, run_id) / "best.pt")


@pytest.fixture
def env(trained, monkeypatch):
    folder, uri, _, _ = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("ITEMREC_DATA", str(folder / "cache"))
    monkeypatch.chdir(folder)
    return trained


def test_exported_model_equals_the_checkpoint(env, tmp_path):
    _, _, run_id, state = env
    rebuilt = Recommender.from_checkpoint(state, run_id)
    loaded = Recommender.load(rebuilt.export(tmp_path / "export"))
    for user in ("u0", "u7", "u21"):
        assert loaded.for_user(user, 5) == rebuilt.for_user(user, 5)
        assert [i for i, _ in loaded.for_user(user, 5)] == [i for i, _ in recommend(state, run_id, user=user, items=None, k=5)]
    assert loaded.for_new_user([1001, 1002], 4) == rebuilt.for_new_user(["1001", "1002"], 4)


def test_known_user_never_gets_a_seen_item(env):
    _, _, run_id, state = env
    rec = Recommender.from_checkpoint(state, run_id)
    for user in ("u1", "u2"):
        seen = set(rec.items.to_ids(rec.seen[rec.user_index(user)].indices).to_list())
        assert not seen & {i for i, _ in rec.for_user(user, 20)}


def test_all_users_equals_per_user_recommend(env, tmp_path):
    _, _, run_id, state = env
    rec = Recommender.from_checkpoint(state, run_id)
    out = tmp_path / "recs.parquet"
    rows = write_all_users(rec, 5, out, chunk=7)  # several chunks
    table = pl.read_parquet(out)
    assert rows == table.height and table.columns == ["user", "rank", "item", "score"]
    users = table["user"].unique().to_list()
    assert len(users) == int((rec.seen.getnnz(axis=1) > 0).sum())
    for user in users:
        mine = table.filter(pl.col("user") == user).sort("rank")
        expected = rec.for_user(user, 5)
        assert mine["item"].to_list() == [i for i, _ in expected]
        assert mine["score"].to_list() == pytest.approx([s for _, s in expected], abs=1e-6)
        assert mine["rank"].to_list() == list(range(1, len(expected) + 1))
    csv = tmp_path / "recs.csv"
    assert write_all_users(rec, 5, csv, chunk=7) == rows and pl.read_csv(csv).height == rows


def test_cli_recommend_by_run_id_uses_the_cached_model(env, tmp_path):
    folder, _, run_id, state = env
    runner = CliRunner()
    result = runner.invoke(app, ["recommend", run_id, "--user", "u3", "-k", "4"])
    assert result.exit_code == 0, result.output
    assert "Downloading artifacts" not in result.output
    cached = folder / "cache" / "runs" / run_id / "model" / "artifacts" / "recommender"
    assert (cached / "model.pt").is_file()
    expected = [str(i) for i, _ in recommend(state, run_id, user="u3", items=None, k=4)]
    shown = [line.split("│")[2].strip() for line in result.output.splitlines() if line.count("│") == 4]
    assert shown == expected
    out = tmp_path / "all.parquet"
    result = runner.invoke(app, ["recommend", run_id, "--all-users", "-k", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(out).height == int(result.output.split("wrote ")[1].split()[0].replace(",", ""))


BAD_REQUESTS = [
    (["--user", "nobody"], "user 'nobody': not in this run's data"),
    (["--items", "1001,99999"], "item '99999': not in this run's data"),
    (["--user", "u1", "--items", "1001"], "give exactly one of --user ID, --items ID,ID,... or --all-users"),
    (["--all-users"], "--all-users and --out go together"),
    (["--user", "u1", "-k", "0"], "-k: must be >= 1"),
]


def test_a_bad_request_in_a_fresh_process_is_one_line(env):
    """The installed entry point end to end: exit code 2, one line on stderr, no traceback."""
    import subprocess
    import sys

    _, _, run_id, _ = env
    args, message = BAD_REQUESTS[0]
    out = subprocess.run([sys.executable, "-m", "itemrec.cli", "recommend", run_id, *args], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


@pytest.mark.parametrize("args, message", BAD_REQUESTS)
def test_bad_requests_are_one_line(env, monkeypatch, capsys, args, message):
    _, _, run_id, _ = env
    code, _, err = run_main(monkeypatch, capsys, "recommend", run_id, *args)
    assert code == 2, err  # any other exception would have propagated
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
