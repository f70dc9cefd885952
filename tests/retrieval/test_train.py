"""End to end on a tiny generated Fashion-MNIST: `itemrec train` through the CLI, evaluate, search,
resume, and config errors. Everything is written under the test's temporary directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from itemrec.cli import app
from itemrec.experiment.checkpoint import resolve_checkpoint
from itemrec.experiment.config import load_config
from itemrec.experiment.errors import UserError
from retrieval import train as train_module
from retrieval.evaluate import evaluate_command
from retrieval.frontend import train
from retrieval.search import search_command
from tests.retrieval.conftest import class_images, write_fashion
from tests.stores import mlflow_store

CONFIG = """\
task: retrieval
seed: 0
device: cpu
data: {{dataset: fashion_mnist, root: {root}, protocol: unseen_classes, val_fraction: 0.2}}
sampler: {{name: m_per_class, m: 8, steps_per_epoch: 3}}
model: {{backbone: small_cnn, dim: 16}}
loss: {{name: {loss}}}
xbm: {{size: {xbm}, start_epoch: 2}}
optim: {{lr: 0.003, backbone_lr: 0.003, warmup_epochs: 1}}
train: {{epochs: 2, batch_size: 32, eval_batch_size: 64, eval_chunk: 16}}
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch) -> Path:
    write_fashion(tmp_path / "fashion")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_config(folder: Path, loss: str = "roadmap", xbm: int = 64, name: str = "tiny") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(CONFIG.format(root=folder / "fashion", loss=loss, xbm=xbm))
    return path


def uri(folder: Path) -> str:
    return mlflow_store(folder / "mlflow.db")


def test_train_evaluate_search_through_the_cli(workdir: Path):
    result = CliRunner().invoke(app, ["train", str(write_config(workdir)), "--tracking-uri", uri(workdir)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run_id = result.output.strip().splitlines()[-1].removeprefix("run id: ")
    folder = workdir / "runs" / "tiny" / run_id
    assert (folder / "last.pt").is_file() and (folder / "curves.png").is_file()
    final = json.loads((folder / "metrics.json").read_text())
    assert 0 < final["test/hit@1"] <= 1 and 0 < final["test/h_ap"] <= 1 and "val/map@r" in final

    import mlflow

    run = mlflow.get_run(run_id)
    assert run.data.params["loss.name"] == "roadmap" and run.data.params["xbm.size"] == "64"
    assert [m.step for m in mlflow.MlflowClient().get_metric_history(run_id, "val/map_at_r")] == [1, 2]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    assert {"config.yaml", "checkpoint", "metrics.json", "curves.png"} <= artifacts

    state, found = resolve_checkpoint(run_id, uri(workdir))
    assert found == run_id and state.task == "retrieval"
    metrics = evaluate_command(state, run_id, split="test", protocol="both", tracking_uri=uri(workdir))
    assert metrics["hit@1"] == pytest.approx(final["test/hit@1"])
    assert evaluate_command(state, None, split="val", protocol="both", tracking_uri=uri(workdir))["map@r"] > 0

    Image.fromarray(class_images(np.array([7]))[0]).save(workdir / "query.png")
    hits = search_command(run_id, workdir / "query.png", k=5, out=workdir / "grid.png", tracking_uri=uri(workdir))
    assert len(hits) == 5 and hits[0][1] >= hits[-1][1]
    assert Image.open(workdir / "grid.png").size[0] == 6 * 116


def test_resume_continues_exactly_where_it_stopped(workdir: Path, monkeypatch):
    config = load_config(write_config(workdir, loss="happier", xbm=48))
    straight = train(config, tracking_uri=uri(workdir))
    reference = torch.load(workdir / "runs" / "tiny" / straight / "last.pt", weights_only=True)

    original = train_module.RetrievalSession.train_epoch

    def interrupted(self, epoch, bar):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch, bar)

    monkeypatch.setattr(train_module.RetrievalSession, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(config, tracking_uri=uri(workdir))
    stopped = next(p.name for p in (workdir / "runs" / "tiny").iterdir() if p.name != straight)
    monkeypatch.setattr(train_module.RetrievalSession, "train_epoch", original)
    assert train(config, tracking_uri=uri(workdir), resume=stopped) == stopped
    resumed = torch.load(workdir / "runs" / "tiny" / stopped / "last.pt", weights_only=True)
    assert resumed["epoch"] == 2
    assert [h["loss"] for h in resumed["history"]] == pytest.approx([h["loss"] for h in reference["history"]], abs=1e-6)
    for key, value in reference["model"].items():
        assert torch.allclose(resumed["model"][key].float(), value.float(), atol=1e-5), key


def test_config_and_data_errors(workdir: Path):
    with pytest.raises(UserError, match=r"loss.name: unknown loss 'nope'"):
        train(load_config(write_config(workdir, loss="nope")), tracking_uri=uri(workdir))
    with pytest.raises(UserError, match=r"sampler.m: 6 class"):
        train(load_config(write_config(workdir), ["sampler.m=32", "train.batch_size=64"]), tracking_uri=uri(workdir))
    with pytest.raises(UserError, match=r"xbm.size: cross-batch memory works with the ranking losses"):
        train(load_config(write_config(workdir, loss="triplet")), tracking_uri=uri(workdir))
    with pytest.raises(UserError, match=r"model.dmi: unknown key"):
        load_config(write_config(workdir), ["model.dmi=3"])
    with pytest.raises(UserError, match=r"multiple of sampler.m"):
        load_config(write_config(workdir), ["train.batch_size=30"])
    with pytest.raises(UserError, match=r"no checkpoint"):
        train(load_config(write_config(workdir)), tracking_uri=uri(workdir), resume="0123abc")


def test_component_arguments_are_checked_before_the_data_is_read(workdir: Path):
    missing = [f"data.root={workdir / 'nowhere'}"]
    with pytest.raises(UserError, match=r"loss.tau: must be > 0 \(got -1\)"):
        train(load_config(write_config(workdir), ["loss.tau=-1", *missing]), tracking_uri=uri(workdir))
    with pytest.raises(UserError, match=r"loss.margin: must be >= 0"):
        train(load_config(write_config(workdir, loss="triplet", xbm=0), ["loss.margin=-0.5", *missing]), tracking_uri=uri(workdir))
    with pytest.raises(UserError, match=r"model.dim"):
        load_config(write_config(workdir), ["model.dim=-1"])


def test_patience_stops_training_after_min_epochs(workdir: Path, monkeypatch):
    calls = []

    def falling(*args, **kwargs):  # validation mAP@R falls after the first epoch
        metrics = real(*args, **kwargs)
        calls.append(1)
        return {**metrics, "map@r": 1.0 / len(calls)}

    real = train_module.evaluate_split
    monkeypatch.setattr(train_module, "evaluate_split", falling)
    config = load_config(write_config(workdir, xbm=0), ["train.epochs=6", "train.patience=1", "train.min_epochs=3"])
    run_id = train(config, tracking_uri=uri(workdir))
    state = torch.load(workdir / "runs" / "tiny" / run_id / "last.pt", weights_only=True)
    assert state["epoch"] == 3 and state["best_epoch"] == 1


def test_val_metrics_limits_the_validation_metrics_not_the_test_ones(workdir: Path):
    with pytest.raises(UserError, match=r"train.val_metrics: 'map@5' is not one of ap, asi"):
        load_config(write_config(workdir, xbm=0), ["train.val_metrics=[map@5]"])
    config = load_config(write_config(workdir, xbm=0), ["train.epochs=2", "train.val_metrics=[hit@1]"])
    run_id = train(config, tracking_uri=uri(workdir))
    state = torch.load(workdir / "runs" / "tiny" / run_id / "last.pt", weights_only=True)
    assert {k for k in state["history"][0] if k.startswith("val/")} == {"val/hit@1", "val/map@r"}  # + the selection metric
    metrics = json.loads((workdir / "runs" / "tiny" / run_id / "metrics.json").read_text())
    assert {"test/map@r", "test/h_ap", "test/asi", "test/ndcg", "test/hit@1"} <= set(metrics)
