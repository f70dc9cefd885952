"""benchmarks/study.py and the study_recsys modules: the t-interval, the dry-run listing, resuming from
MLflow (a second invocation runs nothing), and the tables, on a tiny generated dataset."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from benchmarks import study, study_recsys, study_recsys_grid, study_recsys_report
from tests.recsys.test_train import write_interactions
from tests.stores import mlflow_store


def test_mean_ci_is_the_student_t_interval_of_a_hand_computed_case():
    # values 0.2, 0.3, 0.4: mean 0.3, sample sd 0.1, t(0.975, 2 dof) = 4.302652729911275
    mean, half = study.mean_ci([0.2, 0.3, 0.4])
    assert mean == pytest.approx(0.3)
    assert half == pytest.approx(4.302652729911275 * 0.1 / math.sqrt(3))
    # 1, 2, 3, 4, 5: sd sqrt(2.5), t(0.975, 4 dof) = 2.7764451051977987
    assert study.mean_ci([1, 2, 3, 4, 5])[1] == pytest.approx(2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5))
    assert math.isnan(study.mean_ci([0.5])[1]) and study.mean_ci([0.5])[0] == 0.5
    assert all(math.isnan(v) for v in study.mean_ci([]))


def test_cells():
    assert study.cell([0.2, 0.3, 0.4]) == f"0.3000 ± {4.302652729911275 * 0.1 / math.sqrt(3):.4f}"
    assert study.cell([0.5]) == "0.5000" and study.cell([]) == "—"
    assert study.cell([0.5, 0.5], scale=100, digits=2) == "50.00 ± 0.00"


def test_grid_has_the_rows_of_the_study_and_split_seeds_only_where_asked():
    grid = study_recsys_grid.jobs(["ml-100k"], [r.name for r in study_recsys_grid.ROWS], [0, 1, 2], [0, 1, 2], ["transductive"])
    rows = {job.tags["study.row"] for job in grid}
    assert len(rows) == 23 and {"lightgcn_supap_ppr", "ngcf_roadmap", "mf_softmax", "ease", "lightgcn_log_dcg", "lightgcn_log_dcg_slk"} <= rows
    assert "lightgcn_log_dcg_tuned" in rows and not {"mf_log_dcg", "mf_log_dcg_tuned", "mf_log_dcg_slk"} & rows
    assert "lightgcn_supap_tuned" in rows and not {"mf_supap_tuned", "mf_roadmap_tuned", "mf_supndcg_tuned"} & rows
    by_row = {}
    for job in grid:
        by_row.setdefault(job.tags["study.row"], []).append((job.tags["study.seed"], job.tags["study.split_seed"]))
    assert sorted(by_row["lightgcn_roadmap"]) == [("0", "0"), ("0", "1"), ("0", "2"), ("1", "0"), ("2", "0")]
    assert sorted(by_row["mf_roadmap"]) == [("0", "0"), ("1", "0"), ("2", "0")]
    assert sorted(by_row["ease"]) == [("0", "0"), ("0", "1"), ("0", "2")]  # the seed does not matter
    assert len({job.key for job in grid}) == len(grid)
    assert "lightgcn_roadmap_ppr600" not in rows  # a row of ml-1m only
    ml1m = study_recsys_grid.jobs(["ml-1m"], ["lightgcn_roadmap_ppr600"], [0, 1, 2], [0, 1, 2], ["transductive"])
    assert [(j.tags["study.seed"], j.tags["study.split_seed"]) for j in ml1m] == [("0", "0"), ("1", "0"), ("2", "0")]


def test_row_configs_are_valid_and_carry_the_study_settings():
    from itemrec.experiment.config import validate

    grid = study_recsys_grid
    raw = grid.config_dict(grid.ROW["mf_softmax"], "ml-1m", "inductive", 2, 0, 150, 10, "runs")
    config = validate(raw, "test")
    assert (config.model.name, config.loss.name, config.loss.params["temperature"]) == ("mf", "sampled_softmax", 0.1)
    assert (config.sampling.negatives_per_row, config.train.epochs, config.train.patience) == (1024, 150, 10)
    assert (config.seed, config.data.split_seed, config.data.split, config.data.source) == (2, 0, "inductive", "ml-1m")
    ppr = validate(grid.config_dict(grid.ROW["lightgcn_roadmap_ppr"], "ml-100k", "transductive", 0, 1, 9, 3, "r"), "t")
    assert (ppr.sampling.negatives, ppr.loss.params["tau"], ppr.loss.params["rho"], ppr.train.score) == ("ppr", 0.05, 1.0, "cosine")
    skip = validate(grid.config_dict(grid.ROW["lightgcn_roadmap_ppr600"], "ml-1m", "transductive", 0, 0, 9, 3, "r"), "t")
    assert (skip.sampling.negatives, skip.sampling.ppr_skip, ppr.sampling.ppr_skip) == ("ppr", 600, 100)
    assert grid.ROW["lightgcn_roadmap_ppr600"].label == "LightGCN, ROADMAP, PPR skip 600"
    bpr = validate(grid.config_dict(grid.ROW["lightgcn_bpr"], "ml-100k", "transductive", 0, 0, 40, 3, "r", 30), "t")
    assert (bpr.train.score, bpr.train.min_epochs) == ("dot", 30)
    assert grid.config_dict(grid.ROW["lightgcn_bpr"], "ml-100k", "transductive", 0, 0, 9, 3, "r", 30)["train"]["min_epochs"] == 9


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch) -> Path:
    """Configs named like the study's base configs, on generated interactions."""
    monkeypatch.chdir(tmp_path)
    write_interactions(tmp_path / "inter.csv", n_users=60, n_items=40)
    configs = tmp_path / "configs"
    configs.mkdir()
    data = {"source": str(tmp_path / "inter.csv"), "split": "random", "ratios": [0.6, 0.2, 0.2]}
    base = {
        "task": "recsys", "seed": 0, "device": "cpu", "data": data,
        "model": {"name": "lightgcn"}, "loss": {"name": "sup_ap"},
        "sampling": {"negatives": "uniform", "positives_per_row": 4, "negatives_per_row": 8},
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.01, "patience": 2},
        "eval": {"ks": [10, 20], "metric": "ndcg@20", "batch_users": 16},
    }
    (configs / "ml100k_lightgcn_supap_uniform.yaml").write_text(yaml.safe_dump(base))
    ease = {"task": "recsys", "seed": 0, "data": data, "model": {"name": "ease"}, "eval": base["eval"]}
    (configs / "ml100k_ease.yaml").write_text(yaml.safe_dump(ease))
    monkeypatch.setattr(study_recsys_grid, "CONFIGS", configs)
    monkeypatch.setattr(study_recsys_report, "CHARTS", tmp_path)
    return tmp_path


def args(folder: Path, *extra: str) -> list[str]:
    return ["--datasets", "ml-100k", "--rows", "lightgcn_bpr", "lightgcn_supap", "ease", "--split-seeds",
            "--protocols", "transductive", "--cap", "2", "--tracking-uri", mlflow_store(folder / "mlflow.db"),
            "--run-dir", str(folder / "runs"), "--results", str(folder / "RESULTS.md"), "--quiet", *extra]


def test_study_runs_resumes_lists_and_reports(tiny: Path, capsys, monkeypatch):
    assert study_recsys.main(args(tiny, "--seeds", "0", "--dry-run")) == 0
    listing = capsys.readouterr().out
    assert "3 runs in the study: 0 finished, 3 to run" in listing
    assert listing.count("would run") == 3 and "row=lightgcn_supap seed=0 split_seed=0" in listing
    assert not (tiny / "runs").exists()  # nothing ran

    other = "<!-- study-recsys-ml-1m:start -->\nml-1m tables\n<!-- study-recsys-ml-1m:end -->\n"
    (tiny / "RESULTS.md").write_text(other)
    assert study_recsys.main(args(tiny, "--seeds", "0")) == 0
    capsys.readouterr()
    assert (tiny / "RESULTS.md").read_text().startswith(other)  # another dataset's section is left alone

    executed = []
    monkeypatch.setattr(study_recsys, "execute", lambda job, *a: executed.append(job))
    assert study_recsys.main(args(tiny, "--seeds", "0")) == 0  # everything finished: nothing to run
    assert executed == [] and "3 runs in the study: 3 finished, 0 to run" in capsys.readouterr().out
    assert study_recsys.main(args(tiny, "--seeds", "0", "1", "--dry-run")) == 0  # only the new seed's learned rows
    listing = capsys.readouterr().out
    assert "5 runs in the study: 3 finished, 2 to run" in listing
    assert "row=lightgcn_bpr seed=1" in listing and "row=ease seed=1" not in listing and executed == []

    section = (tiny / "RESULTS.md").read_text()
    assert "<!-- study-recsys-ml-100k:start -->" in section and "### ml-100k, transductive" in section
    lines = {line.split(" | ")[0]: line for line in section.splitlines() if line.startswith("| ")}
    assert "| LightGCN, SupAP" in lines and "| EASE" in lines and "| LightGCN, BPR" in lines
    assert "2 (" in lines["| LightGCN, SupAP"]  # epochs run (best) of the capped run
    assert "best ranking loss on LightGCN (mean validation ndcg@20): LightGCN, SupAP" in section
    test_row = next(line for line in section.splitlines() if line.startswith("| LightGCN, SupAP vs LightGCN, BPR | ndcg@10"))
    assert "| 1 | " in test_row  # one seed
    assert (tiny / "study_recsys_ml-100k.png").stat().st_size > 0


def test_a_run_that_stopped_before_the_minimum_or_ran_to_another_cap_is_run_again(tmp_path: Path):
    import pandas as pd

    import mlflow

    mlflow.set_tracking_uri(mlflow_store(tmp_path / "mlflow.db"))
    mlflow.set_experiment("study_recsys_ml1m")

    def logged(epochs: int, cap: int) -> pd.Series:
        with mlflow.start_run() as run:
            for step in range(1, epochs + 1):
                mlflow.log_metric("epoch_seconds", 1.0, step=step)
        return pd.Series({"run_id": run.info.run_id, "params.train.epochs": str(cap)})

    def key(row: str) -> tuple:
        return tuple(sorted({"study.name": "recsys", "study.dataset": "ml-1m", "study.row": row}.items()))

    uri, caps = mlflow.get_tracking_uri(), {"ml-1m": 150}
    assert study_recsys_grid.MIN_EPOCHS["ml-1m"] == 30
    early, late = logged(13, 150), logged(41, 150)
    assert not study_recsys.stands(key("lightgcn_bpr"), early, caps, uri)  # ended in the plateau: rerun
    assert study_recsys.stands(key("lightgcn_bpr"), late, caps, uri)  # the same run under both protocols
    assert study_recsys.stands(key("mf_supap"), logged(30, 150), caps, uri)
    assert not study_recsys.stands(key("mf_supap"), logged(29, 150), caps, uri)
    assert study_recsys.stands(key("lightgcn_bpr"), late, {"ml-1m": 400}, uri)  # early stopping ended it first
    capped = logged(150, 150)
    assert study_recsys.stands(key("lightgcn_bpr"), capped, caps, uri)
    assert not study_recsys.stands(key("lightgcn_bpr"), capped, {"ml-1m": 400}, uri)  # was still allowed to go on
    assert study_recsys.stands(key("lightgcn_bpr"), logged(12, 12), {"ml-1m": 12}, uri)  # a cap below the minimum
    assert study_recsys.stands(key("ease"), pd.Series({"run_id": "none"}), caps, uri)  # baselines train nothing
