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

import pytest

from itemrec.recsys.recommend import recommend
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


def test_mlflow_serves_the_recommender(env, tmp_path):  # noqa: F811
    _, uri, run_id, state = env
    port = free_port()
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [str(mlflow_cli), "models", "serve", "-m", f"runs:/{run_id}/model", "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, "MLFLOW_TRACKING_URI": uri},
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the model server did not start:\n" + (tmp_path / "serve.log").read_text()[-2000:])
                time.sleep(0.5)
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
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
