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
from retrieval.distributed import _AllGather, all_gather_with_grad
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
    gather_gradient(rank, world, folder)
    dist.barrier()
    dist.destroy_process_group()


def gather_inputs(rank: int, world: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Rank `rank`'s input `[2, 3]` and every rank's weight on the gathered `[2 · world, 3]` tensor."""
    total = 2 * world
    x = torch.arange(6.0, dtype=torch.float64).reshape(2, 3) + 10 * rank
    weights = [torch.randn(total, 3, generator=torch.Generator().manual_seed(r), dtype=torch.float64) for r in range(world)]
    return x, weights


def gather_gradient(rank: int, world: int, folder: str) -> None:
    """Each rank's loss `Σ w_rank ⊙ gather(x)`; the DDP convention sums the ranks' losses."""
    x, weights = gather_inputs(rank, world)
    x.requires_grad_(True)
    gathered = _AllGather.apply(x)
    (gathered * weights[rank]).sum().backward()
    torch.save({"gathered": gathered.detach(), "grad": x.grad}, Path(folder) / f"gather{rank}.pt")


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


def test_all_gather_gradient_is_the_sum_of_every_rank_loss_gradient_on_its_own_slice(two_process_results: Path):
    inputs = [gather_inputs(rank, 2)[0] for rank in range(2)]
    weights = gather_inputs(0, 2)[1]
    start = 0
    for rank in range(2):
        got = torch.load(two_process_results / f"gather{rank}.pt", weights_only=True)
        torch.testing.assert_close(got["gathered"], torch.cat(inputs), rtol=0, atol=0)
        mine = slice(start, start + inputs[rank].shape[0])
        torch.testing.assert_close(got["grad"], (weights[0] + weights[1])[mine], rtol=0, atol=1e-12)
        start = mine.stop


def test_all_gather_gradcheck_in_a_one_process_group():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(_AllGather.apply, (x,))
    finally:
        dist.destroy_process_group()
