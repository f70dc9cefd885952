"""The dataset object: matrices, popularity, graph edges, Gini and stats against hand values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from itemrec.recsys.data import SplitSpec, load_dataset, to_torch_csr
from itemrec.recsys.data.dataset import gini


@pytest.fixture
def small(write):
    # Users a, b, c; items x, y, z. Ratings below 3 drop out; the given split puts one row in test.
    text = "user_id,item_id,rating\na,x,5\na,y,4\nb,x,5\nb,z,1\nc,x,4\nc,y,3\nc,z,5\n"
    return load_dataset(write("s.csv", text), min_rating=3, split=SplitSpec(ratios=(1.0, 0.0, 0.0)), quiet=True)


def test_matrices_and_maps(small):
    assert small.users.ids.to_list() == ["a", "b", "c"] and small.items.ids.to_list() == ["x", "y", "z"]
    assert small.train.toarray().tolist() == [[1, 1, 0], [1, 0, 0], [1, 1, 1]]
    assert small.val.nnz == 0 and small.test.nnz == 0 and small.inductive is None
    assert small.train.dtype == np.float32


def test_item_popularity_and_edges(small):
    assert small.item_popularity.tolist() == [3, 2, 1]
    edges = small.edge_index()
    assert edges.dtype == torch.int64 and edges.shape == (2, 12)
    pairs = set(map(tuple, edges.T.tolist()))
    # users 0..2, items 3..5; each edge both ways
    expected = {(0, 3), (0, 4), (1, 3), (2, 3), (2, 4), (2, 5)}
    assert pairs == expected | {(i, u) for u, i in expected}


def test_stats(small):
    stats = small.stats()
    assert (stats.users, stats.items, stats.interactions) == (3, 3, 6)
    assert stats.density == pytest.approx(6 / 9)
    # popularity (1, 2, 3): sum_i (2i - n - 1) x_i / (n * sum) = (-2*1 + 0*2 + 2*3) / (3 * 6) = 4/18
    assert stats.popularity_gini == pytest.approx(4 / 18)
    assert stats.parts["train"] == 6 and stats.parts["test"] == 0


def test_gini_extremes():
    assert gini(np.array([5, 5, 5, 5])) == 0.0
    assert gini(np.array([0, 0, 0, 8])) == pytest.approx(0.75)  # (n - 1) / n
    assert gini(np.array([])) == 0.0


def test_torch_csr_matches_scipy(small):
    dense = to_torch_csr(small.train).to_dense()
    assert torch.equal(dense, torch.from_numpy(small.train.toarray()))


def test_has_validation(small, write):
    assert not small.has_validation  # ratios (1, 0, 0): no val rows
    rows = "".join(f"{u},{i}\n" for u in range(4) for i in range(10))
    assert load_dataset(write("v.csv", "user_id,item_id\n" + rows), quiet=True).has_validation
