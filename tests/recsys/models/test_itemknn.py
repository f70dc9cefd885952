import numpy as np
import pytest
import scipy.sparse as sp
import torch

from itemrec.recsys.models import ItemKNN
from tests.recsys.models.conftest import random_train


def test_itemknn_cosine_values_by_hand():
    # items: 0 by users {0,1}, 1 by {0,1,2}, 2 by {2}, 3 by {} (never)
    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0]], dtype=np.float32))
    weights = ItemKNN(3, 4, train, k=2).weights().to_dense()
    expected = np.array(
        [
            [0, 2 / np.sqrt(6), 0, 0],  # item 0: item 1 only (item 2 shares no user)
            [2 / np.sqrt(6), 0, 1 / np.sqrt(3), 0],
            [0, 1 / np.sqrt(3), 0, 0],
            [0, 0, 0, 0],
        ]
    )
    np.testing.assert_allclose(weights.numpy(), expected, atol=1e-6)


def test_itemknn_keeps_top_k_neighbours_and_scores_by_them():
    train = random_train(40, 12, 0.4, seed=4)
    model = ItemKNN(40, 12, train, k=3)
    weights = model.item_vectors()  # [I, I], row j: neighbours of j
    assert ((weights != 0).sum(1) <= 3).all() and (weights.diagonal() == 0).all()
    x = train.toarray()
    norms = np.sqrt(x.sum(0))
    cosine = (x.T @ x) / np.outer(norms, norms)
    np.fill_diagonal(cosine, -1)
    for j in range(12):
        kept = set(torch.nonzero(weights[j]).squeeze(1).tolist())
        assert kept == set(np.argsort(-cosine[j], kind="stable")[:3].tolist())
        np.testing.assert_allclose(weights[j, sorted(kept)].numpy(), cosine[j, sorted(kept)], atol=1e-6)
    scores = model.user_vectors(torch.tensor([5])) @ weights.T
    np.testing.assert_allclose(scores.numpy()[0], x[5] @ weights.numpy().T, atol=1e-5)


def test_itemknn_needs_at_least_one_neighbour():
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        ItemKNN(5, 4, random_train(5, 4, 0.5), k=0)
