"""Recommendation training under torchrun: 2 CPU processes (gloo) train like 1 process on the
union batch, leave one MLflow run, and resume; the sharding helpers cover every row once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from itemrec.distributed import DistInfo, backend, shard, shard_weight
from itemrec.experiment.config import load_config
from itemrec.train import run_dir, train
from tests.test_train import write_config, write_interactions

TORCHRUN = str(Path(sys.executable).with_name("torchrun"))


@pytest.mark.parametrize("world", [1, 2, 3, 5])
@pytest.mark.parametrize("size", [1, 4, 7, 32])
def test_shards_cover_the_batch_in_rank_order(world, size):
    parts = [shard(size, DistInfo(rank, world)) for rank in range(world)]
    assert [i for p in parts for i in range(p.start, p.stop)] == list(range(size))
    assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1
    # weights average to 1: the averaged gradient of the weighted shard means is the batch mean's
    assert sum(shard_weight(size, DistInfo(rank, world)) for rank in range(world)) == pytest.approx(world)


def test_backend_follows_the_device():
    assert backend("cuda") == "nccl" and backend("cpu") == "gloo"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list[str], cwd: Path, *launch: str) -> subprocess.CompletedProcess:
    """`torchrun [launch] -m itemrec ARGS`, as the README writes it."""
    cmd = [TORCHRUN, *(launch or ("--standalone", "--nproc-per-node", "2")), "-m", "itemrec", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def run_id_of(out: subprocess.CompletedProcess) -> str:
    return (out.stdout + out.stderr).split("MLflow run id:")[1].split()[0]


def parameters(config_path: Path, run_id: str) -> dict[str, torch.Tensor]:
    state = torch.load(run_dir(load_config(config_path), run_id) / "last.pt", weights_only=True)
    return {k: v for k, v in state["model"].items() if v.is_floating_point()}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Data, a config (NGCF: several parameter tensors; L2 on; 3 batches per epoch, the last one
    uneven) and the reference: one process, 2 epochs."""
    tmp = tmp_path_factory.mktemp("ddp")
    write_interactions(tmp / "inter.csv")
    cfg = write_config(
        tmp, model={"name": "ngcf", "dim": 8, "layers": 2}, sampling={"negatives": "uniform"},
        train={"epochs": 2, "batch_size": 30, "l2": 1e-3},
    )
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'reference.db'}"
    try:
        reference = train(load_config(cfg), quiet=True)
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI")
        if old is not None:
            os.environ["MLFLOW_TRACKING_URI"] = old
    return tmp, cfg, parameters(cfg, reference)


def assert_same(found: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert found.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(found[key], expected[key], rtol=0, atol=1e-5, msg=key)


def test_two_processes_train_like_one_and_leave_one_run(setup, monkeypatch):
    import mlflow

    tmp, cfg, reference = setup
    uri = f"sqlite:///{tmp / 'two.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run_id = run_id_of(torchrun(["train", str(cfg)], tmp))
    assert_same(parameters(cfg, run_id), reference)
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(search_all_experiments=True)
    assert list(runs["run_id"]) == [run_id]  # rank 1 logged nothing
    client = mlflow.MlflowClient()
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "metrics.json", "curves.png", "checkpoint", "id_maps", "per_user"} <= names
    assert len(client.get_metric_history(run_id, "val/ndcg_at_10")) == 2
    assert float(runs["metrics.test/ndcg_at_10"].iloc[0]) > 0


def test_resume_under_two_processes_on_two_nodes(setup, monkeypatch):
    """One epoch in one process, then `--resume` under torchrun with the multi-node launch form
    (two launchers of one process each on this machine, as two machines would run it): the
    result equals one uninterrupted process."""
    import mlflow

    tmp, cfg, reference = setup
    uri = f"sqlite:///{tmp / 'resume.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run_id = train(load_config(cfg, ["train.epochs=1"]), quiet=True)
    endpoint = f"127.0.0.1:{free_port()}"
    launches = [
        [TORCHRUN, "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(node), "--rdzv-backend", "c10d",
         "--rdzv-endpoint", endpoint, "--rdzv-id", "resume-test", "-m", "itemrec", "train", str(cfg), "--resume", run_id]
        for node in (0, 1)
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for cmd in launches]
    try:
        outputs = [node.communicate(timeout=300)[0] for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
                node.wait()
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    assert_same(parameters(cfg, run_id), reference)
    mlflow.set_tracking_uri(uri)
    assert list(mlflow.search_runs(search_all_experiments=True)["run_id"]) == [run_id]
    history = mlflow.MlflowClient().get_metric_history(run_id, "loss")
    assert sorted(m.step for m in history) == [1, 2]
