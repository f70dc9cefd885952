"""Recommendation training under torchrun: 2 CPU processes (gloo) train like 1 process on the
union batch, leave one MLflow run, and resume; the rank losses' shards average to the batch gradient.
The sharding helpers themselves: tests/experiment/test_distributed.py."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from itemrec.experiment.config import NamedSpec, load_config
from itemrec.experiment.distributed import SINGLE, DistInfo
from itemrec.experiment.loop import run_dir
from itemrec.experiment.registry import build_loss
from itemrec.recsys.frontend import train
from itemrec.recsys.train import rank_loss
from tests.readme import section_commands, substitute
from tests.recsys.test_train import write_config, write_interactions
from tests.stores import mlflow_store


@pytest.mark.parametrize("loss", ["sup_ap", "sup_ndcg", "bpr", "sampled_softmax", "roadmap"])
@pytest.mark.parametrize("world", [2, 3])
def test_rank_losses_average_to_the_batch_gradient(loss, world):
    """What DDP averages over ranks equals the gradient of one process on the whole batch (for a
    row-mean loss from slices of rows, for ROADMAP from the whole batch on every rank)."""
    g = torch.Generator().manual_seed(0)
    user_all = torch.randn(12, 4, generator=g, requires_grad=True)
    item_all = torch.randn(20, 4, generator=g, requires_grad=True)
    users = torch.randperm(12, generator=g)[:7]  # 7 rows: uneven slices
    items = torch.randint(0, 20, (7, 9), generator=g)
    relevance = (torch.rand(7, 9, generator=g) < 0.3).float()
    relevance[:, 0], relevance[:, -1] = 1, 0  # every row has a positive and a negative
    loss_fn = build_loss(NamedSpec(name=loss))

    def grads(info: DistInfo) -> tuple[torch.Tensor, ...]:
        value = rank_loss(loss_fn, user_all, item_all, users, items, relevance, True, info)
        return torch.autograd.grad(value, (user_all, item_all))

    expected = grads(SINGLE)
    parts = [grads(DistInfo(rank, world)) for rank in range(world)]
    for i, want in enumerate(expected):
        torch.testing.assert_close(sum(p[i] for p in parts) / world, want, rtol=1e-5, atol=1e-7)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def readme_commands(run_id: str = "RUN_ID") -> list[str]:
    """The README's torchrun commands with this machine's sizes: 2 processes on one node, or 2
    nodes of 1 process on 127.0.0.1 (as two machines would run it)."""
    endpoint = f"127.0.0.1:{free_port()}"
    commands = section_commands("Training on many GPUs or machines")
    assert len(commands) == 3 and all(c.startswith("torchrun ") for c in commands)
    return [substitute(c, {"--nproc-per-node 4": "--nproc-per-node 2", "--nproc-per-node 8": "--nproc-per-node 1",
                           "HOST0:29400": endpoint, "RUN_ID": run_id}) for c in commands]


def launch(commands: list[str], cwd: Path) -> str:
    """Run the launchers together (one per node); returns the run id that rank 0 printed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    procs = [subprocess.Popen(shlex.split(c), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for c in commands]
    try:
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0] * len(procs), "\n".join(o[-3000:] for o in outputs)
    return "".join(outputs).split("MLflow run id:")[1].split()[0]


def parameters(config_path: Path, run_id: str) -> dict[str, torch.Tensor]:
    state = torch.load(run_dir(load_config(config_path), run_id) / "last.pt", weights_only=True)
    return {k: v for k, v in state["model"].items() if v.is_floating_point()}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Data, the README's config path holding a tiny config (NGCF: several parameter tensors; L2
    on; 3 batches per epoch, the last one uneven) and the reference: one process, 2 epochs."""
    tmp = tmp_path_factory.mktemp("ddp")
    write_interactions(tmp / "inter.csv")
    written = write_config(
        tmp, name="ml1m_lightgcn_supap", model={"name": "ngcf", "dim": 8, "layers": 2}, sampling={"negatives": "uniform"},
        train={"epochs": 2, "batch_size": 30, "l2": 1e-3},
    )
    cfg = tmp / "configs" / "recsys" / written.name
    cfg.parent.mkdir(parents=True)
    written.rename(cfg)
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = mlflow_store(tmp / "reference.db")
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


def only_run(uri: str) -> str:
    import mlflow

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(search_all_experiments=True)
    assert len(runs) == 1, list(runs["run_id"])  # the other ranks logged nothing
    return runs["run_id"].iloc[0]


def test_two_processes_train_like_one_and_leave_one_run(setup, monkeypatch):
    """The README's one-machine command: the same parameters as one process, one MLflow run."""
    import mlflow

    tmp, cfg, reference = setup
    uri = mlflow_store(tmp / "two.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run_id = launch([readme_commands()[0]], tmp)
    assert_same(parameters(cfg, run_id), reference)
    assert only_run(uri) == run_id
    client = mlflow.MlflowClient()
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "metrics.json", "curves.png", "checkpoint", "id_maps", "per_user"} <= names
    assert len(client.get_metric_history(run_id, "val/ndcg_at_10")) == 2
    assert client.get_run(run_id).data.metrics["test/ndcg_at_10"] > 0


def test_two_nodes_train_like_one(setup, monkeypatch):
    """The README's two-machine command, as two launchers of one process each on this machine."""
    tmp, cfg, reference = setup
    uri = mlflow_store(tmp / "nodes.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    command = readme_commands()[1]
    run_id = launch([command.replace("NODE_RANK", str(node)) for node in (0, 1)], tmp)
    assert_same(parameters(cfg, run_id), reference)
    assert only_run(uri) == run_id


def test_resume_under_two_processes(setup, monkeypatch):
    """One epoch in one process, then the README's `--resume` command under 2 processes: the
    result equals one uninterrupted process, in the same single MLflow run."""
    import mlflow

    tmp, cfg, reference = setup
    uri = mlflow_store(tmp / "resume.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run_id = train(load_config(cfg, ["train.epochs=1"]), quiet=True)
    assert launch([readme_commands(run_id)[2]], tmp) == run_id
    assert_same(parameters(cfg, run_id), reference)
    assert only_run(uri) == run_id
    history = mlflow.MlflowClient().get_metric_history(run_id, "loss")
    assert sorted(m.step for m in history) == [1, 2]
