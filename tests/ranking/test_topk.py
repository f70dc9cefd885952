import pytest
import torch

from itemrec.ranking.topk import full_ranking_topk


def csr(rows, n_rows, n_cols):
    dense = torch.zeros(n_rows, n_cols)
    for r, cols in rows.items():
        dense[r, cols] = 1.0
    return dense.to_sparse_csr()


@pytest.mark.parametrize("chunk_elements", [7, 50, 2**20])
def test_full_ranking_topk_matches_brute_force_with_exclusions(chunk_elements):
    g = torch.Generator().manual_seed(0)
    users, items = torch.randn(13, 4, generator=g), torch.randn(9, 4, generator=g)
    seen = {0: [1, 2, 3], 4: [0], 7: list(range(8)), 12: [8, 5]}
    idx, val = full_ranking_topk(users, items, k=4, exclude=csr(seen, 13, 9), chunk_elements=chunk_elements)
    scores = users @ items.T
    for u in range(13):
        allowed = [i for i in range(9) if i not in seen.get(u, [])]
        best = sorted(allowed, key=lambda i: -float(scores[u, i]))[:4]
        got = [i for i in idx[u].tolist() if i in allowed]
        assert got == best
        torch.testing.assert_close(val[u, : len(best)], scores[u, best])
    # user 7 has one allowed item: it comes first, the rest are excluded items at -inf
    assert idx[7, 0] == 8 and torch.all(torch.isinf(val[7, 1:]))


def test_k_larger_than_catalogue_is_clamped():
    idx, val = full_ranking_topk(torch.randn(3, 2), torch.randn(5, 2), k=50)
    assert idx.shape == (3, 5) and val.shape == (3, 5)
    assert torch.all(val[:, :-1] >= val[:, 1:])
