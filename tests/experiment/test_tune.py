"""`itemrec tune`: studies that complete, resume, prune, fail gracefully and share a storage."""

import pytest
import yaml

from itemrec.experiment.errors import UserError
from itemrec.experiment.tune import best_overrides, tune
from tests.recsys.test_train import write_config, write_interactions
from tests.stores import mlflow_store

SPACE = {
    "loss.tau": {"type": "float", "low": 0.005, "high": 0.1, "log": True},
    "train.lr": {"type": "float", "low": 0.002, "high": 0.05, "log": True},
}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store(tmp_path / "mlflow.db"))
    write_interactions(tmp_path / "inter.csv", n_users=48, n_items=32)
    return tmp_path


def tune_config(tmp_path, name="study", space=None, **tune_section):
    path = write_config(
        tmp_path, name=name,
        model={"name": "mf", "dim": 8}, loss={"name": "sup_ap"}, sampling={"negatives": "uniform"},
        train={"epochs": 2},
    )
    raw = yaml.safe_load(path.read_text())
    raw["model"] = {"name": "mf", "dim": 8}
    raw["tune"] = {"space": space or SPACE, "metric": "ndcg@10", "n_trials": 4, "pruner": "none", **tune_section}
    path.write_text(yaml.safe_dump(raw))
    return path


def runs_under(parent: str):
    import mlflow

    return mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.mlflow.parentRunId = '{parent}'")


def test_study_completes_resumes_and_nests_runs(workdir):
    import optuna

    cfg = tune_config(workdir)
    first = tune(cfg)
    assert first["trials"] == 4 and first["states"]["COMPLETE"] == 4
    again = tune(cfg, n_trials=6)
    assert again["trials"] == 6 and again["states"]["COMPLETE"] == 6
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{workdir / 'mlflow' / 'optuna.db'}")
    parent = study.user_attrs["mlflow_parent_run_id"]
    children = runs_under(parent)
    assert len(children) == 6
    assert sorted(children["tags.optuna.trial"].astype(int)) == list(range(6))
    assert set(children["tags.optuna.state"]) == {"COMPLETE"}
    assert again["best_value"] == max(t.value for t in study.trials)
    overrides = best_overrides(cfg, "study")
    assert sorted(o.split("=")[0] for o in overrides) == ["loss.tau", "train.lr"]


def test_failing_trial_is_recorded_and_the_study_goes_on(workdir):
    space = {"loss.temperature": {"type": "categorical", "choices": [1e-300, 0.1]}}
    cfg = tune_config(workdir, name="fails", space=space, n_trials=5, sampler="random")
    raw = yaml.safe_load(cfg.read_text())
    raw["loss"] = {"name": "sampled_softmax"}
    raw["seed"] = 0  # its random sampler draws both choices within 5 trials
    cfg.write_text(yaml.safe_dump(raw))
    result = tune(cfg)
    assert result["trials"] == 5
    assert result["states"]["FAIL"] >= 1 and result["states"]["COMPLETE"] >= 1
    import optuna

    study = optuna.load_study(study_name="fails", storage=f"sqlite:///{workdir / 'mlflow' / 'optuna.db'}")
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert all(t.params["loss.temperature"] == 1e-300 and "loss is nan" in t.user_attrs["error"] for t in failed)
    children = runs_under(study.user_attrs["mlflow_parent_run_id"])
    assert "FAIL" in set(children["tags.optuna.state"])


def test_pruner_prunes_hopeless_trials(workdir):
    # hopeless values never drawn before (a value drawn again takes its finished trial's result)
    space = {"train.lr": {"type": "categorical", "choices": [0.05, 0.04, 1e-9, 2e-9, 3e-9, 4e-9]}}
    cfg = tune_config(workdir, name="prune", space=space, n_trials=8, sampler="random", pruner="median")
    raw = yaml.safe_load(cfg.read_text())
    raw["train"]["epochs"] = 3
    raw["seed"] = 0  # its random sampler draws 0.04, 1e-9, both again, then 2e-9: pruned
    cfg.write_text(yaml.safe_dump(raw))
    result = tune(cfg)
    assert result["states"]["PRUNED"] >= 1


def test_two_workers_share_one_storage(workdir):
    import optuna

    cfg = tune_config(workdir, name="shared", n_trials=4)
    tune(cfg, workers=2)
    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{workdir / 'mlflow' / 'optuna.db'}")
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers)) and 4 <= len(numbers) <= 5
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    children = runs_under(study.user_attrs["mlflow_parent_run_id"])
    assert sorted(children["tags.optuna.trial"].astype(int)) == sorted(numbers)  # one run per trial


@pytest.mark.parametrize(
    "space, extra, message",
    [
        ({"train.lrr": {"type": "float", "low": 0.1, "high": 0.2}}, {}, "tune.space.train.lrr: not a valid config field"),
        ({"loss.taux": {"type": "float", "low": 0.1, "high": 0.2}}, {}, "tune.space.loss.taux: not a valid config field"),
        ({"train.lr": {"type": "float", "low": 0.2, "high": 0.2}}, {}, "tune.space.train.lr: empty range"),
        ({"train.lr": {"type": "categorical", "choices": []}}, {}, "non-empty choices"),
        (SPACE, {"metric": "ndcg@7"}, "tune.metric: 'ndcg@7' is not a validation metric"),
    ],
)
def test_bad_search_spaces_fail_before_any_trial(workdir, space, extra, message):
    cfg = tune_config(workdir, name="bad", space=space, **extra)
    with pytest.raises(UserError, match=message.replace(".", r"\.").replace("(", r"\(")):
        tune(cfg)
    assert not (workdir / "runs").exists()


def test_storage_that_cannot_be_opened(workdir):
    with pytest.raises(UserError, match="cannot open the Optuna storage"):
        tune(tune_config(workdir), storage="sqlite:////nonexistent/dir/optuna.db")


def test_same_study_name_with_another_space_is_refused(workdir):
    cfg = tune_config(workdir, name="same", n_trials=1)
    tune(cfg)
    other = tune_config(workdir, name="same", space={"train.lr": {"type": "float", "low": 0.01, "high": 0.02}}, n_trials=1)
    with pytest.raises(UserError, match="created with another search space"):
        tune(other)


def test_retrieval_configs_tune_too(tmp_path, monkeypatch):
    from tests.retrieval.conftest import write_fashion
    from tests.retrieval.test_train import write_config as write_retrieval_config

    write_fashion(tmp_path / "fashion")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store(tmp_path / "mlflow.db"))
    path = write_retrieval_config(tmp_path, name="retrieval_study")
    raw = yaml.safe_load(path.read_text())
    raw["tune"] = {
        "space": {"optim.lr": {"type": "float", "low": 0.001, "high": 0.01, "log": True}},
        "metric": "map@r", "n_trials": 2, "pruner": "none",
    }
    path.write_text(yaml.safe_dump(raw))
    result = tune(path)
    assert result["states"]["COMPLETE"] == 2 and 0 < result["best_value"] <= 1
    bad = dict(raw, tune={**raw["tune"], "metric": "ndcg@20"})
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(UserError, match="tune.metric: 'ndcg@20' is not a validation metric"):
        tune(path)


def test_killed_local_worker_is_reported_and_its_trial_retried(workdir):
    """`--workers 2`: SIGKILL the helper process mid-trial; the parent reports it, fails the stale
    trial once its heartbeat is older than the grace period, runs its retry, and completes."""
    import os
    import signal
    import threading
    import time

    import optuna

    cfg = tune_config(workdir, name="lost", n_trials=6, heartbeat_interval=1, grace_period=6)
    raw = yaml.safe_load(cfg.read_text())
    raw["train"].update(epochs=8, patience=100)
    cfg.write_text(yaml.safe_dump(raw))
    storage = f"sqlite:///{workdir / 'mlflow' / 'optuna.db'}"
    killed: list[int] = []

    def kill_the_helper() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not killed:
            time.sleep(0.2)
            try:
                trials = optuna.load_study(study_name="lost", storage=storage).get_trials(deepcopy=False)
            except Exception:  # not created yet, or the database is busy
                continue
            for t in trials:
                pid = int(t.user_attrs.get("worker", ":0").rsplit(":", 1)[1])
                if t.state == optuna.trial.TrialState.RUNNING and pid != os.getpid() and "mlflow_run_id" in t.user_attrs:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(t.number)
                    return

    killer = threading.Thread(target=kill_the_helper, daemon=True)
    killer.start()
    result = tune(cfg, workers=2)
    killer.join()
    assert len(killed) == 1, "the helper never ran a trial"
    assert len(result["lost_workers"]) == 1 and "status -9" in result["lost_workers"][0]
    assert result["states"]["COMPLETE"] == 6 and result["states"]["FAIL"] == 1
    study = optuna.load_study(study_name="lost", storage=storage)
    retry = next(t for t in study.trials if t.system_attrs.get("failed_trial") == killed[0])
    assert retry.state == optuna.trial.TrialState.COMPLETE
    assert retry.user_attrs["mlflow_run_id"] == study.trials[killed[0]].user_attrs["mlflow_run_id"]


def test_readme_tuning_and_comparing(workdir):
    """The README's commands, word for word but for the sizes and run ids, on a tiny config at the
    path they name: a study, its resumption, two workers, retraining the best trial, comparisons."""
    import shlex

    import optuna
    from typer.testing import CliRunner

    import mlflow
    from itemrec.cli import app
    from tests.readme import section_commands, substitute

    cfg = tune_config(workdir, name="ml100k_lightgcn_supap_tune", n_trials=2)
    raw = yaml.safe_load(cfg.read_text())
    raw["eval"]["ks"] = [10, 20]  # the README compares ndcg@20 and recall@20
    (workdir / "configs" / "recsys").mkdir(parents=True)
    (workdir / "configs" / "recsys" / cfg.name).write_text(yaml.safe_dump(raw))
    storage = f"sqlite:///{workdir / 'mlflow' / 'optuna.db'}"
    commands = section_commands("Tuning and comparing")
    assert len(commands) == 6
    expected_trials = [2, 3, (5, 6)]
    for i, command in enumerate(commands):
        if "RUN_A" in command:
            runs = runs_under(optuna.load_study(study_name="ml100k_lightgcn_supap_tune", storage=storage).user_attrs["mlflow_parent_run_id"])
            command = substitute(command, {"RUN_A": runs["run_id"].iloc[0], "RUN_B": runs["run_id"].iloc[1]})
        command = substitute(command, {"--n-trials 50": "--n-trials 3", "--n-trials 60": "--n-trials 5"})
        result = CliRunner().invoke(app, shlex.split(command)[1:])
        assert result.exit_code == 0, f"{command}\n{result.output}{result.exception!r}"
        if i < 3:
            n = len(optuna.load_study(study_name="ml100k_lightgcn_supap_tune", storage=storage).trials)
            low, high = expected_trials[i] if isinstance(expected_trials[i], tuple) else (expected_trials[i],) * 2
            assert low <= n <= high, (command, n)
        if "--from-study" in command:
            run_id = result.output.split("MLflow run id:")[1].split()[0]
            assert mlflow.get_run(run_id).data.params["train.lr"] is not None
    assert (workdir / "comparison" / "runs.csv").is_file() and (workdir / "comparison" / "paired_test.txt").is_file()


def test_a_trial_left_running_without_heartbeats_does_not_block_the_study(workdir):
    """A RUNNING trial from a worker without heartbeats (it never beats, so it never goes stale)
    is left alone: the worker finishes the other trials and returns instead of waiting forever."""
    import optuna

    cfg = tune_config(workdir, name="legacy", n_trials=2)
    storage = f"sqlite:///{workdir / 'mlflow' / 'optuna.db'}"
    (workdir / "mlflow").mkdir(exist_ok=True)
    optuna.create_study(study_name="legacy", storage=storage, direction="maximize").ask()  # left RUNNING
    result = tune(cfg)
    assert result["states"]["RUNNING"] == 1 and result["states"]["COMPLETE"] == 1



def test_worker_survives_its_trial_failed_as_stale(capsys):
    """A busy worker whose running trial another worker failed as stale drops that result with a
    warning and goes on (Optuna's own loop raises on telling a FAIL trial and would end it)."""
    import optuna

    from itemrec.experiment.tune import optimize

    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def fail_trial(trial, number):  # what another worker's fail_stale_trials does to a silent trial
        if trial.number == number:
            trial.study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        return float(trial.number)

    with pytest.raises(Exception):  # noqa: B017 - Optuna's own loop dies (ValueError, or AssertionError on 5.x)
        optuna.create_study().optimize(lambda t: fail_trial(t, 0), n_trials=1)
    study = optuna.create_study(direction="maximize")
    optimize(study, lambda t: fail_trial(t, 1), total=4)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert [t.value for t in study.trials if t.state.name == "COMPLETE"] == [0.0, 2.0, 3.0]
    assert "failed as stale" in capsys.readouterr().err


def test_optimize_reraises_other_errors():
    from itemrec.experiment.tune import optimize

    class Broken:
        def optimize(self, *args, **kwargs):
            raise ValueError("Cannot open the storage")

    with pytest.raises(ValueError, match="Cannot open the storage"):
        optimize(Broken(), lambda t: 0.0, total=1)

    import optuna

    class LostAfterATrial:  # the storage fails after this worker's trial was recorded COMPLETE
        study = optuna.create_study()

        def optimize(self, objective, **kwargs):
            self.study.optimize(objective, n_trials=1)
            raise RuntimeError("the storage went away")

        def get_trials(self, deepcopy=False):
            return self.study.get_trials(deepcopy=deepcopy)

    with pytest.raises(RuntimeError, match="went away"):
        optimize(LostAfterATrial(), lambda t: 0.0, total=3)


@pytest.mark.parametrize(("warmup", "pruned"), [(1, True), (25, False)])
def test_the_median_pruner_judges_no_trial_before_its_warmup_epoch(tmp_path, warmup, pruned):
    import optuna

    from itemrec.experiment.config import TuneSpec
    from itemrec.experiment.tune import open_study

    spec = TuneSpec.model_validate({"space": SPACE, "warmup_epochs": warmup})
    study, _ = open_study(f"sqlite:///{tmp_path / 'optuna.db'}", "warmup", spec, 0)
    for _ in range(2):  # two finished trials that validated well at epochs 5 to 30
        trial = study.ask()
        for epoch in range(5, 35, 5):
            trial.report(0.5, epoch)
        study.tell(trial, 0.5)
    slow = study.ask()  # a slow starter, far below the median at epoch 10
    slow.report(0.01, 10)
    assert bool(slow.should_prune()) is pruned
    assert isinstance(study.pruner, optuna.pruners.MedianPruner)


def test_a_resumed_study_draws_new_values_and_the_same_ones_each_time(workdir):
    import optuna

    cfg = tune_config(workdir, sampler="random")
    tune(cfg, n_trials=2)
    tune(cfg, n_trials=4)  # resumed one trial at a time, as a study kept after every trial is
    tune(cfg, n_trials=5)
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{workdir / 'mlflow' / 'optuna.db'}")
    drawn = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(drawn)) == 5  # a sampler seeded afresh would repeat trial 0's values at 2 and 4
    again = f"sqlite:///{workdir / 'again.db'}"
    for total in (2, 4, 5):
        tune(cfg, n_trials=total, storage=again, study_name="again")
    replay = optuna.load_study(study_name="again", storage=again)
    assert [tuple(sorted(t.params.items())) for t in replay.trials] == drawn  # deterministic, resumes included


def test_a_full_study_runs_no_trial_more(workdir):
    cfg = tune_config(workdir)
    tune(cfg, n_trials=2)
    again = tune(cfg, n_trials=2)  # the same command again on a full study: nothing to run
    assert again["trials"] == 2


def test_values_drawn_again_reuse_the_finished_trial_instead_of_training(workdir):
    import optuna

    space = {"train.lr": {"type": "categorical", "choices": [0.01, 0.02]}}
    cfg = tune_config(workdir, space=space, sampler="random")
    summary = tune(cfg, n_trials=6)
    assert summary["trials"] == 6 and summary["states"]["COMPLETE"] == 6
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{workdir / 'mlflow' / 'optuna.db'}")
    trained = [t for t in study.trials if "same_as" not in t.user_attrs]
    drawn = {t.params["train.lr"] for t in study.trials}
    assert sorted(t.params["train.lr"] for t in trained) == sorted(drawn)  # each value drawn trained once
    for t in study.trials:
        if "same_as" in t.user_attrs:
            twin = study.trials[t.user_attrs["same_as"]]
            assert twin in trained and twin.params == t.params and twin.value == t.value
    assert len(runs_under(study.user_attrs["mlflow_parent_run_id"])) == len(drawn)  # one MLflow run per trained trial
