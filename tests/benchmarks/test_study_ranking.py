"""benchmarks/study_ranking.py: its cells are study_losses' cells, the paired tests read the per-user
test NDCG@20 kept in the records, and a fresh store reports the same tests from the records alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from benchmarks import harness, study_losses, study_ranking
from tests.benchmarks.test_study_losses import params
from tests.stores import mlflow_store

USERS = 40
SHIFT = {"sl": 0.0, "slk20": 0.02, "best_ranking": 0.03}
"""Each loss's per-user test NDCG@20 is the same noise plus this shift (so the paired differences are known)."""


def fake_train(calls: list):
    def train(config, *, tracking_uri, quiet, tags, resume=None):
        from itemrec.experiment import tracking

        mlflow = tracking.connect(tracking_uri)
        mlflow.set_experiment(config.name)
        loss, seed = tags["study.loss"], config.seed
        calls.append((tags["study.dataset"], loss, seed))
        noise = np.random.default_rng(seed).uniform(0.0, 0.5, USERS)
        values = noise + SHIFT[loss] + 0.001 * np.arange(USERS) * (loss == "best_ranking")  # a varying difference
        with mlflow.start_run(tags=tags) as run:
            mlflow.log_params(params(config))
            mlflow.log_metrics({"epoch_seconds": 1.0, "val/ndcg_at_20": 0.1}, step=5)
            mlflow.log_metrics({"test/recall_at_20": 0.2, "test/ndcg_at_20": float(values.mean())})
            path = Path(config.train.run_dir) / "per_user_test_transductive.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pl.DataFrame({"user": np.arange(USERS), "ndcg@20": values, "recall@20": values}).write_parquet(path)
            mlflow.log_artifact(str(path), artifact_path="per_user")
        return run.info.run_id

    return train


def test_the_cells_are_study_losses_cells_with_the_best_ranking_config():
    grid = study_ranking.jobs(["health", "electronic"], [0, 1])
    assert len(grid) == 12 and all(job.experiment.startswith("study_losses_") for job in grid)
    assert [study_losses.unpack(job) for job in grid[:3]] == [
        ("health", "lightgcn", "best_ranking", 0), ("health", "lightgcn", "slk20", 0), ("health", "lightgcn", "sl", 0)]
    config = study_losses.cell_config(grid[0], "runs")
    assert (config.loss.name, config.loss.params["centered"], config.seed) == ("log_dcg", True, 0)
    assert study_losses.PAIRED == tuple(study_ranking.LOSSES)  # the records keep per-user values of these cells
    subset = study_ranking.jobs(["gowalla"], [0], ["sl", "best_ranking"])  # in the grid's order, whatever the order given
    assert [study_losses.unpack(job) for job in subset] == [("gowalla", "lightgcn", "best_ranking", 0), ("gowalla", "lightgcn", "sl", 0)]
    args = study_ranking.arguments().parse_args(["--losses", "best_ranking"])
    assert args.losses == ["best_ranking"] and study_ranking.arguments().parse_args([]).losses == list(study_ranking.LOSSES)


def test_paired_tests_of_the_ranking_loss_survive_a_fresh_store(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ITEMREC_DATA", str(tmp_path / "cache"))
    argv = ["--datasets", "health", "--seeds", "0", "1", "--quiet", "--run-dir", str(tmp_path / "runs"),
            "--results", str(tmp_path / "out" / "RESULTS.md")]
    calls = []
    assert study_ranking.main([*argv, "--tracking-uri", mlflow_store(tmp_path / "a.db")], train=fake_train(calls)) == 0
    assert len(calls) == 6
    first = harness.read_section((tmp_path / "out" / "RESULTS.md").read_text(), study_ranking.SECTION)
    # best_ranking − slk20 per user: 0.01 + 0.001 · user, mean 0.01 + 0.001 · 19.5 = 0.0295
    assert "| 0 | Log-DCG@20 + SL@20 − SL@20 | +0.0295 |" in first
    assert "| 1 | Log-DCG@20 + SL@20 − SL | +0.0495 |" in first
    assert "| SL | 0.1691 / 0.1235 | 2 |" in first  # the published value beside the measured
    saved = [line for line in (tmp_path / "out" / "records" / "losses.jsonl").read_text().splitlines()]
    assert len(saved) == 6 and all('"per_user": "losses/' in line for line in saved)

    (tmp_path / "out" / "RESULTS.md").unlink()
    assert study_ranking.main([*argv, "--tracking-uri", mlflow_store(tmp_path / "fresh.db")], train=fake_train(calls)) == 0
    assert len(calls) == 6  # everything restored: nothing trains again
    again = harness.read_section((tmp_path / "out" / "RESULTS.md").read_text(), study_ranking.SECTION)
    table = [line for line in again.splitlines() if line.startswith("| ")]
    assert table == [line for line in first.splitlines() if line.startswith("| ")]
