"""`itemrec compare` on runs the test creates."""

import numpy as np
import polars as pl
import pytest
from scipy import stats
from typer.testing import CliRunner

from itemrec.cli import app
from itemrec.experiment.compare import bar_labels, bootstrap_ci, compare, number, paired_test
from itemrec.experiment.config import load_config
from itemrec.experiment.errors import UserError
from itemrec.recsys.frontend import train
from tests.recsys.test_train import write_config, write_interactions
from tests.stores import mlflow_store


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    mp = pytest.MonkeyPatch()
    mp.chdir(tmp)
    mp.setenv("MLFLOW_TRACKING_URI", mlflow_store(tmp / "mlflow.db"))
    write_interactions(tmp / "inter.csv")
    cfg = write_config(tmp, name="cmp", model={"name": "mf", "dim": 8}, sampling={"negatives": "uniform"}, train={"epochs": 2})
    first = train(load_config(cfg, ["train.lr=0.02"]), quiet=True)
    second = train(load_config(cfg, ["train.lr=0.0001"]), quiet=True)
    yield tmp, first, second
    mp.undo()


def test_table_has_differing_params_and_metrics(two_runs):
    tmp, first, second = two_runs
    result = compare(experiment="cmp", metrics=["ndcg@10", "recall@10"], out=tmp / "out")
    table = pl.read_csv(tmp / "out" / "runs.csv")
    assert set(table["run"]) == {first, second}
    assert "train.lr" in table.columns and "model.dim" not in table.columns  # only what differs
    metrics = {row["run"]: row["ndcg@10"] for row in table.iter_rows(named=True)}
    import json

    from itemrec.experiment.loop import run_dir

    for run in (first, second):
        saved = json.loads((run_dir(load_config(tmp / "cmp.yaml"), run) / "metrics.json").read_text())
        assert metrics[run] == pytest.approx(saved["test/ndcg@10"])
    assert table["ndcg@10"].to_list() == sorted(table["ndcg@10"].to_list(), reverse=True)
    markdown_text = (tmp / "out" / "runs.md").read_text()
    assert markdown_text.startswith("| run | run name | train.lr | ndcg@10 | recall@10 |")
    for row in table.iter_rows(named=True):
        assert f"| {number(row['ndcg@10'])} |" in markdown_text  # 4 significant digits
    assert bar_labels(result) == {first: "train.lr=0.02", second: "train.lr=0.0001"}
    assert (tmp / "out" / "validation_curves.png").stat().st_size > 1000
    assert (tmp / "out" / "metrics_ci.png").stat().st_size > 1000
    assert len(result.files) == 4


def test_paired_test_over_shared_users(two_runs):
    _, first, second = two_runs
    test = paired_test(first, second, "ndcg@10", "test", None)
    assert test.users > 10 and 0 <= test.t_pvalue <= 1 and 0 <= test.wilcoxon_pvalue <= 1
    assert test.diff == pytest.approx(test.mean_a - test.mean_b, abs=1e-6)
    assert test.ci[0] <= test.diff <= test.ci[1]
    same = paired_test(first, first, "ndcg@10", "test", None)
    assert same.diff == 0 and same.t_pvalue == 1.0


def test_cli_compare_with_paired_test(two_runs):
    tmp, first, second = two_runs
    result = CliRunner().invoke(app, ["compare", "--experiment", "cmp", "--metrics", "ndcg@10", "--out", str(tmp / "cli"), "--a", first, "--b", second])
    assert result.exit_code == 0, result.output
    assert "paired t p=" in (tmp / "cli" / "paired_test.txt").read_text()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"experiment": "nope"}, "no such MLflow experiment"),
        ({"experiment": "cmp", "metrics": ["ndcg@7"]}, "unknown metric 'ndcg@7'"),
        ({"experiment": "cmp", "filter_string": "params.bogus = 'x'"}, "no finished runs"),
        ({"experiment": "cmp", "filter_string": "not a filter"}, "--filter"),
    ],
)
def test_bad_input(two_runs, kwargs, message):
    tmp, _, _ = two_runs
    with pytest.raises(UserError, match=message):
        compare(out=tmp / "bad", **{"metrics": ["ndcg@10"], **kwargs})


def test_bootstrap_interval_covers_the_mean():
    import numpy as np

    values = np.random.default_rng(0).normal(0.3, 0.1, size=500)
    lo, hi = bootstrap_ci(values)
    assert lo < values.mean() < hi and hi - lo < 0.03


def test_numbers_have_four_significant_digits():
    assert [number(v) for v in (0.010570046, 0.26254, 12.3456, 1.0)] == ["0.01057", "0.2625", "12.35", "1"]


def test_a_param_only_some_runs_logged_is_an_empty_cell(tmp_path):
    import mlflow
    from itemrec.experiment.compare import select

    uri = mlflow_store(tmp_path / "mlflow.db")
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("mixed")
    for params, ndcg in (({"loss.name": "sl_at_k", "loss.tau_w": "2.5"}, 0.3), ({"loss.name": "sampled_softmax"}, 0.2)):
        with mlflow.start_run():
            mlflow.log_params(params)
            mlflow.log_metrics({"test/ndcg_at_20": ndcg, "test/recall_at_20": ndcg})
    table = select("mixed", None, ["ndcg@20"], "test", uri).table
    assert table["loss.tau_w"].to_list() == ["2.5", ""] and table["loss.name"].to_list() == ["sl_at_k", "sampled_softmax"]


def test_paired_test_p_value_does_not_underflow_on_float32_metrics(monkeypatch):
    # per-user metrics are stored as float32; a t statistic of about 15.7 over 30,000 users has
    # p about 2e-55, below float32's smallest number, so a float32 test reports 0
    from itemrec.experiment import compare as module

    rng = np.random.default_rng(0)
    users = np.arange(30_000)
    b = rng.uniform(0, 0.3, users.size)
    a = b + 0.009 + rng.normal(0, 0.1, users.size)
    frames = {"a": pl.DataFrame({"user": users, "ndcg@20": a.astype(np.float32)}),
              "b": pl.DataFrame({"user": users, "ndcg@20": b.astype(np.float32)})}
    monkeypatch.setattr(module, "per_user", lambda run, split, uri: frames[run])
    test = paired_test("a", "b", "ndcg@20", "test", None)
    d = a.astype(np.float32).astype(np.float64) - b.astype(np.float32).astype(np.float64)
    t = d.mean() / (d.std(ddof=1) / np.sqrt(d.size))
    assert 1e-80 < test.t_pvalue < 1e-40
    assert test.t_pvalue == pytest.approx(2 * stats.t.sf(abs(t), d.size - 1), rel=1e-6)
    assert test.diff == pytest.approx(d.mean(), abs=1e-9)
