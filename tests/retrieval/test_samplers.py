"""Batch composition of the samplers, their errors, and their resumable RNG state."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from itemrec.experiment.errors import UserError
from retrieval.samplers import HierarchicalSampler, MPerClassSampler, build_sampler


def labels_of(fine_counts: dict[int, int], coarse_of=lambda c: c // 3) -> torch.Tensor:
    rows = [(c, coarse_of(c)) for c, n in fine_counts.items() for _ in range(n)]
    return torch.tensor(rows)


def test_m_per_class_batches():
    labels = labels_of({c: 10 for c in range(8)})
    sampler = MPerClassSampler(labels[:, 0], batch_size=12, m=4, steps=20, generator=torch.Generator().manual_seed(0))
    batches = list(sampler)
    assert len(batches) == 20
    for batch in batches:
        counts = Counter(labels[batch, 0].tolist())
        assert len(batch) == 12 and len(set(batch)) == 12
        assert sorted(counts.values()) == [4, 4, 4]
    assert len({c for b in batches for c in labels[b, 0].tolist()}) == 8


def test_small_classes_error_or_drop(capsys):
    labels = labels_of({0: 5, 1: 5, 2: 2, 3: 5})
    with pytest.raises(UserError, match=r"1 class\(es\) have fewer than m=4 images: 2 \(2\)"):
        MPerClassSampler(labels[:, 0], 8, 4, 5, torch.Generator())
    sampler = MPerClassSampler(labels[:, 0], 8, 4, 5, torch.Generator(), small_classes="drop")
    assert all(2 not in labels[b, 0].tolist() for b in sampler)
    assert "dropped 1 class" in capsys.readouterr().out
    with pytest.raises(UserError, match=r"needs 4 classes, only 3"):
        MPerClassSampler(labels[:, 0], 16, 4, 5, torch.Generator(), small_classes="drop")


def test_hierarchical_batches_come_from_few_coarse_classes():
    labels = labels_of({c: 6 for c in range(12)})  # 4 coarse classes of 3 fine classes
    sampler = HierarchicalSampler(labels, batch_size=12, m=2, coarse_per_batch=2, steps=30, generator=torch.Generator().manual_seed(1))
    for batch in sampler:
        fine = Counter(labels[batch, 0].tolist())
        assert len(batch) == 12 and set(fine.values()) == {2} and len(fine) == 6
        assert len(set(labels[batch, 1].tolist())) == 2  # 2 coarse classes x 3 fine classes each
    with pytest.raises(UserError, match=r"coarse level"):
        HierarchicalSampler(labels[:, :1], 12, 2, 2, 3, torch.Generator())


def test_generator_state_replays_batches_and_ranks_split_them():
    labels = labels_of({c: 10 for c in range(6)})
    g = torch.Generator().manual_seed(3)
    sampler = build_sampler("m_per_class", labels, 8, 4, 2, 4, g)
    list(sampler)
    state = g.get_state()
    second = list(sampler)
    g.set_state(state)
    assert list(sampler) == second
    g0, g1, g = (torch.Generator().manual_seed(5) for _ in range(3))
    r0 = list(build_sampler("m_per_class", labels, 8, 4, 2, 3, g0, rank=0, world_size=2))
    r1 = list(build_sampler("m_per_class", labels, 8, 4, 2, 3, g1, rank=1, world_size=2))
    full = list(build_sampler("m_per_class", labels, 8, 4, 2, 3, g))
    for a, b, whole in zip(r0, r1, full):
        assert len(a) == len(b) == 4 and sorted(a + b) == sorted(whole)


def test_default_steps_and_random_sampler():
    labels = labels_of({c: 10 for c in range(4)})
    sampler = build_sampler("random", labels, 8, 4, 2, None, torch.Generator())
    assert len(sampler) == 5 and all(len(set(b)) == 8 for b in sampler)
