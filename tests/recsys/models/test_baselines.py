import numpy as np
import scipy.sparse as sp
import torch

from itemrec.recsys.models import EASE, ItemKNN, Pop
from tests.recsys.models.conftest import random_train


def test_pop_scores_items_by_training_count():
    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 0]], dtype=np.float32))
    model = Pop(3, 4, train)
    scores = model.user_vectors(torch.tensor([0, 2])) @ model.item_vectors().T
    assert scores.tolist() == [[3.0, 2.0, 1.0, 0.0]] * 2
    new = model.new_user_vectors(sp.csr_matrix((5, 4), dtype=np.float32))
    assert (new @ model.item_vectors().T).argsort(1, descending=True)[0].tolist() == [0, 1, 2, 3]


def test_ease_equals_numpy_closed_form():
    train = random_train(30, 7, 0.4, seed=3)
    model = EASE(30, 7, train, lam=5.0)
    x = train.toarray().astype(np.float64)
    p = np.linalg.inv(x.T @ x + 5.0 * np.eye(7))
    b = np.eye(7) - p / np.diag(p)[None, :]
    assert np.allclose(np.diag(b), 0.0)
    users = torch.tensor([0, 4, 29])
    scores = model.user_vectors(users) @ model.item_vectors().T
    np.testing.assert_allclose(scores.numpy(), x[[0, 4, 29]] @ b, atol=1e-5)
    new = model.new_user_vectors(train[[4]]) @ model.item_vectors().T
    np.testing.assert_allclose(new.numpy(), x[[4]] @ b, atol=1e-5)


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


def test_baseline_vectors_come_in_chunks():
    train = random_train(50, 10, 0.3, seed=5)
    for model in (Pop(50, 10, train), ItemKNN(50, 10, train), EASE(50, 10, train)):
        full = model.user_vectors(torch.arange(50)) @ model.item_vectors().T
        chunks = [model.user_vectors(torch.arange(s, min(s + 16, 50))) @ model.item_vectors().T for s in range(0, 50, 16)]
        torch.testing.assert_close(torch.cat(chunks), full)
