import numpy as np
import scipy.sparse as sp
import torch

from itemrec.recsys.sampling import (
    TrainPositives,
    UniformNegatives,
    all_items_rows,
    pair_rows,
    sample_positives,
    training_pairs,
    training_rows,
)
from tests.recsys.sampling.conftest import generator, is_positive, random_train


def test_training_rows_shapes_relevance_and_content():
    train = random_train(30, 50, 0.15, seed=1)
    users = torch.tensor([0, 5, 5, 29])
    items, relevance = training_rows(users, train, 4, 6, UniformNegatives(train), generator())
    assert items.shape == relevance.shape == (4, 10) and relevance.dtype == torch.float32
    positive = is_positive(train, users, items)
    np.testing.assert_array_equal(positive, relevance.numpy() > 0)
    for row, user in enumerate(users.tolist()):
        count = min(4, train[user].nnz)
        assert relevance[row].tolist() == [1.0] * count + [0.0] * (10 - count)
        assert len(set(items[row, :count].tolist())) == count  # without replacement
    assert not positive[:, 4:].any()


def test_users_with_few_positives_get_extra_negatives():
    dense = np.zeros((3, 20), dtype=np.float32)
    dense[0, [1]] = 1
    dense[1, [2, 3, 4, 5, 6, 7]] = 1
    train = sp.csr_matrix(dense)
    items, relevance = training_rows(torch.tensor([0, 1, 2]), train, 3, 2, UniformNegatives(train), generator())
    assert relevance.tolist() == [[1, 0, 0, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0]]
    assert items[0, 0] == 1 and not is_positive(train, torch.tensor([0]), items[:1, 1:]).any()
    assert set(items[1, :3].tolist()) <= {2, 3, 4, 5, 6, 7}


def test_rows_are_as_wide_as_the_batch_needs():
    dense = np.zeros((3, 40), dtype=np.float32)
    dense[0, [1, 2]] = 1
    dense[1, [3, 4, 5, 6, 7]] = 1
    dense[2, 8:30] = 1
    train = sp.csr_matrix(dense)
    sampler = UniformNegatives(train)
    items, relevance = training_rows(torch.tensor([0, 1]), train, 16, 4, sampler, generator())
    assert items.shape == (2, 5 + 4)  # the batch's largest count, 5, not P = 16
    assert relevance.sum(1).tolist() == [2, 5] and relevance[:, 5:].sum() == 0
    items, relevance = training_rows(torch.tensor([0, 2]), train, 16, 4, sampler, generator())
    assert items.shape == (2, 16 + 4) and relevance.sum(1).tolist() == [2, 16]  # at most P positives


def test_positive_sampling_is_uniform_without_replacement():
    dense = np.zeros((1, 10), dtype=np.float32)
    dense[0, :6] = 1
    positives = TrainPositives(sp.csr_matrix(dense))
    users = torch.zeros(6000, dtype=torch.long)
    items, mask = sample_positives(positives, users, 2, generator())
    assert mask.all() and (items[:, 0] != items[:, 1]).all()
    counts = np.bincount(items.flatten().numpy(), minlength=6)
    np.testing.assert_allclose(counts / 6000, 2 / 6, atol=0.02)  # each positive kept w.p. P/d


def test_rows_repeat_with_the_seed():
    train = random_train(20, 30, 0.2, seed=2)
    sampler = UniformNegatives(train)
    users = torch.arange(20)
    first = training_rows(users, train, 3, 5, sampler, generator(1))
    second = training_rows(users, TrainPositives(train), 3, 5, sampler, generator(1))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_all_items_rows():
    train = random_train(10, 7, 0.3, seed=3)
    items, relevance = all_items_rows(torch.tensor([2, 9]), train)
    assert items.tolist() == [list(range(7))] * 2
    np.testing.assert_array_equal(relevance.numpy(), train[[2, 9]].toarray())


def test_training_pairs_are_every_interaction_once():
    train = random_train(25, 40, 0.2, seed=5)
    users, items = training_pairs(train)
    assert sorted(zip(users.tolist(), items.tolist())) == sorted(zip(*map(list, train.nonzero())))
    some = torch.tensor([3, 7])
    users, items = training_pairs(TrainPositives(train), some)
    assert set(users.tolist()) == {3, 7} and len(items) == train[3].nnz + train[7].nnz
    assert (train.toarray()[users.numpy(), items.numpy()] > 0).all()


def test_pair_rows_hold_the_pair_then_the_sampler_negatives():
    train = random_train(25, 40, 0.2, seed=6)
    users, items = training_pairs(train)
    users, items = users[:9], items[:9]
    rows, relevance = pair_rows(users, items, 5, UniformNegatives(train), generator())
    assert rows.shape == relevance.shape == (9, 6) and relevance.dtype == torch.float32
    assert torch.equal(rows[:, 0], items) and relevance.tolist() == [[1.0] + [0.0] * 5] * 9
    assert not is_positive(train, users, rows[:, 1:]).any()
    again = pair_rows(users, items, 5, UniformNegatives(train), generator())
    assert torch.equal(rows, again[0])
