"""`python -m benchmarks.gpu_check`: on a machine without CUDA it says so and exits 0, touching nothing;
its comparisons fail on metrics that differ or are missing."""

import math
import os

from benchmarks.gpu_check import differences, table, within
from benchmarks.harness import RESULTS, run_module
from tests.stores import mlflow_store


def test_without_cuda_it_says_so_and_exits_0():
    before = RESULTS.read_text()
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    out = run_module("benchmarks.gpu_check", capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "no CUDA device" in out.stdout
    assert RESULTS.read_text() == before


def test_metric_comparison():
    names = ("ndcg@20", "recall@20")
    diff = differences({"ndcg@20": 0.25, "recall@20": 0.19}, {"ndcg@20": 0.2504, "recall@20": 0.19}, names)
    assert math.isclose(diff["ndcg@20"], 0.0004, abs_tol=1e-12) and diff["recall@20"] == 0
    assert within(diff, 1e-3) and not within(diff, 1e-4)
    missing = differences({"ndcg@20": 0.25}, {"ndcg@20": 0.25, "recall@20": 0.19}, names)
    assert missing["recall@20"] == math.inf and not within(missing, 1.0)


def test_table_marks_failures():
    text = table([("a", True, 1.0, "fine"), ("b", False, 2.5, "broken")])
    assert "| a | pass | 1.0 | fine |" in text and "| b | FAIL | 2.5 | broken |" in text


def test_checks_run_end_to_end_on_cpu(tmp_path):
    """The checks' plumbing, with CPU in place of the GPU on tiny data: identical runs pass."""
    from benchmarks.gpu_check import recsys_check, retrieval_check
    from tests.recsys.test_train import write_config, write_interactions

    write_interactions(tmp_path / "inter.csv")
    config = write_config(tmp_path, sampling={"negatives": "uniform"})
    for folder in ("recsys", "retrieval"):  # the checks' stores, at the paths they use
        mlflow_store(tmp_path / folder / "mlflow.db")
    rows = recsys_check(tmp_path / "recsys", 2, config, devices=("cpu", "cpu"))
    assert [ok for _, ok, _, _ in rows] == [True, True]
    assert "|diff| largest 0.0e+00" in rows[0][3]
    small = ("sampler.m=8", "sampler.steps_per_epoch=2", "train.batch_size=32", "model.dim=16")
    [(name, ok, _, detail)] = retrieval_check(tmp_path / "retrieval", "cpu", small, generated=True, per_class=24)
    assert ok and "generated" in name and "map@r" in detail
