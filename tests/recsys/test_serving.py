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
from types import SimpleNamespace

import pandas as pd
import pytest

from itemrec.recsys.recommend import Recommender, recommend
from itemrec.recsys.serving import DEFAULT_K, RecommenderModel
from tests.recsys.test_recommend import env, trained  # noqa: F401 (fixtures)


class FakeRecommender:
    """Top-k answers that show which call made them."""

    def for_user(self, user, k):
        return [(f"{user}-{rank}", 1.0 / (rank + 1)) for rank in range(k)]

    def for_new_user(self, items, k):
        return [("+".join(map(str, items)), float(k))]


def model_with_fake() -> RecommenderModel:
    model = RecommenderModel()
    model.recommender = FakeRecommender()
    return model


def test_predict_answers_known_and_new_users_in_request_order():
    # a DataFrame of mixed rows holds NaN where a row has no `user` or no `items`
    rows = pd.DataFrame.from_records([{"user": "u3"}, {"items": [7, 9]}, {"user": 12}])
    answer = model_with_fake().predict(None, rows, params={"k": 2})
    assert answer == [
        {"user": "u3", "items": ["u3-0", "u3-1"], "scores": [1.0, 0.5]},
        {"user": None, "items": ["7+9"], "scores": [2.0]},
        {"user": 12, "items": ["12-0", "12-1"], "scores": [1.0, 0.5]},
    ]
    assert len(model_with_fake().predict(None, [{"user": "u1"}])[0]["items"]) == DEFAULT_K == 10


def test_predict_rejects_a_row_with_neither_user_nor_items():
    with pytest.raises(ValueError, match="each row needs a 'user'"):
        model_with_fake().predict(None, pd.DataFrame.from_records([{"user": None, "items": None}]))


def test_load_context_loads_the_exported_recommender(monkeypatch):
    loaded = []
    monkeypatch.setattr(Recommender, "load", staticmethod(lambda path: loaded.append(path) or "recommender"))
    model = RecommenderModel()
    model.load_context(SimpleNamespace(artifacts={"recommender": "/runs/1/model/artifacts/recommender"}))
    assert model.recommender == "recommender" and loaded == ["/runs/1/model/artifacts/recommender"]


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


def test_mlflow_serves_the_recommender(env, tmp_path):  # noqa: F811
    _, uri, run_id, state = env
    port = free_port()
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    out_path, err_path = tmp_path / "serve.out", tmp_path / "serve.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        server = subprocess.Popen(
            [str(mlflow_cli), "models", "serve", "-m", f"runs:/{run_id}/model", "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=err, start_new_session=True, env=server_env(uri),
        )
    try:
        wait_until_up(server, port, err_path)
        status, answer = post(port, {"dataframe_records": [{"user": "u3"}, {"items": [1001, 1002, 1011]}], "params": {"k": 5}})
        assert status == 200, answer
        known, new = answer["predictions"]
        expected_known = recommend(state, run_id, user="u3", items=None, k=5)
        expected_new = recommend(state, run_id, user=None, items=["1001", "1002", "1011"], k=5)
        assert known["user"] == "u3" and new["user"] is None
        assert known["items"] == [i for i, _ in expected_known] and new["items"] == [i for i, _ in expected_new]
        assert known["scores"] == pytest.approx([s for _, s in expected_known], abs=1e-6)
        assert new["scores"] == pytest.approx([s for _, s in expected_new], abs=1e-6)
        status, answer = post(port, {"dataframe_records": [{"user": "nobody"}]})
        assert status == 400 and "user 'nobody': not in this run's data" in answer["message"] + answer.get("stack_trace", "")
    finally:
        stop(server)
