"""`itemrec tune` at scale against the real components: a throwaway PostgreSQL cluster holds the
Optuna study and backs an `mlflow server`; workers are separate OS processes, as on many machines.

The cluster runs as an unprivileged user when the tests run as root (PostgreSQL refuses root).
Without the PostgreSQL binaries (and no package to install them from) the module is skipped,
with the reason printed.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.readme import section_commands, substitute
from tests.recsys.test_train import write_config, write_interactions

SECTION = "Tuning at scale: many machines, one PostgreSQL, one MLflow server"

N_TRIALS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path | None:
    """The folder of `initdb` / `pg_ctl`: on PATH, else Debian's /usr/lib/postgresql/N/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").exists() and Path(folder, "pg_ctl").exists():
            return Path(folder)
    return None


def as_server_user(cmd: list[str]) -> list[str]:
    """`cmd` as the unprivileged `nobody` when running as root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", "nobody", "--", *cmd]
    return ["su", "-s", "/bin/sh", "nobody", "-c", " ".join(cmd)]


def readme(prefix: str) -> list[str]:
    """The README section's commands that start with `prefix`."""
    found = [c for c in section_commands(SECTION) if c.startswith(prefix)]
    assert found, f"README section {SECTION!r} has no {prefix!r} command"
    return found


def tool_env(folder: Path) -> dict[str, str]:
    """PATH with this environment's scripts (itemrec, mlflow) and PostgreSQL's client tools."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", ""), str(folder)])
    return {**os.environ, "PATH": path}


def wait_until(check, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    raise AssertionError(f"{what} not ready after {timeout:.0f} s\n{tail}")


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL cluster on 127.0.0.1 (free port) with databases `optuna` and `mlflow`."""
    folder = postgres_bin()
    if folder is None:
        print("PostgreSQL binaries (initdb, pg_ctl) not found; .ci/run installs Debian's postgresql package where apt works")
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found and not installable here")
    psycopg = pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")
    # as root, in /tmp (not under a root-only $TMPDIR): the server's user must reach its folder
    root = Path(tempfile.mkdtemp(prefix="itemrec-pg-", dir="/tmp" if os.geteuid() == 0 else None))
    data, log, port = root / "data", root / "server.log", free_port()
    if os.geteuid() == 0:
        shutil.chown(root, "nobody")
    started = False
    try:
        subprocess.run(as_server_user([str(folder / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
                       check=True, capture_output=True, timeout=120)
        options = f"-h 127.0.0.1 -p {port} -k {root}"
        subprocess.run(as_server_user([str(folder / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"]),
                       check=True, capture_output=True, timeout=90)
        started = True
        url = f"postgresql://postgres@127.0.0.1:{port}"
        for command in readme("createdb "):  # the README's commands, on this cluster
            args = substitute(command, {"-h DBHOST -U itemrec": f"-h 127.0.0.1 -p {port} -U postgres"}).split()
            subprocess.run(args, check=True, capture_output=True, timeout=60, env=tool_env(folder))
        with psycopg.connect(f"{url}/postgres") as conn:
            names = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        assert {"optuna", "mlflow"} <= names
        yield url
    finally:
        if started:
            subprocess.run(as_server_user([str(folder / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                           capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def stop_group(proc: subprocess.Popen) -> None:
    """Stop a process started in its own session, and everything it started."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


@pytest.fixture(scope="module")
def tracking_server(postgres, tmp_path_factory):
    """The README's `mlflow server` backed by the PostgreSQL above, artifacts in a local folder."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port, log = free_port(), root / "server.log"
    [command] = readme("mlflow server ")
    cmd = substitute(command, {
        "postgresql://itemrec:secret@DBHOST": postgres, "/shared/mlflow-artifacts": str(root / "artifacts"),
        "--host 0.0.0.0 --port 5000": f"--host 127.0.0.1 --port {port}",
    }).split()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=tool_env(postgres_bin()))
    uri = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.poll() is None, f"mlflow server exited with {proc.returncode}\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        wait_until(healthy, 120, "mlflow server", log)
        yield uri
    finally:
        stop_group(proc)


def study_config(folder: Path, name: str, epochs: int) -> Path:
    write_interactions(folder / "inter.csv", n_users=48, n_items=32)
    path = write_config(
        folder, name=name, model={"name": "mf", "dim": 8}, loss={"name": "sup_ap"},
        sampling={"negatives": "uniform"}, train={"epochs": epochs, "patience": 100},
    )
    raw = yaml.safe_load(path.read_text())
    raw["tune"] = {
        "space": {"train.lr": {"type": "float", "low": 0.002, "high": 0.05, "log": True}},
        "metric": "ndcg@10", "n_trials": N_TRIALS, "pruner": "none", "heartbeat_interval": 1, "grace_period": 6,
    }
    path.write_text(yaml.safe_dump(raw))
    return path


def start_worker(config: Path, storage: str, study: str, tracking_uri: str, folder: Path, log: str) -> subprocess.Popen:
    """One `itemrec tune` OS process (what each machine runs)."""
    cmd = [str(Path(sys.executable).with_name("itemrec")), "tune", str(config), "--storage", storage, "--study", study]
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "OMP_NUM_THREADS": "1"}
    with open(folder / log, "w") as out:
        return subprocess.Popen(cmd, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture
def workers():
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        stop_group(proc)


def finish(proc: subprocess.Popen, folder: Path, log: str, timeout: float = 240) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    assert proc.returncode == 0, f"worker exited with {proc.returncode}\n{(folder / log).read_text()[-4000:]}"


def nested_runs(tracking_uri: str, parent: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client, client.search_runs(experiments, filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")


def check_parent(client, parent: str) -> None:
    names = {a.path for a in client.list_artifacts(parent)}
    assert {"study.json", "optimization_history.png", "parallel_coordinates.png"} <= names


def test_two_machines_share_one_study(postgres, tracking_server, workers, tmp_path):
    import optuna

    config = study_config(tmp_path, "shared", epochs=2)
    storage = f"{postgres}/optuna"
    for i in range(2):
        workers.append(start_worker(config, storage, "shared", tracking_server, tmp_path, f"worker{i}.log"))
    for i, proc in enumerate(workers):
        finish(proc, tmp_path, f"worker{i}.log")
    study = optuna.load_study(study_name="shared", storage=storage)
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(N_TRIALS))  # none lost, none duplicated
    logs = "".join((tmp_path / f"worker{i}.log").read_text()[-3000:] for i in range(2))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials), ([(t.number, t.state.name, t.user_attrs.get("error")) for t in trials], logs)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both machines worked
    parent = study.user_attrs["mlflow_parent_run_id"]
    client, runs = nested_runs(tracking_server, parent)
    assert sorted(int(r.data.tags["optuna.trial"]) for r in runs) == list(range(N_TRIALS))
    assert {r.data.tags["optuna.state"] for r in runs} == {"COMPLETE"}
    assert {r.info.run_id for r in runs} == {t.user_attrs["mlflow_run_id"] for t in trials}
    check_parent(client, parent)


def test_killed_worker_loses_nothing(postgres, tracking_server, workers, tmp_path):
    """SIGKILL one of two workers once its trial has a checkpoint: the trial is failed when its
    heartbeat goes stale, retried from that checkpoint by the other worker, and the study ends
    with N_TRIALS complete trials and the killed one recorded as failed."""
    import optuna

    epochs = 8
    config = study_config(tmp_path, "killed", epochs=epochs)
    storage = f"{postgres}/optuna"
    for i in range(2):
        workers.append(start_worker(config, storage, "killed", tracking_server, tmp_path, f"worker{i}.log"))
    victim = workers[1]
    tag = f":{victim.pid}"

    def victim_mid_trial() -> bool:
        assert victim.poll() is None, (tmp_path / "worker1.log").read_text()[-3000:]
        try:
            study = optuna.load_study(study_name="killed", storage=storage)
        except KeyError:
            return False
        return any(
            t.state == optuna.trial.TrialState.RUNNING and t.user_attrs.get("worker", "").endswith(tag)
            and "mlflow_run_id" in t.user_attrs
            for t in study.get_trials(deepcopy=False)
        )

    wait_until(victim_mid_trial, 180, "a checkpointed trial on the second worker", tmp_path / "worker1.log")
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    finish(workers[0], tmp_path, "worker0.log")

    study = optuna.load_study(study_name="killed", storage=storage)
    trials = study.get_trials()
    states = [t.state for t in trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == N_TRIALS
    assert states.count(optuna.trial.TrialState.FAIL) == 1
    assert optuna.trial.TrialState.RUNNING not in states
    failed = next(t for t in trials if t.state == optuna.trial.TrialState.FAIL)
    assert failed.user_attrs["worker"].endswith(tag)
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == failed.number)
    assert retry.state == optuna.trial.TrialState.COMPLETE and retry.params == failed.params
    # the retry continued the killed trial's run from its checkpoint: same run, every epoch once
    assert retry.user_attrs["mlflow_run_id"] == failed.user_attrs["mlflow_run_id"]
    parent = study.user_attrs["mlflow_parent_run_id"]
    client, runs = nested_runs(tracking_server, parent)
    by_trial = {int(r.data.tags["optuna.trial"]): r for r in runs}
    complete = sorted(t.number for t in trials if t.state == optuna.trial.TrialState.COMPLETE)
    assert sorted(by_trial) == complete
    resumed = by_trial[retry.number]
    assert resumed.info.run_id == failed.user_attrs["mlflow_run_id"]
    assert resumed.data.tags["optuna.retry_of"] == str(failed.number)
    steps = {m.step for m in client.get_metric_history(resumed.info.run_id, "loss")}
    assert steps == set(range(1, epochs + 1))
    check_parent(client, parent)


def test_readme_tuning_at_scale(postgres, tracking_server, tmp_path, monkeypatch):
    """The README's worker commands (export, tune with 2 local workers, train --from-study) against
    the database and tracking server its first commands started, on a tiny config at its path."""
    import shlex

    import optuna
    from typer.testing import CliRunner

    from itemrec.cli import app

    config = study_config(tmp_path, "ml1m_lightgcn_supap_tune", epochs=2)
    (tmp_path / "configs" / "recsys").mkdir(parents=True)
    config.rename(tmp_path / "configs" / "recsys" / config.name)
    monkeypatch.chdir(tmp_path)
    replacements = {
        "postgresql://itemrec:secret@DBHOST": postgres, "http://TRACKINGHOST:5000": tracking_server,
        "--n-trials 200 --workers 4": "--n-trials 3 --workers 2",
    }
    commands = [substitute(c, replacements) for c in section_commands(SECTION) if c.startswith(("export ", "itemrec "))]
    assert [c.split()[:2] for c in commands] == [["export", f"MLFLOW_TRACKING_URI={tracking_server}"], ["itemrec", "tune"], ["itemrec", "train"]]
    for command in commands:
        if command.startswith("export "):
            key, value = command.removeprefix("export ").split("=", 1)
            monkeypatch.setenv(key, value)
            continue
        result = CliRunner().invoke(app, shlex.split(command)[1:])
        assert result.exit_code == 0, f"{command}\n{result.output}{result.exception!r}"
    study = optuna.load_study(study_name="ml1m-supap", storage=f"{postgres}/optuna")
    assert 3 <= len(study.trials) <= 4 and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    run_id = result.output.split("MLflow run id:")[1].split()[0]  # the retrained best configuration
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_server).get_run(run_id)
    assert run.data.params["train.lr"] == str(study.best_params["train.lr"])
    check_parent(MlflowClient(tracking_server), study.user_attrs["mlflow_parent_run_id"])


def test_runs_logging_one_dataset_at_once_all_succeed(tracking_server):
    """Tuning workers started together log the same dataset at the same moment. MLflow's store looks
    the dataset up, then inserts it, so all but one insert hit its unique key (`dataset_pk`); each
    run must still end with the dataset as its input, the experiment holding it once."""
    import threading

    from mlflow.tracking import MlflowClient

    from itemrec.experiment import tracking

    runs_at_once, rounds = 12, 4
    errors: list[str] = []
    ids: dict[str, list[str]] = {}
    for attempt in range(rounds):
        digest = f"{attempt:010d}"
        dataset = tracking.DatasetInfo("tiny", "https://example.org/tiny.csv", digest, {"users": 3})
        barrier = threading.Barrier(runs_at_once)

        def one_run(digest=digest, dataset=dataset, barrier=barrier) -> None:
            with tracking.run("datasets-at-once", uri=tracking_server) as active:
                barrier.wait()
                try:
                    tracking.log_dataset(dataset)
                except Exception as err:
                    errors.append(str(err)[:300])
                ids.setdefault(digest, []).append(active.info.run_id)

        threads = [threading.Thread(target=one_run) for _ in range(runs_at_once)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors, (len(errors), errors[0])
    client = MlflowClient(tracking_server)
    for digest, runs in ids.items():
        assert len(runs) == runs_at_once
        for run_id in runs:
            assert [d.dataset.digest for d in client.get_run(run_id).inputs.dataset_inputs] == [digest]
