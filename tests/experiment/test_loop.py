"""The shared training loop: the same results as the front ends' own loops of itemrec 0.1, one
early-stopping rule, typed checkpoints, a run without validation data, a diverging loss."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import itemrec.frontends  # noqa: F401  (registers the front ends)
from itemrec.cli import app
from itemrec.experiment import loop
from itemrec.experiment.checkpoint import CHECKPOINT_VERSION, load_checkpoint
from itemrec.experiment.config import load_config
from itemrec.experiment.frontend import FrontEnd, Session, front_end
from itemrec.recsys.config import RecsysConfig
from retrieval.config import RetrievalConfig
from tests.recsys.test_train import write_config, write_interactions
from tests.retrieval.conftest import write_fashion
from tests.retrieval.test_train import CONFIG as RETRIEVAL_CONFIG
from tests.stores import mlflow_store

# Test metrics of fixed-seed runs trained by itemrec 0.1 (before the shared loop), on the data the
# tests generate: the loop must reproduce them exactly, epochs run and best epoch included. SupRank's
# τ 0.01, ρ 100 are set: the values those runs had, before recommendation configs defaulted to τ 0.2, ρ 10.
SUPRANK_THEN = {"tau": 0.01, "rho": 100.0}
RECSYS_BEFORE = {
    "ppr_supap": ({"loss": {"name": "sup_ap", **SUPRANK_THEN}}, 4, {"test/recall@5": 0.675000011920929, "test/ndcg@5": 0.3910474479198456,
                          "test/recall@10": 0.800000011920929, "test/ndcg@10": 0.43159618973731995}),
    "roadmap_early_stop": ({"loss": {"name": "roadmap", **SUPRANK_THEN}, "train": {"epochs": 8, "patience": 1}}, 5,
                           {"test/recall@5": 0.612500011920929, "test/ndcg@5": 0.36367011070251465,
                            "test/recall@10": 0.7875000238418579, "test/ndcg@10": 0.4218796193599701}),
}
RETRIEVAL_BEFORE = {
    "retrieval_roadmap_xbm": ("roadmap", 64, [], 2, 2,
                              {"test/ap_level1": 0.8702198021270043, "test/asi": 0.9099686049631401,
                               "test/h_ap": 0.9170848735811417, "test/ndcg": 0.9841485461572398}),
    "retrieval_early_stop": ("sup_ap", 0, ["train.epochs=5", "train.patience=1", "train.min_epochs=2"], 3, 2,
                             {"test/ap_level1": 0.8743107547361569, "test/asi": 0.9099686049631401,
                              "test/h_ap": 0.9196985377481003, "test/ndcg": 0.9847950357847547}),
}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store(tmp_path / "mlflow.db"))
    write_interactions(tmp_path / "inter.csv")
    return tmp_path


def _train(config_path: Path, *overrides: str) -> tuple[dict, object]:
    result = CliRunner().invoke(app, ["train", str(config_path), *overrides], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    config = load_config(config_path, list(overrides))
    run_id = result.output.split("run id:")[-1].split()[0]
    folder = loop.run_dir(config, run_id)
    return json.loads((folder / "metrics.json").read_text()), load_checkpoint(folder / "last.pt")


@pytest.mark.parametrize("name", list(RECSYS_BEFORE))
def test_recommendation_runs_match_the_previous_loop(workdir: Path, name: str):
    sections, epochs_run, expected = RECSYS_BEFORE[name]
    metrics, last = _train(write_config(workdir, name=name, **sections))
    assert last.epoch == epochs_run
    assert {k: metrics[k] for k in expected} == pytest.approx(expected, rel=1e-6)


@pytest.fixture
def two_threads():
    """The retrieval values were recorded with 2 torch threads: a convolution's float sums depend
    on the thread count (1 thread moves them by 2e-5), and under `pytest -n 2` a worker runs 1."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", list(RETRIEVAL_BEFORE))
def test_retrieval_runs_match_the_previous_loop(workdir: Path, name: str, two_threads):
    loss, xbm, overrides, epochs_run, best_epoch, expected = RETRIEVAL_BEFORE[name]
    write_fashion(workdir / "fashion")
    path = workdir / f"{name}.yaml"
    path.write_text(RETRIEVAL_CONFIG.format(root=workdir / "fashion", loss=loss, xbm=xbm))
    metrics, last = _train(path, *overrides)
    assert (last.epoch, last.best_epoch, metrics["best_epoch"]) == (epochs_run, best_epoch, best_epoch)
    # The values were recorded on an Intel CPU; a convolution's float sums differ with the CPU's
    # vector kernels (an AMD EPYC moves them by up to 2e-5 relative), as with the thread count.
    # A change of the loop moves the epochs above or the metrics by far more.
    assert {k: metrics[k] for k in expected} == pytest.approx(expected, rel=1e-4)


def test_front_ends_satisfy_the_contract():
    for task in ("recsys", "retrieval"):
        fe = front_end(task)
        assert isinstance(fe, FrontEnd) and fe.task == task
    assert front_end("recsys").config_class is RecsysConfig and front_end("retrieval").config_class is RetrievalConfig


def test_checkpoints_are_typed_and_versioned(workdir: Path):
    _, last = _train(write_config(workdir, train={"epochs": 2}))
    assert last.version == CHECKPOINT_VERSION and last.task == "recsys" and last.epoch == 2
    assert set(last.rng) == {"torch", "generator"} and {"optimizer", "n_users", "n_items"} <= set(last.extra)
    assert [row["epoch"] for row in last.history] == [1, 2]
    assert last.best == max(row["val/ndcg@10"] for row in last.history)


class _Scripted:
    """A session whose validation values are given: checks the loop's early-stopping rule alone."""

    learned, select_metric = True, "score"

    def __init__(self, values: list[float | None], losses: list[float] | None = None) -> None:
        self.model = torch.nn.Linear(1, 1)
        self.values, self.losses, self.finished = values, losses, None

    def dataset(self):
        return None  # nothing to log as the run's dataset

    def train_epoch(self, epoch, bar):
        return self.losses[epoch - 1] if self.losses else 1.0 / epoch

    def validate(self, epoch, bar):
        value = self.values[epoch - 1]
        return None if value is None else ({"score": value}, {"val/score": value})

    def state(self):
        return {}

    def load_state(self, extra):
        pass

    def finish(self, folder, run_id, history, best_epoch):
        self.finished = (len(history), best_epoch)
        return {"best_epoch": best_epoch}


def _scripted_front_end(session: _Scripted):
    base = front_end("recsys")

    class ScriptedFrontEnd:
        task, config_class = "recsys", base.config_class

        def check(self, config):
            pass

        def validation_metrics(self, config):
            return {"score"}

        def labels(self, config):
            return {}

        def build(self, config, device, info, generator, quiet):
            return session

        def evaluate_command(self, *args, **kwargs):
            raise NotImplementedError

    return ScriptedFrontEnd()


@pytest.mark.parametrize(
    "values, patience, min_epochs, eval_every, epochs_run, best_epoch",
    [
        ([0.1, 0.3, 0.2, 0.2, 0.5, 0.6], 2, 1, 1, 4, 2),   # two validations without a better value
        ([0.1, 0.3, 0.2, 0.2, 0.2, 0.6], 2, 5, 1, 5, 2),   # ... but never before min_epochs
        ([0.1, 0.3, 0.2, 0.2, 0.5, 0.6], 3, 1, 1, 6, 6),
        ([0.5, 0.4, 0.3, 0.2, 0.1, 0.0], 2, 1, 2, 6, 2),   # patience counts validations, not epochs
        ([None] * 6, 1, 1, 1, 6, 6),                       # no validation data: the last epoch is kept
    ],
)
def test_one_early_stopping_rule(workdir, values, patience, min_epochs, eval_every, epochs_run, best_epoch):
    session = _Scripted(values)
    config = load_config(write_config(workdir), [
        "train.epochs=6", f"train.patience={patience}", f"train.min_epochs={min_epochs}", f"train.eval_every={eval_every}",
    ])
    loop.train(_scripted_front_end(session), config, quiet=True)
    assert session.finished == (epochs_run, best_epoch)
    assert isinstance(session, Session)


def test_a_diverging_loss_is_one_line(workdir):
    session = _Scripted([0.1, 0.2, 0.3], losses=[1.0, math.nan, 1.0])
    config = load_config(write_config(workdir), ["train.epochs=3"])
    with pytest.raises(loop.TrainingDiverged, match=r"^loss is nan at epoch 2; lower the learning rate"):
        loop.train(_scripted_front_end(session), config, quiet=True)


def test_epochs_without_validation_print_a_dash_not_nan(workdir, capsys):
    session = _Scripted([0.25, 0.5, 0.4, 0.75])
    config = load_config(write_config(workdir), ["train.epochs=4", "train.eval_every=2"])
    loop.train(_scripted_front_end(session), config, quiet=False)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 4 and not any("nan" in line for line in lines)
    assert "score    -    best" in lines[0] and "score 0.5000  best 0.5000" in lines[1]
    assert "score 0.7500  best 0.7500" in lines[3]


def test_ranks_leave_together_after_a_run_and_not_after_a_failure(workdir, monkeypatch):
    """Under torchrun every rank waits at a barrier before tearing its group down (rank 0 tests
    and logs after the others finish training); a failed run tears down without waiting."""
    from itemrec.experiment import distributed

    calls = []
    monkeypatch.setattr(distributed, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(distributed, "teardown", lambda: calls.append("teardown"))
    config = load_config(write_config(workdir), ["train.epochs=2"])
    loop.train(_scripted_front_end(_Scripted([0.1, 0.2])), config, quiet=True)
    assert calls == ["barrier", "teardown"]
    calls.clear()
    with pytest.raises(loop.TrainingDiverged):
        loop.train(_scripted_front_end(_Scripted([0.1, 0.2], losses=[math.nan, 1.0])), config, quiet=True)
    assert calls == ["teardown"]
