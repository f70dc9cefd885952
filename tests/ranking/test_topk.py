import pytest
import torch

from itemrec.ranking.topk import GROUP, full_ranking_topk, grouped_topk


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


@pytest.mark.parametrize(("n", "k"), [(2000, 50), (1601, 10), (64, 2)])
def test_grouped_topk_equals_torch_topk(n, k):
    g = torch.Generator().manual_seed(n)
    width = -(-n // GROUP) * GROUP
    block = torch.full((37, width), float("-inf"))
    block[:, :n] = torch.randn(37, n, generator=g)  # continuous scores: no ties
    block[3, :n] = torch.linspace(-1, 1, n)  # the whole top-k in one run of columns
    block[5, : n - 1] = -5.0
    block[5, n - 1] = 7.0  # one large value, the rest tied far below: values must still match
    idx, val = grouped_topk(block, k)
    ref = torch.topk(block, k, dim=1)
    assert torch.equal(val, ref.values)
    assert torch.equal(block.gather(1, idx), val)
    rows = [r for r in range(37) if r != 5]
    assert torch.equal(idx[rows], ref.indices[rows])


@pytest.mark.parametrize("chunk_elements", [500, 2**21])
def test_full_ranking_topk_on_a_large_catalogue_matches_brute_force(chunk_elements):
    # 1,700 items and k = 50: the grouped path (items padded to a multiple of GROUP)
    g = torch.Generator().manual_seed(1)
    users, items = torch.randn(30, 8, generator=g), torch.randn(1700, 8, generator=g)
    seen = {0: list(range(0, 1700, 3)), 9: list(range(1660)), 20: [5, 1699]}  # user 9: 40 allowed < k
    idx, val = full_ranking_topk(users, items, k=50, exclude=csr(seen, 30, 1700), chunk_elements=chunk_elements)
    scores = users @ items.T
    for u, cols in seen.items():
        scores[u, cols] = float("-inf")
    ref = torch.topk(scores, 50, dim=1)
    torch.testing.assert_close(val, ref.values)  # chunks of one row go through gemv: rounding differs
    assert torch.all(idx < 1700)  # never a padding column
    finite = torch.isfinite(ref.values)
    torch.testing.assert_close(scores.gather(1, idx)[finite], ref.values[finite])  # our picks score as the best
    for u in range(30):
        picked = idx[u][finite[u]].tolist()
        assert len(set(picked)) == len(picked) and not set(picked) & set(seen.get(u, []))
