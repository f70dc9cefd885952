import torch

from itemrec.ranking.ranks import exact_ranks, h_rank, positives, surrogate_ranks
from itemrec.ranking.surrogates import heaviside


def test_positives_pads_ragged_rows():
    rel = torch.tensor([[0.0, 1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    index, mask = positives(rel)
    assert mask.tolist() == [[True, True], [False, False], [True, False]]
    assert index[0].tolist() == [1, 3] and index[2, 0] == 0


def test_exact_ranks_by_hand_with_ties():
    # candidates: p0=0.5, n1=0.5 (tie with p0), p2=0.9, n3=0.7, p4=0.1
    scores = torch.tensor([[0.5, 0.5, 0.9, 0.7, 0.1]])
    rel = torch.tensor([[1.0, 0.0, 1.0, 0.0, 1.0]])
    r = exact_ranks(scores, rel)
    assert r.index[0].tolist() == [0, 2, 4]
    assert r.rank[0].tolist() == [4.0, 1.0, 5.0]  # p0: p2, n3, the tied n1 and itself
    assert r.rank_pos[0].tolist() == [2.0, 1.0, 3.0]
    assert r.rank_neg[0].tolist() == [2.0, 0.0, 2.0]


def test_surrogate_ranks_with_heaviside_are_exact_and_split_by_relevance():
    scores = torch.tensor([[0.5, 0.5, 0.9, 0.7, 0.1]])
    rel = torch.tensor([[2.0, 0.0, 1.0, 0.0, 2.0]])
    index, _ = positives(rel)
    geq, lt = surrogate_ranks(scores, rel, heaviside, index)
    # p0 (rel 2): at least as relevant ahead: itself; less relevant ahead: n1 (tie), p2, n3
    # p4 (rel 2): itself and p0; less relevant ahead: n1, p2, n3
    assert geq[0].tolist() == [1.0, 1.0, 2.0]
    assert lt[0].tolist() == [3.0, 0.0, 3.0]


def test_h_rank_by_hand():
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6]])
    rel = torch.tensor([[0.25, 0.5, 0.0, 0.5]])
    index, _ = positives(rel)
    # ranks: a(0.25) first; b(0.5): 0.5 + min(.5,.25)=0.75; d(0.5): 0.5 + 0.25 + 0.5 = 1.25
    assert h_rank(scores, rel, index)[0].tolist() == [0.25, 0.75, 1.25]
