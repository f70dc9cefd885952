"""The run's MLflow model served over HTTP by `mlflow models serve` answers like `itemrec recommend`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from itemrec.recsys.recommend import Recommender, recommend
from tests.recsys.test_recommend import env, trained  # noqa: F401 (fixtures)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def server_env(uri: str) -> dict[str, str]:
    """The server's environment: this interpreter's bin folder first on PATH (`mlflow models serve`
    starts `uvicorn` by name, found there whether or not the environment is activated)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, "MLFLOW_TRACKING_URI": uri}


def test_server_env_puts_the_interpreters_bin_first(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    environment = server_env("sqlite:///x.db")
    assert environment["PATH"].split(os.pathsep) == [str(Path(sys.executable).parent), "/usr/bin", "/bin"]
    assert environment["MLFLOW_TRACKING_URI"] == "sqlite:///x.db"


def stop(server: subprocess.Popen) -> None:
    """Stop the server's process group; one that already exited is fine."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            pass
        try:
            server.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            continue


def test_stop_tolerates_a_server_that_already_exited():
    server = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"], start_new_session=True)
    server.wait(timeout=30)
    stop(server)
    assert server.returncode == 3


def tail(path: Path, chars: int = 2000) -> str:
    """A log's start and end (the first error line and the last traceback)."""
    text = path.read_text()
    return text if len(text) <= 2 * chars else f"{text[:chars]}\n[...]\n{text[-chars:]}"


def wait_until_up(server: subprocess.Popen, port: int, err_path: Path, seconds: float = 120) -> None:
    """Return once the server answers /ping; fail with the server's stderr if it exits or hangs."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                return
        except OSError:
            pass
        code = server.poll()
        if code is not None or time.monotonic() > deadline:
            why = f"exited with code {code}" if code is not None else f"did not answer in {seconds:.0f} s"
            pytest.fail(f"the model server {why}; its stderr:\n{tail(err_path)}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):  # noqa: F811
    """One `mlflow models serve` of the run's model for the whole module: its port."""
    folder, uri, run_id, _ = trained
    logs = tmp_path_factory.mktemp("serve")
    port = free_port()
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    out_path, err_path = logs / "serve.out", logs / "serve.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        server = subprocess.Popen(
            [str(mlflow_cli), "models", "serve", "-m", f"runs:/{run_id}/model", "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=err, start_new_session=True, env=server_env(uri), cwd=folder,
        )
    try:
        wait_until_up(server, port, err_path)
        yield port
    finally:
        stop(server)


def test_mlflow_serves_the_recommender(env, served):  # noqa: F811
    _, _, run_id, state = env
    status, answer = post(served, {"dataframe_records": [{"user": "u3"}, {"items": [1001, 1002, 1011]}], "params": {"k": 5}})
    assert status == 200, answer
    known, new = answer["predictions"]
    expected_known = recommend(state, run_id, user="u3", items=None, k=5)
    expected_new = recommend(state, run_id, user=None, items=["1001", "1002", "1011"], k=5)
    assert known["user"] == "u3" and new["user"] is None
    assert known["items"] == [i for i, _ in expected_known] and new["items"] == [i for i, _ in expected_new]
    assert known["scores"] == pytest.approx([s for _, s in expected_known], abs=1e-6)
    assert new["scores"] == pytest.approx([s for _, s in expected_new], abs=1e-6)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"dataframe_records": [{"user": 999999}]}, "user 999999: not in this run's data"),
        ({"dataframe_records": [{"user": "nobody"}]}, "user 'nobody': not in this run's data"),
        ({"dataframe_records": [{"items": []}]}, "items: give at least one item id"),
        ({"dataframe_records": [{"items": [1001, 5]}]}, "item 5: not in this run's data"),
        ({"dataframe_records": [{"user": "u3"}], "params": {"k": 0}}, "k: must be >= 1"),
        ({"dataframe_records": [{"user": "u3", "items": [1001]}]}, "each row takes 'user' or 'items', not both"),
    ],
)
def test_a_bad_request_answers_400_with_a_one_line_message(served, body, message):
    status, answer = post(served, body)
    assert status == 400, answer
    assert answer["message"] == message and answer["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "stack_trace" not in answer and "Traceback" not in json.dumps(answer) and "/" not in answer["message"]


def test_a_batch_of_1000_mixed_rows_equals_the_recommender(env, served):  # noqa: F811
    _, _, run_id, state = env
    rec = Recommender.from_checkpoint(state, run_id)
    users = rec.users.to_ids(np.flatnonzero(np.diff(rec.seen.indptr))).to_list()
    items = rec.items.ids.to_list()
    rng = np.random.default_rng(0)
    rows = [
        {"user": users[rng.integers(len(users))]} if i % 2 else {"items": rng.choice(items, size=int(rng.integers(1, 5)), replace=False).tolist()}
        for i in range(1000)
    ]
    status, answer = post(served, {"dataframe_records": rows, "params": {"k": 7}})
    assert status == 200, answer
    predictions = answer["predictions"]
    assert len(predictions) == 1000
    for row, got in zip(rows, predictions):
        expected = rec.for_user(row["user"], 7) if "user" in row else rec.for_new_user(row["items"], 7)
        assert got["user"] == row.get("user") and type(got["user"]) is type(row.get("user"))
        assert got["items"] == [i for i, _ in expected] and all(type(i) is type(items[0]) for i in got["items"])
        assert got["scores"] == pytest.approx([s for _, s in expected], abs=1e-6)


def test_pinned_requirements_take_mlflow_skinny_and_leave_out_what_is_not_installed():
    import importlib.metadata as md

    from itemrec.recsys.serving import pinned_requirements

    installed = {"torch": "2.13.0", "mlflow-skinny": "3.17.2"}

    def version(name: str) -> str:
        if name not in installed:
            raise md.PackageNotFoundError(name)
        return installed[name]

    assert pinned_requirements(version) == ["torch==2.13.0", "mlflow-skinny==3.17.2"]
    installed.update({"itemrec": "0.2.0", "mlflow": "3.17.2"})
    assert pinned_requirements(version) == ["itemrec==0.2.0", "torch==2.13.0", "mlflow==3.17.2"]
