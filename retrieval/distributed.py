"""torch.distributed for retrieval training under torchrun: the shared setup of
`itemrec.experiment.distributed`, and an all-gather that keeps gradients, so the ranking loss sees the global batch on every rank.

Gradient bookkeeping: every rank computes the same loss on the gathered batch. The backward of
`all_gather_with_grad` sums the incoming gradients over ranks and keeps this rank's slice, i.e.
`world_size · ∂L/∂e_rank`; DDP then averages parameter gradients over ranks, which gives exactly
`∂L/∂θ` of one process on the union batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from itemrec.experiment.distributed import DistInfo, all_gather, setup, teardown

__all__ = ["DistInfo", "all_gather", "all_gather_with_grad", "setup", "teardown"]


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

