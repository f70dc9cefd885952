"""torch.distributed under torchrun: process-group setup, rank helpers, batch sharding, reductions.

`setup` joins the process group when torchrun launched the process (`WORLD_SIZE` > 1), with the
backend that fits the device (`nccl` on CUDA, `gloo` on CPU); in a plain process every helper
here is a no-op, so the single-process path is the same code.

Sharding a global batch. Every rank draws the rows of the *whole* global batch from the same
seeded generator (so one seed gives the same sample for any world size) and keeps its contiguous
slice `shard(B, info)`. A loss that averages over rows, computed on a rank's `n_r` rows, is scaled
by `world_size · n_r / B` (`shard_weight`): DistributedDataParallel averages gradients over ranks,
so the all-reduced gradient is `Σ_r (n_r / B) · ∇mean_r = ∇mean over the B rows`, the gradient of
one process on the union batch.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from typing import Any

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


SINGLE = DistInfo()
"""A plain process: rank 0 of 1."""


def backend(device_type: str) -> str:
    """`nccl` for CUDA devices, `gloo` otherwise."""
    return "nccl" if device_type == "cuda" else "gloo"


def setup(device_type: str) -> DistInfo:
    """Join the process group when launched by torchrun (`WORLD_SIZE` > 1); no-op otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend(device_type))
    return DistInfo(rank, world_size, local_rank)


def teardown() -> None:
    """Leave the process group. What still holds it (a DistributedDataParallel reducer in a
    reference cycle) is collected first, while the interpreter is whole: left to interpreter
    shutdown, gloo's threads can outlive the objects they work on and abort the process."""
    if active():
        gc.collect()
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every rank gets here (nothing to wait for in one process)."""
    if active():
        dist.barrier()


def active() -> bool:
    """True inside an initialized process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def shard(size: int, info: DistInfo) -> slice:
    """This rank's contiguous slice of `size` rows; slices of ranks in order cover `0..size`."""
    base, extra = divmod(size, info.world_size)
    start = info.rank * base + min(info.rank, extra)
    return slice(start, start + base + (info.rank < extra))


def shard_weight(size: int, info: DistInfo) -> float:
    """`world_size · n_r / size`: scales a rank's row-mean loss so the averaged gradient is the
    gradient of the row mean over all `size` rows (see the module docstring)."""
    part = shard(size, info)
    return info.world_size * (part.stop - part.start) / size


def all_gather(x: Tensor) -> Tensor:
    """`[world · B, ...]` in rank order, without gradient (every rank passes the same shape)."""
    if not active():
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def mean(value: Tensor) -> Tensor:
    """The mean over ranks of a tensor (a copy; the input is untouched)."""
    if not active():
        return value
    out = value.detach().clone()
    dist.all_reduce(out)
    return out / dist.get_world_size()


def broadcast(obj: Any, info: DistInfo) -> Any:
    """Rank 0's `obj` on every rank (picklable objects: run ids, decisions, checkpoints)."""
    if not active():
        return obj
    box = [obj if info.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]
