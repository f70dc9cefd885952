"""Approximate PPR (walks, push) against the exact power iteration on small graphs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from itemrec.experiment.config import NamedSpec
from itemrec.experiment.errors import UserError
from itemrec.experiment.registry import build
from itemrec.recsys.data.synth import SynthSpec, synthesize
from itemrec.recsys.sampling import SAMPLERS, ppr_scores
from itemrec.recsys.sampling.ppr import PPRNegatives, choose_ppr_method
from itemrec.recsys.sampling.ppr_local import (
    BipartiteGraph,
    approximate_ppr_scores,
    item_id_dtype,
    push_scores,
    row_topk,
    walk_scores,
    walk_topk,
    walk_visits,
    walk_weights,
)
from tests.recsys.sampling.conftest import generator, random_train

ALPHA = 0.15


def community_train(users: int = 300, items: int = 240, interactions: int = 6_000, seed: int = 0) -> sp.csr_matrix:
    frame = synthesize(SynthSpec(users=users, items=items, interactions=interactions, seed=seed, communities=4))
    rows, cols = frame["user_id"].to_numpy(), frame["item_id"].to_numpy()
    return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(users, items))


def dense_estimate(train: sp.csr_matrix, users: np.ndarray, walks: int, hops: int, seed: int = 0) -> np.ndarray:
    graph = BipartiteGraph(train)
    sparse, tail = walk_scores(graph, users, ALPHA, 10, walks, hops, np.random.default_rng(seed))
    return sparse.toarray() + tail[:, None] * graph.item_degree / graph.item_degree.sum()


def exact_dense(train: sp.csr_matrix, iterations: int = 10) -> np.ndarray:
    """Item part of the truncated walk, `Σ_k w_k R_uᵀ (R_u R_i)^k e_u`, by dense products."""
    r = train.toarray().astype(np.float64)
    to_items = r / np.maximum(r.sum(1, keepdims=True), 1)  # [U, I]
    to_users = (r / np.maximum(r.sum(0, keepdims=True), 1)).T  # [I, U]
    x = np.eye(r.shape[0])
    out = np.zeros(r.shape)
    for weight in walk_weights(ALPHA, iterations):
        out += weight * x @ to_items
        x = x @ to_items @ to_users
    return out


def overlap(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.mean([len(set(x.tolist()) & set(y.tolist())) / len(x) for x, y in zip(a, b, strict=True)]))


def test_walks_without_tail_are_unbiased_for_the_truncated_walk():
    train = random_train(12, 9, 0.3, seed=5)
    users = np.arange(12)
    estimate = dense_estimate(train, users, walks=20_000, hops=9)  # every step sampled, no tail
    np.testing.assert_allclose(estimate, exact_dense(train), atol=2e-3)


def test_walks_are_non_negative_and_sum_to_the_item_mass():
    train = community_train()
    estimate = dense_estimate(train, np.arange(50), walks=50, hops=1)
    assert (estimate >= 0).all()
    item_mass = walk_weights(ALPHA, 10).sum()  # (1-α)/(2-α)·(1 - (1-α)^20) < 1
    np.testing.assert_allclose(estimate.sum(1), item_mass, rtol=1e-9)
    assert item_mass < 1


def test_walks_top_k_overlaps_exact_on_a_community_graph():
    train = community_train()
    exact_items, _ = ppr_scores(train, topk=60)
    items, scores = approximate_ppr_scores(train, "walks", topk=60, walks=200, seed=0)
    assert overlap(items, exact_items) > 0.85
    assert (scores[:, :-1] >= scores[:, 1:]).all()
    for user in range(train.shape[0]):
        assert not set(items[user].tolist()) & set(train[user].indices.tolist())


def test_walks_table_holds_int32_ids_equal_to_the_compiled_ranking():
    """The table keeps item ids as int32 (`item_id_dtype`) and float32 scores, the same values as
    the int64 ids `walk_topk` writes, ranks `skip + 1 .. K` of them."""
    train = community_train()
    items, scores = approximate_ppr_scores(train, "walks", topk=60, walks=30, seed=4, skip=10)
    assert items.dtype == torch.int32 and scores.dtype == torch.float32 and items.shape == (train.shape[0], 50)
    graph = BipartiteGraph(train)
    users = np.arange(train.shape[0])
    visits, tail = walk_visits(graph, users, ALPHA, 10, 30, 1, np.random.default_rng(4))
    full_items, full_scores = np.empty((len(users), 60), dtype=np.int64), np.empty((len(users), 60), dtype=np.float32)
    walk_topk(graph, users, visits, tail, 60, full_items, full_scores)
    assert torch.equal(items.long(), torch.from_numpy(full_items[:, 10:]))
    assert torch.equal(scores, torch.from_numpy(full_scores[:, 10:]))
    assert item_id_dtype(2**31 - 1) == torch.int32 and item_id_dtype(2**31) == torch.long


def test_walks_are_deterministic_under_a_seed():
    train = community_train(seed=1)
    one = approximate_ppr_scores(train, "walks", topk=30, walks=20, seed=7)
    two = approximate_ppr_scores(train, "walks", topk=30, walks=20, seed=7)
    other = approximate_ppr_scores(train, "walks", topk=30, walks=20, seed=8)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])
    assert not torch.equal(one[1], other[1])


def test_push_converges_to_the_exact_fixed_point():
    train = random_train(15, 12, 0.25, seed=1)
    graph = BipartiteGraph(train)
    estimate = push_scores(graph, np.arange(15), ALPHA, eps=1e-10).toarray()
    exact = exact_dense(train, iterations=300)
    assert (estimate >= 0).all() and (estimate.sum(1) <= 1).all()
    np.testing.assert_allclose(estimate, exact, atol=1e-7)
    coarse = push_scores(graph, np.arange(15), ALPHA, eps=1e-3).toarray()
    assert (coarse <= exact + 1e-12).all() and np.abs(coarse - exact).max() > 1e-6  # p + r undershoots


def test_push_top_k_matches_exact_on_a_community_graph():
    train = community_train()
    exact_items, _ = ppr_scores(train, topk=60, iterations=60)
    items, _ = approximate_ppr_scores(train, "push", topk=60, eps=1e-8)
    assert overlap(items, exact_items) > 0.95


def test_dense_and_sparse_ranking_paths_agree(monkeypatch):
    import itemrec.recsys.sampling.ppr_local as local

    train = community_train()
    graph = BipartiteGraph(train)
    users = np.arange(300)
    scores, tail = walk_scores(graph, users, ALPHA, 10, 30, 1, np.random.default_rng(3))
    dense = row_topk(graph, users, scores, tail, 40)
    monkeypatch.setattr(local, "DENSE_SHARE", 0)  # never dense
    monkeypatch.setattr(local, "ROW_BLOCK", 2_000)  # several padded blocks
    sparse = row_topk(graph, users, scores, tail, 40)
    torch.testing.assert_close(dense[1], sparse[1])
    assert overlap(dense[0], sparse[0]) > 0.99  # ties may order differently


@pytest.mark.parametrize(("walks", "hops", "users"), [(30, 1, 300), (5, 1, 300), (20, 3, 300), (10, 9, 60)])
def test_compiled_walk_ranking_is_the_top_k_of_the_estimate(walks, hops, users):
    """`walk_topk` against a brute-force top-k of the dense estimate, positives masked."""
    train = community_train(users=users, items=400 if users == 300 else 80, interactions=6_000 if users == 300 else 900)
    graph = BipartiteGraph(train)
    rows = np.arange(users)
    visits, tail = walk_visits(graph, rows, ALPHA, 10, walks, hops, np.random.default_rng(3))
    k = 50
    items, scores = np.empty((users, k), dtype=np.int64), np.empty((users, k), dtype=np.float32)
    walk_topk(graph, rows, visits, tail, k, items, scores)
    estimate = (visits @ graph.to_items).toarray() + tail[:, None] * graph.item_degree / graph.item_degree.sum()
    estimate[train.toarray() > 0] = -np.inf
    best = -np.sort(-estimate, axis=1)[:, :k]
    np.testing.assert_allclose(scores, best, rtol=1e-6)  # the k best values, in order
    np.testing.assert_allclose(np.take_along_axis(estimate, items, 1), scores, rtol=1e-6)  # held by these items
    assert all(len(set(row)) == k for row in items.tolist())


def test_compiled_walk_ranking_is_the_same_on_one_thread_and_two():
    train = community_train()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = approximate_ppr_scores(train, "walks", topk=60, walks=40, seed=1)
        torch.set_num_threads(2)
        two = approximate_ppr_scores(train, "walks", topk=60, walks=40, seed=1)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])


def test_users_with_few_negatives_get_positives_last():
    train = random_train(6, 5, 0.5, seed=4)
    items, scores = approximate_ppr_scores(train, "walks", topk=5, walks=10)
    for user in range(6):
        negatives = 5 - train[user].nnz
        assert torch.isfinite(scores[user, :negatives]).all() and torch.isinf(scores[user, negatives:]).all()
        assert sorted(items[user].tolist()) == list(range(5))


def test_auto_switches_by_graph_size(monkeypatch):
    import itemrec.recsys.sampling.ppr as ppr

    train = community_train()
    assert choose_ppr_method("auto", train) == "exact"
    monkeypatch.setattr(ppr, "EXACT_MAX_WORK", 10)
    assert choose_ppr_method("auto", train) == "walks"
    sampler = PPRNegatives(train, topk=20, skip=5, method="auto", walks=50)
    table = sampler.compute()
    assert table.shape == (300, 20)
    with pytest.raises(UserError) as err:
        build(SAMPLERS, NamedSpec(name="ppr", method="pagerank"), "sampling", train)
    assert str(err.value) == "sampling.method: must be 'auto', 'exact', 'push' or 'walks' (got 'pagerank')"


def test_sampler_draws_from_the_walks_table():
    train = community_train()
    sampler = PPRNegatives(train, topk=20, skip=5, method="walks", walks=50, hard_ratio=1.0, seed=2)
    users = torch.arange(300)
    drawn = sampler.sample(users, 16, generator())
    table = sampler.table
    assert all(set(drawn[u].tolist()) <= set(table[u].tolist()) for u in range(300))
    assert not any(set(drawn[u].tolist()) & set(train[u].indices.tolist()) for u in range(300))


@pytest.mark.parametrize("method", ["walks", "push"])
def test_skip_returns_the_table_without_its_first_ranks(method):
    train = community_train()
    items, scores = approximate_ppr_scores(train, method, topk=30, walks=20, eps=1e-6, seed=4)
    pool, pool_scores = approximate_ppr_scores(train, method, topk=30, walks=20, eps=1e-6, seed=4, skip=10)
    assert pool.shape == (300, 20)
    assert torch.equal(pool, items[:, 10:]) and torch.equal(pool_scores, scores[:, 10:])
