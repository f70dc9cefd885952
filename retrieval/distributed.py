"""torch.distributed for training under torchrun: setup from its environment variables and an
all-gather that keeps gradients, so the ranking loss sees the global batch on every rank.

Gradient bookkeeping: every rank computes the same loss on the gathered batch. The backward of
`all_gather_with_grad` sums the incoming gradients over ranks and keeps this rank's slice, i.e.
`world_size · ∂L/∂e_rank`; DDP then averages parameter gradients over ranks, which gives exactly
`∂L/∂θ` of one process on the union batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_type: str) -> DistInfo:
    """Join the process group when launched by torchrun (`WORLD_SIZE` > 1); no-op otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    return DistInfo(rank, world_size, local_rank)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class _AllGather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.rank, ctx.size = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.sizes = [p.shape[0] for p in parts]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.size]


def all_gather_with_grad(x: Tensor) -> Tensor:
    """`[world · B, ...]` in rank order; gradients flow back to each rank's own slice.

    Every rank must pass the same batch size (the samplers guarantee it).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return _AllGather.apply(x)


def all_gather(x: Tensor) -> Tensor:
    """All-gather without gradient (labels, evaluation embeddings)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)
