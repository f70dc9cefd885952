"""MLflow conventions: run names and descriptions, flattened params, metric keys, and runs logged
into a real (temporary) sqlite store."""

from __future__ import annotations

import os
import random
import re
from types import SimpleNamespace

import pytest

from itemrec.experiment import tracking
from itemrec.experiment.config import flatten
from itemrec.experiment.errors import UserError
from tests.stores import mlflow_store


@pytest.fixture(autouse=True)
def mlflow_uri(monkeypatch):
    """MLflow keeps the last tracking URI it was given in a global and in the environment: both are
    put back after each test."""
    from mlflow.tracking._tracking_service import utils

    monkeypatch.setattr(utils, "_tracking_uri", getattr(utils, "_tracking_uri", None), raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", os.environ.get("MLFLOW_TRACKING_URI", ""))
    if not os.environ["MLFLOW_TRACKING_URI"]:
        monkeypatch.delenv("MLFLOW_TRACKING_URI")


def test_metric_keys_are_mlflow_safe():
    assert tracking.metric_key("val/ndcg@20") == "val/ndcg_at_20"
    assert tracking.metric_key("loss") == "loss"


def test_uri_explicit_then_environment_then_local_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert tracking.resolve_uri("sqlite:///x.db") == "sqlite:///x.db"
    assert tracking.resolve_uri() == "http://tracking:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking.resolve_uri() == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert (tmp_path / "mlflow").is_dir()


def test_run_name(monkeypatch):
    monkeypatch.setattr(tracking.time, "strftime", lambda fmt: {"%m-%d %H:%M": "11-24 14:05"}[fmt])
    monkeypatch.setattr(tracking.uuid, "uuid4", lambda: SimpleNamespace(hex="3f2a9c0d" * 4))
    name = tracking.run_name("ml1m_lightgcn_roadmap", "lightgcn", "roadmap", 0)
    assert name == "ml1m_lightgcn_roadmap lightgcn+roadmap s0 11-24 14:05 3f2a"


def test_run_name_suffix_leaves_the_seeded_random_state_alone():
    random.seed(3)
    name = tracking.run_name("cfg", "mf", "bpr", 12)
    after = random.random()
    random.seed(3)
    assert after == random.random()
    assert re.fullmatch(r"cfg mf\+bpr s12 \d\d-\d\d \d\d:\d\d [0-9a-f]{4}", name)


def test_description_has_a_title_and_one_bullet_per_section():
    text = tracking.describe(
        "ml1m: LightGCN + SupAP",
        {"model": {"name": "lightgcn", "dim": 64, "weights": None}, "loss": "sup_ap", "seed": 0},
    )
    assert text == "**ml1m: LightGCN + SupAP**\n\n- **model**: name=lightgcn, dim=64\n- **loss**: sup_ap\n- **seed**: 0"


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A new sqlite store; the working directory (where local artifacts go) and the run cache in
    `tmp_path`."""
    uri = mlflow_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("ITEMREC_DATA", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return uri


def test_a_run_logs_flat_params_metrics_and_its_description(store, tmp_path):
    import mlflow

    config = {
        "loss": {"name": "sup_ap", "tau": 0.01},
        "model": {"dim": 64, "weights": None},
        "tags": {},
        "note": "x" * 7000,
    }
    with tracking.run("tiny", uri=store, run_name="tiny mf+sup_ap s0", tags={"task": "recsys"}, description="**tiny**") as active:
        tracking.log_params(flatten(config))
        tracking.log_metrics({"ndcg@20": 0.25, "recall@20": 1}, step=3, prefix="val/")
        run_id = active.info.run_id
    client = mlflow.MlflowClient(store)
    run = client.get_run(run_id)
    assert run.data.params == {
        "loss.name": "sup_ap",
        "loss.tau": "0.01",
        "model.dim": "64",
        "model.weights": "",  # None
        "tags": "{}",  # an empty section stays one param
        "note": "x" * 6000,  # clipped to MLflow's limit
    }
    assert run.data.metrics == {"val/ndcg_at_20": 0.25, "val/recall_at_20": 1.0}
    assert [m.step for m in client.get_metric_history(run_id, "val/ndcg_at_20")] == [3]
    assert run.info.run_name == "tiny mf+sup_ap s0" and run.info.status == "FINISHED"
    assert run.data.tags["task"] == "recsys" and run.data.tags[tracking.NOTE] == "**tiny**"
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "tiny" and experiment.tags[tracking.EXPERIMENT_KIND[0]] == tracking.EXPERIMENT_KIND[1]
    assert experiment.artifact_location == (tmp_path / "mlflow" / "artifacts" / "tiny").as_uri()


def test_an_existing_experiment_gets_the_training_view_tag(store):
    import mlflow

    client = mlflow.MlflowClient(store)
    made = client.create_experiment("old", artifact_location=None)
    assert tracking.experiment_id("old", store) == made
    assert client.get_experiment(made).tags[tracking.EXPERIMENT_KIND[0]] == tracking.EXPERIMENT_KIND[1]


def test_an_experiment_created_by_another_process_meanwhile_is_joined(store, monkeypatch):
    """Two workers look up a missing experiment at once; the one that creates second joins it."""
    import mlflow

    made = mlflow.MlflowClient(store).create_experiment("raced")
    tracking.connect(store)
    real = mlflow.get_experiment_by_name
    calls = []

    def stale_first(name):  # the first lookup ran before the other process created it
        calls.append(name)
        return None if len(calls) == 1 else real(name)

    monkeypatch.setattr(mlflow, "get_experiment_by_name", stale_first)
    assert tracking.experiment_id("raced", store) == made
    assert len(calls) == 2


def test_artifacts_of_a_finished_run_are_fetched_once(store, tmp_path, monkeypatch):
    import mlflow

    with tracking.run("tiny", uri=store) as active:
        mlflow.log_text("hello", "notes/a.txt")
        run_id = active.info.run_id
    path = tracking.download_artifact(run_id, "notes/a.txt", store)
    assert path == tmp_path / "cache" / "runs" / run_id / "notes" / "a.txt" and path.read_text() == "hello"
    monkeypatch.setattr(tracking, "connect", lambda uri=None: pytest.fail("asked MLflow again"))
    assert tracking.download_artifact(run_id, "notes/a.txt", store) == path


def test_unknown_runs_and_artifacts_are_user_errors(store):
    with tracking.run("tiny", uri=store) as active:
        run_id = active.info.run_id
    with pytest.raises(UserError, match=f"run {run_id}: has no artifact 'missing.txt'"):
        tracking.download_artifact(run_id, "missing.txt", store)
    with pytest.raises(UserError, match=r"run 'f00': not found in MLflow store sqlite:///"):
        tracking.find_run("f00", store)


def test_an_unusable_store_is_a_user_error():
    with pytest.raises(UserError, match="^MLflow store bogus://store: "), tracking.run("tiny", uri="bogus://store"):
        pass


def test_a_run_reopens_by_id_whatever_experiment_is_active(store):
    import mlflow

    with tracking.run("first", uri=store) as active:
        run_id = active.info.run_id
    mlflow.set_experiment("another")  # e.g. left active by an earlier run in the same process
    with tracking.run("ignored", uri=store, run_id=run_id) as reopened:
        tracking.log_metrics({"later": 1.0})
    assert reopened.info.run_id == run_id
    assert mlflow.get_run(run_id).data.metrics["later"] == 1.0


def test_digest_arrays_follows_content_dtype_and_order():
    import numpy as np

    a, b = np.arange(6, dtype=np.int64), np.array([1, 0, 1], dtype=np.uint8)
    digest = tracking.digest_arrays(a, b)
    assert re.fullmatch(r"[0-9a-f]{10}", digest) and tracking.digest_arrays(a.copy(), b.copy()) == digest
    assert len({digest, tracking.digest_arrays(b, a), tracking.digest_arrays(a.astype(np.int32), b),
                tracking.digest_arrays(a.reshape(2, 3), b), tracking.digest_arrays(a[::-1], b)}) == 5


def test_a_run_logs_its_dataset_once_with_source_digest_and_profile(store, tmp_path):
    import json

    import mlflow

    local = tracking.DatasetInfo("tiny.csv", str(tmp_path / "tiny.csv"), "0123456789", {"users": 3, "items": 2})
    url = tracking.DatasetInfo("ml-100k", "https://example.org/ml-100k.zip", "abcdef0123", {"users": 943})
    with tracking.run("tiny", uri=store) as active:
        tracking.log_dataset(local)
        tracking.log_dataset(local)  # again (a resumed run): nothing new
        run_id = active.info.run_id
    with tracking.run("tiny", uri=store) as other:
        tracking.log_dataset(url)
    (logged,) = mlflow.get_run(run_id).inputs.dataset_inputs
    dataset = logged.dataset
    assert (dataset.name, dataset.digest, dataset.source_type) == ("tiny.csv", "0123456789", "local")
    assert json.loads(dataset.source) == {"uri": (tmp_path / "tiny.csv").as_uri()}
    assert json.loads(dataset.profile) == {"users": 3, "items": 2}
    assert {(t.key, t.value) for t in logged.tags} == {("mlflow.data.context", "training")}
    (logged,) = mlflow.get_run(other.info.run_id).inputs.dataset_inputs
    assert logged.dataset.source_type == "http"
    assert json.loads(logged.dataset.source) == {"url": "https://example.org/ml-100k.zip"}


@pytest.mark.parametrize("message, calls", [
    ("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, datasets.name", 2),
    ('duplicate key value violates unique constraint "dataset_pk"', 2),
    ("API request to endpoint /api/2.0/mlflow/runs/log-inputs failed with error code 403", 1),
])
def test_log_dataset_tries_again_only_after_losing_the_race_for_the_row(store, monkeypatch, message, calls):
    import mlflow

    seen = []

    def log_input(dataset, context):
        seen.append(context)
        if len(seen) == 1:
            raise mlflow.exceptions.MlflowException(message)

    monkeypatch.setattr(mlflow, "log_input", log_input)
    info = tracking.DatasetInfo("tiny.csv", "tiny.csv", "0123456789", {"users": 3})
    if calls == 1:
        with pytest.raises(mlflow.exceptions.MlflowException, match="403"):
            tracking.log_dataset(info)
    else:
        tracking.log_dataset(info)
    assert len(seen) == calls


def _open_and_create(uri: str, start, results) -> None:
    start.wait()  # every process opens the new store at the same moment
    try:
        results.put(tracking.experiment_id("shared", uri))
    except Exception as error:  # reported to the parent
        results.put(f"{type(error).__name__}: {error}")


def test_processes_that_open_a_new_sqlite_store_at_once_all_get_it(tmp_path):
    """Each process would create the store's tables (`table experiments already exists`,
    `duplicate column name`); the lock beside the file lets one create them and the others join."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    for trial in range(2):
        uri = f"sqlite:///{tmp_path / f'store{trial}.db'}"
        start, results = context.Barrier(3), context.Queue()
        workers = [context.Process(target=_open_and_create, args=(uri, start, results)) for _ in range(3)]
        for worker in workers:
            worker.start()
        found = [results.get(timeout=120) for _ in workers]
        for worker in workers:
            worker.join(timeout=60)
        assert len(set(found)) == 1 and str(found[0]).isdigit(), found
