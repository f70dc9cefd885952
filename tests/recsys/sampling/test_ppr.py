import numpy as np
import torch

from itemrec.recsys.sampling import ppr_scores
from tests.recsys.sampling.conftest import random_train

ALPHA = 0.15


def transition_transpose(train) -> np.ndarray:
    """`Pᵀ` of the random walk `P = D^{-1} A` on the bipartite graph, dense."""
    r = train.toarray().astype(np.float64)
    u, i = r.shape
    a = np.zeros((u + i, u + i))
    a[:u, u:], a[u:, :u] = r, r.T
    return (a / a.sum(1, keepdims=True)).T


def test_ppr_equals_the_linear_solve_fixed_point():
    # π_u = α (I - (1 - α) Pᵀ)^{-1} e_u; its item part, positives excluded, ranks the items
    train = random_train(15, 12, 0.25, seed=1)
    p_t = transition_transpose(train)
    users = torch.tensor([0, 7, 14])
    items, scores = ppr_scores(train, users, alpha=ALPHA, iterations=300, topk=5)
    for row, user in enumerate(users.tolist()):
        restart = np.zeros(27)
        restart[user] = 1.0
        pi = ALPHA * np.linalg.solve(np.eye(27) - (1 - ALPHA) * p_t, restart)
        item_scores = pi[15:].copy()
        item_scores[train[user].indices] = -np.inf
        np.testing.assert_allclose(scores[row].numpy(), np.sort(item_scores)[::-1][:5], rtol=1e-5)
        np.testing.assert_allclose(item_scores[items[row].numpy()], scores[row].numpy(), rtol=1e-5)
        assert not set(items[row].tolist()) & set(train[user].indices.tolist())


def test_truncated_iteration_is_the_walk_up_to_2T_minus_1_steps():
    train = random_train(10, 8, 0.3, seed=2)
    p_t = transition_transpose(train)
    iterations = 3
    restart = np.zeros(18)
    restart[4] = 1.0
    walk = sum(ALPHA * (1 - ALPHA) ** s * np.linalg.matrix_power(p_t, s) @ restart for s in range(1, 2 * iterations, 2))
    expected = walk[10:].copy()
    expected[train[4].indices] = -np.inf
    items, scores = ppr_scores(train, torch.tensor([4]), alpha=ALPHA, iterations=iterations, topk=8)
    got = np.full(8, -np.inf)
    got[items[0].numpy()] = scores[0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_batching_does_not_change_the_scores():
    train = random_train(40, 30, 0.1, seed=3)
    one = ppr_scores(train, topk=10, batch_size=7)
    other = ppr_scores(train, topk=10, batch_size=64)
    torch.testing.assert_close(one[1], other[1])


def test_top_k_larger_than_the_negatives():
    train = random_train(6, 5, 0.5, seed=4)
    items, scores = ppr_scores(train, topk=50)
    assert items.shape == (6, 5)
    for user in range(6):
        n_pos = train[user].nnz
        assert torch.isinf(scores[user, 5 - n_pos :]).all()
        assert set(items[user, : 5 - n_pos].tolist()).isdisjoint(train[user].indices.tolist())
