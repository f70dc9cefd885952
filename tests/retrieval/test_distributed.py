"""Two processes (gloo, CPU) give the same loss and gradients as one process on the union batch."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from itemrec.experiment.config import NamedSpec
from retrieval.config import ModelSection
from retrieval.distributed import all_gather_with_grad
from retrieval.losses import build_criterion
from retrieval.model import build_model
from retrieval.train import batch_loss
from retrieval.xbm import CrossBatchMemory

BATCH, FEATURES = 16, 12


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make(loss: str):
    torch.manual_seed(0)
    model = build_model(ModelSection(backbone="features", dim=8, hidden=16), feature_dim=FEATURES)
    criterion = build_criterion(NamedSpec(name=loss), num_levels=2, num_classes=4, dim=8)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, FEATURES, generator=g)
    fine = torch.arange(BATCH) % 4
    labels = torch.stack([fine, fine // 2], 1)
    memory = CrossBatchMemory(8, 8, 2)
    memory.enqueue(nn.functional.normalize(torch.randn(8, 8, generator=g), dim=1), labels[:8])
    return model, criterion, x, labels, memory


def grads(model: nn.Module, criterion: nn.Module) -> dict[str, torch.Tensor]:
    named = [*model.named_parameters(), *(("loss." + k, v) for k, v in criterion.named_parameters())]
    return {k: v.grad.clone() for k, v in named}


LOSSES = ("roadmap", "happier")


def worker(rank: int, world: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    for loss in LOSSES:
        model, criterion, x, labels, memory = make(loss)
        ddp = nn.parallel.DistributedDataParallel(model)
        mine = slice(rank, None, world)  # what the samplers hand each rank
        value, _, all_labels = batch_loss(ddp, criterion, x[mine], labels[mine], memory)
        value.backward()
        if rank == 0:
            result = {"loss": value.detach(), "grads": grads(model, criterion), "labels": all_labels}
            torch.save(result, Path(folder) / f"{loss}.pt")
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ddp")
    mp.spawn(worker, args=(2, free_port(), str(folder)), nprocs=2, join=True)
    return folder


@pytest.mark.parametrize("loss", LOSSES)
def test_two_processes_match_one_on_the_union_batch(two_process_results: Path, loss: str):
    got = torch.load(two_process_results / f"{loss}.pt", weights_only=True)
    model, criterion, x, labels, memory = make(loss)
    order = torch.cat([torch.arange(0, BATCH, 2), torch.arange(1, BATCH, 2)])  # rank 0's slice, then rank 1's
    assert torch.equal(got["labels"], labels[order])
    value, _, _ = batch_loss(model, criterion, x[order], labels[order], memory)
    value.backward()
    assert torch.allclose(got["loss"], value.detach(), atol=1e-6)
    expected = grads(model, criterion)
    assert set(got["grads"]) == set(expected)
    for name, grad in expected.items():
        assert torch.allclose(got["grads"][name], grad, atol=1e-6, rtol=1e-4), name


def test_gather_is_identity_without_a_process_group():
    x = torch.randn(3, 2)
    assert all_gather_with_grad(x) is x
