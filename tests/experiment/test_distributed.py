"""torch.distributed helpers: batch shards, loss weights, the backend per device, and the no-op
path of a plain process (the torchrun runs: tests/recsys/test_distributed.py,
tests/retrieval/test_distributed.py)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from itemrec.experiment import distributed
from itemrec.experiment.distributed import SINGLE, DistInfo, backend, shard, shard_weight


@pytest.mark.parametrize("world", [1, 2, 3, 5])
@pytest.mark.parametrize("size", [1, 4, 7, 32])
def test_shards_cover_the_batch_in_rank_order(world, size):
    parts = [shard(size, DistInfo(rank, world)) for rank in range(world)]
    assert [i for p in parts for i in range(p.start, p.stop)] == list(range(size))
    assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1
    # weights average to 1: the averaged gradient of the weighted shard means is the batch mean's
    assert sum(shard_weight(size, DistInfo(rank, world)) for rank in range(world)) == pytest.approx(world)


def test_uneven_shards_give_the_first_ranks_one_more_row():
    assert [shard(7, DistInfo(rank, 3)) for rank in range(3)] == [slice(0, 3), slice(3, 5), slice(5, 7)]
    assert [shard_weight(7, DistInfo(rank, 3)) for rank in range(3)] == [9 / 7, 6 / 7, 6 / 7]
    assert shard(2, DistInfo(3, 4)) == slice(2, 2)  # more ranks than rows: an empty shard
    assert shard(10, SINGLE) == slice(0, 10) and shard_weight(10, SINGLE) == 1.0


def test_backend_follows_the_device():
    assert backend("cuda") == "nccl" and backend("cpu") == "gloo"


def test_rank_info():
    assert (SINGLE.enabled, SINGLE.is_main) == (False, True)
    assert (DistInfo(0, 2).enabled, DistInfo(0, 2).is_main, DistInfo(1, 2).is_main) == (True, True, False)


@pytest.mark.parametrize("world_size", [None, "1"])
def test_a_plain_process_joins_no_group(monkeypatch, world_size):
    if world_size is None:
        monkeypatch.delenv("WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("WORLD_SIZE", world_size)
    assert distributed.setup("cpu") == SINGLE
    assert not dist.is_initialized() and not distributed.active()
    distributed.teardown()  # nothing to tear down: no error


def test_collectives_outside_a_group_return_their_input():
    x = torch.arange(6.0).reshape(2, 3)
    assert distributed.all_gather(x) is x
    assert distributed.mean(x) is x
    box = {"run": "abc"}
    assert distributed.broadcast(box, DistInfo(1, 2)) is box
