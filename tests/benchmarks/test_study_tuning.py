"""benchmarks/study_tuning.py: every cell's config and search space, the trials kept in the records and
restored into a fresh storage, and the study end to end with stand-ins for tuning and training on real
Optuna and MLflow stores."""

from __future__ import annotations

import json
import math
from pathlib import Path

from benchmarks import study_tuning
from itemrec.experiment.config import load_config
from itemrec.experiment.registry import LOSSES, accepted_parameters
from tests.benchmarks.test_study_losses import fake_train
from tests.stores import mlflow_store


def test_every_cell_searches_the_shared_grid_and_its_losss_keys():
    grid = study_tuning.cells(["health", "electronic", "gowalla"], ["mf", "lightgcn"], list(study_tuning.LOSSES))
    assert len(grid) == 5 * 13  # Gowalla with LightGCN only
    for dataset, model, loss in grid:
        path, overrides = study_tuning.base(dataset, model, loss)
        config = load_config(path, [*study_tuning.TRIAL_OVERRIDES, *overrides])
        space = config.tune.space
        assert space["train.lr"].choices == [0.1, 0.01, 0.001] and space["train.weight_decay"].choices == [0.0, 1e-4, 1e-5, 1e-6]
        assert config.train.patience == 8 and config.data.split == "given" and config.name == f"tuning_{dataset}_{model}_{loss}"
        for key in space:  # every searched key is a parameter of the loss or a key of the training section
            section, name = key.split(".")
            assert name in (accepted_parameters(LOSSES[config.loss.name]) if section == "loss" else config.train.model_dump()), key
    supap = load_config(*study_tuning.base("health", "lightgcn", "supap"))
    assert supap.loss.name == "sup_ap" and "temperature" not in supap.loss.params  # SL's section replaced whole
    assert supap.train.score == "cosine" and supap.sampling.negatives_per_row == 1000  # SL's protocol kept
    bpr = load_config(*study_tuning.base("health", "mf", "bpr"))
    assert (bpr.train.score, bpr.sampling.unit) == ("dot", "interaction")


def add(study, values: list[float | None], lr: float = 0.01) -> None:
    """Finished trials on `study`: a value is a complete trial, None a pruned one."""
    import optuna

    space = study_tuning.space("sl")
    distributions = {k: optuna.distributions.CategoricalDistribution(v["choices"]) for k, v in space.items()}
    for value in values:  # the n-th trial of the study has the n-th temperature
        params = {"train.lr": lr, "train.weight_decay": 0.0, "loss.temperature": [0.05, 0.1, 0.2, 0.5][len(study.trials) % 4]}
        state = optuna.trial.TrialState.COMPLETE if value is not None else optuna.trial.TrialState.PRUNED
        study.add_trial(optuna.trial.create_trial(state=state, params=params, distributions=distributions, value=value,
                                                  intermediate_values={5: 0.05, 10: value or 0.04}))


def open_sl_study(storage: str):
    from itemrec.experiment import tune

    path, overrides = study_tuning.base("health", "mf", "sl", n_trials=4)
    spec = load_config(path, overrides).tune
    return tune.open_study(storage, study_tuning.study_name("health", "mf", "sl"), spec, 0)[0], spec


def test_trials_are_kept_and_restored_into_a_fresh_storage(tmp_path: Path):
    study, spec = open_sl_study(f"sqlite:///{tmp_path / 'first.db'}")
    add(study, [0.11, None, 0.13])
    folder = tmp_path / "records"
    study_tuning.save_trials(study, folder)
    kept = study_tuning.kept_trials(folder, study.study_name)
    assert [r["state"] for r in kept] == ["COMPLETE", "PRUNED", "COMPLETE"] and kept[2]["value"] == 0.13
    assert study_tuning.best_params(folder, study.study_name)["loss.temperature"] == 0.2  # the third trial's
    for i, record in enumerate(kept):  # as if they had run elsewhere for 10, 20 and 30 s
        record["seconds"] = 10.0 * (i + 1)
    fresh, _ = open_sl_study(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert study_tuning.restore_trials(fresh, spec, kept) == 3
    assert [t.state.name for t in fresh.trials] == ["COMPLETE", "PRUNED", "COMPLETE"]
    assert fresh.best_value == 0.13 and fresh.trials[1].intermediate_values == {5: 0.05, 10: 0.04}
    assert [r["seconds"] for r in study_tuning.trial_lines(fresh)] == [10.0, 20.0, 30.0]  # not the restore's 0 s
    assert study_tuning.restore_trials(fresh, spec, kept) == 0  # nothing twice
    add(fresh, [0.12])  # the study went on elsewhere: saving merges, other studies' lines stay
    other = dict(kept[0], study="tuning_health_mf_bpr")
    (folder / "tuning-trials.jsonl").write_text((folder / "tuning-trials.jsonl").read_text() + json.dumps(other) + "\n")
    study_tuning.save_trials(fresh, folder)
    assert len(study_tuning.kept_trials(folder, study.study_name)) == 4
    assert len(study_tuning.kept_trials(folder, "tuning_health_mf_bpr")) == 1


def test_the_study_tunes_tests_the_best_setting_and_resumes(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(study_tuning, "PNG", tmp_path / "study_tuning.png")
    storage = f"sqlite:///{tmp_path / 'tuning.db'}"
    argv = ["--datasets", "health", "--models", "mf", "--losses", "sl", "--seeds", "0", "1", "--trials", "3", "--quiet",
            "--tracking-uri", mlflow_store(tmp_path / "mlflow.db"), "--run-dir", str(tmp_path / "runs"),
            "--results", str(tmp_path / "RESULTS.md"), "--storage", storage]
    tuned = []

    def fake_tune(path, overrides, *, storage, study_name, n_trials, tracking_uri, summary):
        from itemrec.experiment import tune

        spec = load_config(path, overrides).tune
        study = tune.open_study(storage, study_name, spec, 0)[0]
        add(study, [0.10, 0.12, None][len(study.trials):n_trials], lr=0.1)
        tuned.append((study_name, "train.patience=8" in overrides, n_trials, summary))
        return {"study": study_name}

    calls = []
    assert study_tuning.main(argv, train=fake_train(calls), tune=fake_tune) == 0
    assert tuned == [("tuning_health_mf_sl", True, n, n == 3) for n in (1, 2, 3)]  # kept after every trial
    assert calls == [("health", "mf", "sl", 0), ("health", "mf", "sl", 1)]
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| SL | 0.1261 | lr 0.1, wd 0, temperature 0.1 | 2 / 1 | 0.1200 | 2 |" in text
    assert "### Electronic, LightGCN" in text and "| BPR | 0.1234 | not tuned |" in text  # every cell, run or not
    assert (tmp_path / "records" / "tuning-trials.jsonl").is_file() and (tmp_path / "records" / "tuning.jsonl").is_file()
    # a fresh storage and store: the trials and the test runs come back from the records, nothing reruns
    argv = [a.replace("tuning.db", "again.db").replace("mlflow.db", "mlflow2.db") for a in argv]
    argv[argv.index("--tracking-uri") + 1] = mlflow_store(tmp_path / "mlflow2.db")
    assert study_tuning.main(argv, train=fake_train(calls), tune=fake_tune) == 0
    assert len(calls) == 2 and tuned[3:] == [("tuning_health_mf_sl", True, 3, True)]
    import optuna

    assert len(optuna.load_study(study_name="tuning_health_mf_sl", storage=argv[argv.index("--storage") + 1]).trials) == 3


def test_the_test_config_is_the_cells_protocol_with_the_best_setting(tmp_path: Path):
    study, _ = open_sl_study(f"sqlite:///{tmp_path / 'first.db'}")
    add(study, [0.11, 0.14], lr=0.001)
    study_tuning.save_trials(study, tmp_path)
    job = study_tuning.test_jobs([("health", "mf", "sl")], [2])[0]
    config = study_tuning.test_config(job, "runs", tmp_path)
    assert (config.train.lr, config.loss.params["temperature"], config.seed) == (0.001, 0.1, 2)
    assert (config.train.patience, config.train.epochs, config.tune is None) == (40, 200, True)
    assert config.name == "study_tuning_health"


SHIFT = {"sl": 0.0, "slk20": 0.02, "log_dcg_k20": 0.03}


def per_user_train(calls: list):
    """Logs a test run whose per-user NDCG@20 is the seed's noise plus the loss's `SHIFT`."""
    import numpy as np
    import polars as pl

    from tests.benchmarks.test_study_losses import params

    def train(config, *, tracking_uri, quiet, tags, resume=None):
        from itemrec.experiment import tracking

        mlflow = tracking.connect(tracking_uri)
        mlflow.set_experiment(config.name)
        calls.append((tags["study.loss"], config.seed))
        values = np.random.default_rng(config.seed).uniform(0.0, 0.5, 30) + SHIFT[tags["study.loss"]]
        with mlflow.start_run(tags=tags) as run:
            mlflow.log_params(params(config))
            mlflow.log_metrics({"test/recall_at_20": 0.2, "test/ndcg_at_20": float(values.mean())})
            path = Path(config.train.run_dir) / "per_user_test_transductive.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pl.DataFrame({"user": np.arange(30), "ndcg@20": values}).write_parquet(path)
            mlflow.log_artifact(str(path), artifact_path="per_user")
        return run.info.run_id

    return train


def test_paired_tests_set_the_ranking_loss_against_sl_at_k_and_sl_from_the_records(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(study_tuning, "PNG", tmp_path / "study_tuning.png")

    def fake_tune(path, overrides, *, storage, study_name, n_trials, tracking_uri, summary):
        from itemrec.experiment import tune

        spec = load_config(path, overrides).tune
        study = tune.open_study(storage, study_name, spec, 0)[0]
        import optuna

        distributions = {k: optuna.distributions.CategoricalDistribution(p.choices) for k, p in spec.space.items()}
        while len(study.trials) < n_trials:
            params = {k: p.choices[0] for k, p in spec.space.items()}
            study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=0.1))
        return {}

    calls = []
    base = ["--datasets", "health", "--models", "mf", "--losses", "sl", "slk20", "log_dcg_k20", "--seeds", "0", "--trials", "1",
            "--quiet", "--run-dir", str(tmp_path / "runs"), "--results", str(tmp_path / "RESULTS.md")]
    for n, store in enumerate(("a", "b")):  # the second time on fresh stores: the records stand in
        argv = [*base, "--tracking-uri", mlflow_store(tmp_path / f"{store}.db"), "--storage", f"sqlite:///{tmp_path / store}.optuna"]
        assert study_tuning.main(argv, train=per_user_train(calls), tune=fake_tune) == 0
        assert len(calls) == 3  # trained once
        text = (tmp_path / "RESULTS.md").read_text()
        assert "| Health, MF | 0 | Log-DCG@20 centered − SL@20 | +0.0100 |" in text, n
        assert "| Health, MF | 0 | Log-DCG@20 centered − SL | +0.0300 |" in text, n


def test_the_time_line_sums_the_timed_runs_and_counts_the_resumed_ones():
    tested = study_tuning.Tested
    results = {("health", "mf", "sl", 0): tested(0.1, 0.1, 1800.0, "a"), ("health", "mf", "sl", 1): tested(0.1, 0.1, 5400.0, "b")}
    assert study_tuning.time_line(7200.0, 16, results) == (
        "CPU time: 2.0 h of tuning (16 trials), 2.0 h of test runs (2 runs); one process on one core each.")
    results[("health", "mf", "sl", 2)] = tested(0.1, 0.1, math.nan, "c")
    assert study_tuning.time_line(7200.0, 16, results) == (
        "CPU time: 2.0 h of tuning (16 trials), 2.0 h of test runs (3 runs, 1 of them resumed and not timed); "
        "one process on one core each.")
