"""Cross-batch memory: FIFO order, wrap-around, detached entries."""

from __future__ import annotations

import torch

from retrieval.xbm import CrossBatchMemory


def test_queue_fills_then_overwrites_oldest():
    memory = CrossBatchMemory(size=5, dim=2, num_levels=1)
    assert len(memory) == 0
    memory.enqueue(torch.ones(3, 2), torch.tensor([0, 1, 2]))
    emb, lab = memory.get()
    assert emb.shape == (3, 2) and lab[:, 0].tolist() == [0, 1, 2]
    memory.enqueue(torch.full((3, 2), 2.0), torch.tensor([3, 4, 5]))
    emb, lab = memory.get()
    assert len(memory) == 5 and lab[:, 0].tolist() == [5, 1, 2, 3, 4]  # label 0 was the oldest
    assert emb[0].tolist() == [2.0, 2.0]


def test_batch_larger_than_memory_keeps_the_newest_and_detaches():
    memory = CrossBatchMemory(size=2, dim=1, num_levels=2)
    x = torch.arange(4.0)[:, None].requires_grad_()
    memory.enqueue(x * 1, torch.tensor([[0, 0], [1, 0], [2, 1], [3, 1]]))
    emb, lab = memory.get()
    assert sorted(emb[:, 0].tolist()) == [2.0, 3.0] and not emb.requires_grad
    assert lab.shape == (2, 2)
