import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy import stats

from itemrec.recsys.sampling import (
    SAMPLERS,
    InBatchNegatives,
    PopularityNegatives,
    PPRNegatives,
    TrainPositives,
    UniformNegatives,
    ppr_scores,
)
from tests.recsys.sampling.conftest import generator, is_positive, random_train


def test_train_positives_gather_contains_and_dense():
    train = random_train(20, 15, 0.3, seed=1)
    positives = TrainPositives(train)
    users = torch.tensor([3, 0, 3, 19])
    row, item = positives.gather(users)
    for r, u in enumerate(users.tolist()):
        assert sorted(item[row == r].tolist()) == sorted(train[u].indices.tolist())
    items = torch.randint(15, (4, 30), generator=generator())
    assert (positives.contains(users, items).numpy() == is_positive(train, users, items)).all()
    np.testing.assert_array_equal(positives.dense(users).numpy(), train[users.numpy()].toarray())


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_samplers_never_return_a_positive_and_repeat_with_the_seed(name):
    train = random_train(30, 40, 0.6, seed=2)  # dense rows: many collisions to reject
    sampler = SAMPLERS[name](train)
    users = torch.arange(30).repeat(3)
    first = sampler.sample(users, 50, generator(5))
    assert first.shape == (90, 50) and first.dtype == torch.long
    assert not is_positive(train, users, first).any()
    assert torch.equal(sampler.sample(users, 50, generator(5)), first)
    assert not torch.equal(sampler.sample(users, 50, generator(6)), first)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_a_user_owning_all_but_one_item_gets_that_item(name):
    dense = np.ones((3, 6), dtype=np.float32)
    dense[0, 4] = 0  # user 0: only item 4 is a negative
    dense[1, :3] = 0
    train = sp.csr_matrix(dense)
    items = SAMPLERS[name](train).sample(torch.tensor([0, 1]), 20, generator())
    assert (items[0] == 4).all()
    assert set(items[1].tolist()) <= {0, 1, 2}


def test_uniform_frequencies_are_flat_over_negatives():
    train = random_train(4, 10, 0.3, seed=3)
    items = UniformNegatives(train).sample(torch.tensor([1]), 40_000, generator())[0]
    negatives = np.setdiff1d(np.arange(10), train[1].indices)
    counts = np.bincount(items.numpy(), minlength=10)[negatives]
    assert stats.chisquare(counts).pvalue > 1e-3


def test_popularity_frequencies_follow_pop_to_the_beta():
    # item popularity 1..8 (items 0..7); user 8 has no positives, so draws follow pop^β exactly
    dense = np.zeros((9, 8), dtype=np.float32)
    for item in range(8):
        dense[: item + 1, item] = 1
    dense[8] = 0
    train = sp.csr_matrix(dense)
    sampler = PopularityNegatives(train, beta=0.75)
    items = sampler.sample(torch.tensor([8]), 80_000, generator())[0]
    counts = np.bincount(items.numpy(), minlength=8)
    expected = np.arange(1, 9) ** 0.75
    assert stats.chisquare(counts, expected / expected.sum() * counts.sum()).pvalue > 1e-3
    # user 0 owns every item: no negative exists, the row is still full (of positives)
    items = sampler.sample(torch.tensor([0]), 80_000, generator(1))[0]  # user 0 owns every item
    assert items.shape == (80_000,)


def test_popularity_conditional_on_negatives():
    dense = np.zeros((9, 8), dtype=np.float32)
    for item in range(8):
        dense[1 : item + 2, item] = 1
    dense[0, [6, 7]] = 1  # user 0 owns the two most popular items
    train = sp.csr_matrix(dense)
    items = PopularityNegatives(train, beta=0.75).sample(torch.tensor([0]), 60_000, generator())[0]
    counts = np.bincount(items.numpy(), minlength=8)
    assert counts[6] == counts[7] == 0
    popularity = np.asarray(train.sum(0), dtype=np.float64).ravel()[:6]
    expected = popularity**0.75
    assert stats.chisquare(counts[:6], expected / expected.sum() * counts.sum()).pvalue > 1e-3


def test_in_batch_negatives_are_other_users_positives():
    train = random_train(50, 200, 0.02, seed=4)
    users = torch.tensor([0, 1, 2, 3])
    items = InBatchNegatives(train).sample(users, 30, generator())
    pool = set(train[users.numpy()].indices.tolist())
    assert set(items.flatten().tolist()) <= pool
    assert not is_positive(train, users, items).any()


def test_ppr_negatives_mix_hard_and_uniform():
    train = random_train(40, 60, 0.1, seed=5)
    sampler = PPRNegatives(train, topk=5, hard_ratio=0.6, skip=0)
    users = torch.arange(40)
    items = sampler.sample(users, 10, generator())
    assert items.shape == (40, 10) and items.dtype == torch.long and not is_positive(train, users, items).any()
    hard = items[:, :6]
    assert all(set(h.tolist()) <= set(t.tolist()) for h, t in zip(hard, sampler.table))


def test_ppr_negatives_skip_the_top_ranks():
    train = random_train(40, 60, 0.1, seed=5)
    top, _ = ppr_scores(train, None, topk=15)
    sampler = PPRNegatives(train, topk=5, skip=10)
    assert sampler.compute().dtype == torch.int32  # item ids kept as int32: half the table's memory
    assert torch.equal(sampler.compute().long(), top[:, 10:15])
    small = PPRNegatives(train, topk=50, skip=30)  # 60 items: only 10 can be skipped
    assert torch.equal(small.compute().long(), ppr_scores(train, None, topk=60)[0][:, 10:60])


def test_ppr_refresh_schedule_recomputes_only_a_changed_graph():
    train = random_train(20, 30, 0.2, seed=6)
    sampler = PPRNegatives(train, topk=4, refresh_every=3)
    assert sampler.maybe_refresh(0) and sampler.table is not None
    table = sampler.table
    assert not sampler.maybe_refresh(1) and not sampler.maybe_refresh(3)  # due, graph unchanged
    assert sampler.table is table
    changed = train.tolil()
    changed[0, :] = 0
    changed[0, 29] = 1
    sampler.update_graph(changed.tocsr())
    assert not sampler.maybe_refresh(4)  # not due yet (last due: 3)
    assert sampler.maybe_refresh(6)
    assert not torch.equal(sampler.table, table)


def test_ppr_rejects_bad_parameters():
    train = random_train(5, 5, 0.5)
    with pytest.raises(ValueError, match="hard_ratio"):
        PPRNegatives(train, hard_ratio=1.5)
    with pytest.raises(ValueError, match="refresh_every"):
        PPRNegatives(train, refresh_every=0)
