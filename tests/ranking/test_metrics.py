import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, ndcg_score

from itemrec.ranking import metrics as M
from tests.ranking import reference as ref


def random_rows(seed, q=12, n=9, ties=True, graded=False):
    """Rows with ties (scores on a coarse grid), some empty queries and some all-positive ones."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 4, (q, n), generator=g).double() if ties else torch.randn(q, n, generator=g, dtype=torch.float64)
    if graded:
        rel = torch.randint(0, 4, (q, n), generator=g).double() * (torch.rand(q, n, generator=g) < 0.5)
    else:
        rel = (torch.rand(q, n, generator=g) < 0.35).double()
    rel[0] = 0  # a query without positives
    rel[1] = rel[1].clamp(min=1) if not graded else rel[1]  # every candidate relevant
    return scores, rel


def per_query(fn_ref, scores, rel, *args):
    return [fn_ref(s, r, *args) for s, r in zip(scores.tolist(), rel.tolist())]


def assert_matches(values, expected):
    """Per-query values match, skipped queries are 0, and the mean runs over defined queries."""
    assert values.shape == (len(expected),)
    for v, e in zip(values.tolist(), expected):
        assert v == pytest.approx(0.0 if e is None else e, abs=1e-9)


def mean_defined(expected):
    defined = [e for e in expected if e is not None]
    return sum(defined) / len(defined)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [True, False])
def test_ap_and_map_at_r_match_reference(seed, ties):
    scores, rel = random_rows(seed, ties=ties)
    for fn, fn_ref in [(M.ap, ref.ap), (M.map_at_r, ref.map_at_r)]:
        expected = per_query(fn_ref, scores, rel)
        assert_matches(fn(scores, rel, reduction="none"), expected)
        assert float(fn(scores, rel)) == pytest.approx(mean_defined(expected))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 3, 9, 25])
@pytest.mark.parametrize("name", ["hit", "recall", "precision", "ndcg", "mrr"])
def test_topk_metrics_match_reference(seed, k, name):
    scores, rel = random_rows(seed, graded=(name == "ndcg" and seed % 2 == 1))
    fn = {"hit": M.hit_at_k, "recall": M.recall_at_k, "precision": M.precision_at_k, "ndcg": M.ndcg_at_k}
    expected = per_query(ref.topk, scores, rel, k, name)
    values = M.mrr(scores, rel, k, reduction="none") if name == "mrr" else fn[name](scores, rel, k, reduction="none")
    assert_matches(values, expected)


def test_ties_are_pessimistic():
    scores = torch.tensor([[1.0, 1.0, 0.0]])
    rel = torch.tensor([[1.0, 0.0, 0.0]])  # the positive ties with a negative at the top
    assert float(M.ap(scores, rel)) == pytest.approx(0.5)
    assert float(M.hit_at_k(scores, rel, 1)) == 0.0
    assert float(M.mrr(scores, rel)) == pytest.approx(0.5)


def test_no_positive_is_skipped_not_nan():
    scores = torch.randn(3, 5)
    rel = torch.zeros(3, 5)
    for value in [M.ap(scores, rel), M.ndcg_at_k(scores, rel, 3), M.map_at_r(scores, rel)]:
        assert float(value) == 0.0 and not math.isnan(float(value))
    rel[2, 1] = 1.0
    assert float(M.recall_at_k(scores, rel, 5)) == 1.0  # the mean runs over the one defined query


@pytest.mark.parametrize("seed", range(5))
def test_ap_equals_sklearn_without_ties(seed):
    scores, rel = random_rows(seed, q=8, n=30, ties=False)
    values = M.ap(scores, rel, reduction="none")
    for i in range(2, 8):
        if rel[i].sum() == 0:
            continue
        expected = average_precision_score(rel[i].numpy(), scores[i].numpy())
        assert float(values[i]) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [5, 10, None])
def test_graded_ndcg_equals_sklearn_with_exponential_gain(seed, k):
    rng = np.random.default_rng(seed)
    rel = rng.integers(0, 4, size=(10, 20)).astype(float)
    rel[rel.sum(1) == 0, 0] = 1.0
    scores = rng.standard_normal((10, 20))
    gains = 2.0**rel - 1  # sklearn's gain is linear in y_true: feed it 2^rel - 1
    mine = M.ndcg_at_k(torch.from_numpy(scores), torch.from_numpy(rel), k or 20)
    assert float(mine) == pytest.approx(ndcg_score(gains, scores, k=k), abs=1e-9)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("num_levels", [1, 2, 3])
def test_h_ap_and_asi_match_reference(seed, num_levels):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 5, (10, 12), generator=g).double()
    levels = torch.randint(0, num_levels + 1, (10, 12), generator=g)
    levels[0] = 0
    for fn, fn_ref in [(M.h_ap, ref.h_ap), (M.asi, ref.asi)]:
        expected = per_query(fn_ref, scores, levels, num_levels)
        assert_matches(fn(scores, levels, num_levels, reduction="none"), expected)


@pytest.mark.parametrize("seed", range(5))
def test_h_ap_with_one_level_equals_ap(seed):
    scores, rel = random_rows(seed, n=15)
    levels = (rel > 0).long()
    torch.testing.assert_close(M.h_ap(scores, levels, 1, reduction="none"), M.ap(scores, rel, reduction="none"))


def test_asi_perfect_and_reversed_ranking():
    levels = torch.tensor([[2, 2, 1, 1, 0, 0]])
    perfect = torch.tensor([[6.0, 5, 4, 3, 2, 1]])
    assert float(M.asi(perfect, levels, 2)) == pytest.approx(1.0)
    assert float(M.h_ap(perfect, levels, 2)) == pytest.approx(1.0)
    reversed_ = -perfect
    # ranked levels 0,0,1,1 vs ideal 2,2,1,1: SI(1)=0, SI(2)=0, SI(3)=1/3 (one 1 each), SI(4)=2/4
    assert float(M.asi(reversed_, levels, 2)) == pytest.approx((0 + 0 + 1 / 3 + 2 / 4) / 4)


def test_topk_metrics_with_cut_ranking():
    # Top-3 of a catalogue where the query has 4 relevant items: positions 1 and 3 are hits.
    ranked = torch.tensor([[1.0, 0.0, 1.0]])
    out = M.topk_metrics(ranked, torch.tensor([4]), ks=(2, 3))
    assert float(out["recall@3"]) == pytest.approx(2 / 4)
    assert float(out["precision@2"]) == pytest.approx(1 / 2)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert float(out["ndcg@3"]) == pytest.approx((1 + 1 / math.log2(4)) / idcg)
    assert float(out["mrr@3"]) == 1.0 and float(out["hit@2"]) == 1.0


def test_ranked_list_metrics_hand_computed():
    hit = torch.tensor([[1, 0, 1], [0, 0, 0]], dtype=torch.bool)
    torch.testing.assert_close(M.ranked_ap(hit), torch.tensor([(1 + 2 / 3) / 2, 0.0], dtype=torch.float64))
    torch.testing.assert_close(M.ranked_map_at_r(hit), torch.tensor([0.5, 0.0], dtype=torch.float64))  # R = 2: only rank 1 counts
    # ASI of levels (2, 0, 1), ideal (2, 1, 0), R = 2: SI(1) = 1, SI(2) = 1/2
    torch.testing.assert_close(M.ranked_asi(torch.tensor([[2, 0, 1]]), 2), torch.tensor([0.75], dtype=torch.float64))
    # H-AP with one level is AP: (1 + 2/3) / 2
    levels = torch.tensor([[1, 0, 1]])
    rel = M.hierarchical_relevance(levels, 1, dtype=torch.float64)
    torch.testing.assert_close(M.ranked_h_ap(levels, rel, 1), torch.tensor([(1 + 2 / 3) / 2], dtype=torch.float64))


def two_sort_order(scores, relevance):
    """Reference order: stable sort by relevance (ascending), then stable sort by score (descending)."""
    by_relevance = torch.argsort(relevance, dim=1, stable=True)
    by_score = torch.argsort(scores.gather(1, by_relevance), dim=1, descending=True, stable=True)
    return by_relevance.gather(1, by_score)


@pytest.mark.parametrize("seed", range(4))
def test_rank_order_single_key_equals_two_sorts(seed):
    g = torch.Generator().manual_seed(seed)
    # float32 scores with many ties, signed zeros, negatives, infinities, huge and tiny values
    grid = torch.tensor([0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0e38, -3.0e38, 1e-40, -1e-40, float("inf"), -float("inf")])
    scores = grid[torch.randint(0, len(grid), (30, 40), generator=g)]
    scores[::2] = torch.randn(15, 40, generator=g).round(decimals=1)
    relevance = torch.randint(-1, 4, (30, 40), generator=g)
    assert M._score_relevance_key(scores, relevance) is not None  # the fast path is the one tested
    assert torch.equal(M.rank_order(scores, relevance), two_sort_order(scores, relevance))
    assert torch.equal(M.rank_order(scores, relevance > 1), two_sort_order(scores, (relevance > 1).long()))


def test_rank_order_falls_back_where_the_key_is_not_exact():
    scores = torch.tensor([[0.5, float("nan"), 0.5, 1.0]])
    relevance = torch.tensor([[1, 0, 0, 1]])
    assert M._score_relevance_key(scores, relevance) is None
    assert M._score_relevance_key(scores.double(), relevance) is None
    assert M._score_relevance_key(scores.nan_to_num(), relevance.double()) is None
    assert torch.equal(M.rank_order(scores.double(), relevance), two_sort_order(scores.double(), relevance))
    # the hand-ordered case: scores 1.0 > 0.5 = 0.5 (irrelevant first) ...
    assert M.rank_order(torch.tensor([[0.5, 0.2, 0.5, 1.0]]), relevance).tolist() == [[3, 2, 0, 1]]


@pytest.mark.parametrize("num_levels", [1, 2, 3])
def test_ideal_levels_equals_sorting(num_levels):
    levels = torch.randint(0, num_levels + 1, (20, 33), generator=torch.Generator().manual_seed(num_levels))
    assert torch.equal(M.ideal_levels(levels, num_levels), levels.sort(dim=1, descending=True).values)
    assert M.ideal_levels(torch.tensor([[0, 2, 1, 2, 0]]), 2).tolist() == [[2, 2, 1, 0, 0]]
