import numpy as np
import pytest
import scipy.sparse as sp
import torch

from itemrec.recsys.models import EASE
from itemrec.recsys.models.ease import ease_weights
from tests.recsys.models.conftest import random_train


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


def test_ease_weights_of_two_items_by_hand():
    # X = [[1, 1], [1, 0]], λ = 1: XᵀX + λI = [[3, 1], [1, 2]], P = 1/5 [[2, -1], [-1, 3]],
    # B_01 = -P_01 / P_11 = 1/3, B_10 = -P_10 / P_00 = 1/2
    interactions = sp.csr_matrix(np.array([[1, 1], [1, 0]], dtype=np.float32))
    np.testing.assert_allclose(ease_weights(interactions, 1.0), [[0.0, 1 / 3], [1 / 2, 0.0]], atol=1e-12)


def test_ease_needs_a_positive_lambda():
    with pytest.raises(ValueError, match="lam must be > 0, got 0"):
        EASE(5, 4, random_train(5, 4, 0.5), lam=0)
