import pytest
import torch

from itemrec.ranking.batch import hierarchical_relevance, off_diagonal_index, shared_levels


def test_shared_levels_fine_to_coarse():
    labels = torch.tensor([[0, 10], [0, 10], [1, 10], [2, 20]])  # (product, category)
    assert shared_levels(labels, labels).tolist() == [
        [2, 2, 1, 0],
        [2, 2, 1, 0],
        [1, 1, 2, 0],
        [0, 0, 0, 2],
    ]
    assert shared_levels(torch.tensor([3, 4]), torch.tensor([4, 4, 3])).tolist() == [[0, 0, 1], [1, 1, 0]]


def test_off_diagonal_index_skips_self():
    assert off_diagonal_index(3).tolist() == [[1, 2], [0, 2], [0, 1]]


def test_hierarchical_relevance_by_hand():
    levels = torch.tensor([[2, 1, 1, 1, 0, 2]])
    rel = hierarchical_relevance(levels, num_levels=2)
    # level 2: w = 1, two items -> 0.5 each; level 1: w = 1/2, three items -> 1/6 each
    assert rel[0].tolist() == pytest.approx([0.5, 1 / 6, 1 / 6, 1 / 6, 0.0, 0.5])
    rel_sq = hierarchical_relevance(levels, num_levels=2, alpha=2.0)
    assert float(rel_sq[0, 1]) == pytest.approx(0.25 / 3)
