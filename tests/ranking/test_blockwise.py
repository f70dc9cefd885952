"""The block-wise SupRank ranks against autograd through `suprank_step` on the whole `[Q, P, N]`
(the straightforward implementation, kept as `surrogate_ranks` with a plain callable step)."""

import functools

import pytest
import torch

from itemrec.ranking import losses as L
from itemrec.ranking.blockwise import suprank_ranks
from itemrec.ranking.ranks import map_rows, positives, reduce_queries, surrogate_ranks
from itemrec.ranking.surrogates import SupRank, suprank_offset, suprank_step

PARAMS = [
    dict(tau=0.01, rho=100.0, delta=0.05, start=0.5, offset=None),
    dict(tau=0.05, rho=1.0, delta=0.05, start=0.5, offset=None),
    dict(tau=0.02, rho=10.0, delta=0.1, start=0.75, offset=2.5),  # offset ≠ default: a jump at δ
]


def rows(seed, q=7, n=40, graded=False, ties=False, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    if ties:  # few distinct values: many exact ties, x = 0 and x = δ on many pairs
        scores = torch.randint(0, 8, (q, n), generator=g).to(dtype) * 0.05 - 0.2
    else:
        scores = (torch.randn(q, n, generator=g) * 0.3).to(dtype)
    levels = 4 if graded else 2
    rel = torch.randint(0, levels, (q, n), generator=g).to(dtype) * (torch.rand(q, n, generator=g) < 0.4)
    rel[0] = 0  # a row without positives
    rel[1] = (rel[1] > 0).to(dtype) * rel[1].max().clamp(min=1)  # one level only
    rel[2, :] = 0
    rel[2, 5] = 1.0  # one positive
    return scores, rel


def plain_step(params):
    return functools.partial(suprank_step, **params)


def both(scores, rel, params, max_elements=2**25):
    """`(rank_geq, rank_lt, d rank_lt·w / d scores)` by autograd and block-wise."""
    index, mask = positives(rel)
    weight = torch.randn(index.shape, generator=torch.Generator().manual_seed(9), dtype=scores.dtype)
    out = []
    for step in (plain_step(params), SupRank(**params)):
        leaf = scores.clone().requires_grad_(True)
        geq, lt = surrogate_ranks(leaf, rel, step, index, max_elements)
        (grad,) = torch.autograd.grad((lt * weight * mask).sum(), leaf)
        out.append((geq * mask, lt * mask, grad))
    return out


@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize("graded", [False, True])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("max_elements", [2**25, 50])  # one block; many blocks
def test_blockwise_equals_autograd_values_and_gradients(params, graded, ties, max_elements):
    scores, rel = rows(1, graded=graded, ties=ties)
    (geq_a, lt_a, grad_a), (geq_b, lt_b, grad_b) = both(scores, rel, params, max_elements)
    torch.testing.assert_close(geq_b, geq_a, rtol=0, atol=0)
    torch.testing.assert_close(lt_b, lt_a, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_b, grad_a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("graded", [False, True])
def test_blockwise_equals_autograd_in_float32(graded):
    scores, rel = rows(2, q=33, n=300, graded=graded, dtype=torch.float32)
    (geq_a, lt_a, grad_a), (geq_b, lt_b, grad_b) = both(scores, rel, PARAMS[0], max_elements=4000)
    torch.testing.assert_close(geq_b, geq_a, rtol=0, atol=0)
    torch.testing.assert_close(lt_b, lt_a, rtol=1e-5, atol=1e-4)  # sums of up to 300 terms up to ~60
    # gradients are sums of ±ρ·w terms (ρ = 100) that cancel: float32 rounding relative to their size
    scale = float(grad_a.abs().max())
    torch.testing.assert_close(grad_b, grad_a, rtol=1e-4, atol=1e-6 * scale)


def autograd_sup_ap(scores, relevance, max_elements=2**25, **params):
    """SupAP through autograd on `[Q, P, N]`, chunked and checkpointed by `map_rows`."""
    step = plain_step({**dict(tau=0.01, rho=100.0, delta=0.05, start=0.5, offset=None), **params})
    fn = functools.partial(L._sup_ap_rows, step=step, max_elements=max_elements)
    loss, valid = map_rows(fn, scores, relevance, max_elements=max_elements)
    return reduce_queries(loss, valid, "mean")


@pytest.mark.parametrize("params", [{}, dict(tau=0.05, rho=1.0)])
def test_sup_ap_equals_the_autograd_implementation_to_1e6_on_recommendation_rows(params):
    """Rows like training's (a user's sampled positives among a few hundred candidates), float32."""
    g = torch.Generator().manual_seed(0)
    q, n = 64, 330
    scores = torch.randn(q, n, generator=g).mul_(0.3)
    count = torch.randint(1, 65, (q, 1), generator=g)
    relevance = (torch.rand(q, n, generator=g).argsort(1) < count).float()
    values, grads = [], []
    for fn in (autograd_sup_ap, L.sup_ap):
        leaf = scores.clone().requires_grad_(True)
        loss = fn(leaf, relevance, max_elements=2**18, **params)
        loss.backward()
        values.append(loss.detach())
        grads.append(leaf.grad)
    torch.testing.assert_close(values[1], values[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=1e-6)
    assert grads[0].abs().max() > 1e-4  # the comparison is not between two zero gradients


def test_padding_slots_stay_finite_and_do_not_leak_gradient():
    scores = torch.tensor([[0.3, 0.1, 0.2, 0.9], [0.5, 0.4, 0.1, 0.0]], dtype=torch.float64, requires_grad=True)
    rel = torch.tensor([[0.0, 1.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    index, mask = positives(rel)
    geq, lt = suprank_ranks(scores, rel, index, 0.01, 100.0, 0.05, 0.5, suprank_offset(0.01, 0.05, 0.5))
    assert torch.isfinite(geq).all() and torch.isfinite(lt).all() and (geq >= 1).all()
    (grad,) = torch.autograd.grad((lt * mask).sum(), scores, retain_graph=True)
    assert grad[1, 2:].abs().sum() > 0  # the negatives below row 1's positive get a gradient
    (grad_pad,) = torch.autograd.grad((lt * ~mask).sum(), scores)
    # row 1's padding slots point at candidate 0 (a negative): their own pairs may move scores,
    # but callers multiply them by the mask, which is what sup_ap etc. do
    assert torch.isfinite(grad_pad).all()


def test_no_positives_and_no_negatives():
    scores = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    for rel in (torch.zeros(3, 5, dtype=torch.float64), torch.ones(3, 5, dtype=torch.float64)):
        index, mask = positives(rel)
        geq, lt = surrogate_ranks(scores, rel, SupRank(), index)
        geq_ref, lt_ref = surrogate_ranks(scores, rel, plain_step(PARAMS[0]), index)
        torch.testing.assert_close(geq * mask, geq_ref * mask)
        torch.testing.assert_close(lt, lt_ref)
        (grad,) = torch.autograd.grad((lt * mask).sum() + 0 * scores.sum(), scores)
        assert torch.count_nonzero(grad) == 0


def test_suprank_object_is_suprank_step():
    x = torch.linspace(-1, 1, 101, dtype=torch.float64)
    for params in PARAMS:
        torch.testing.assert_close(SupRank(**params)(x), suprank_step(x, **params), rtol=0, atol=0)


@pytest.mark.parametrize("graded", [False, True])
def test_rows_grouped_by_their_positive_counts_give_the_same_ranks_and_gradients(graded):
    from itemrec.ranking.blockwise import GROUP_ROWS, _SupRankRanks

    g = torch.Generator().manual_seed(3)
    q, n = 3 * GROUP_ROWS + 5, 60  # several groups, the last one short
    scores = (torch.randn(q, n, generator=g, dtype=torch.float64) * 0.3)
    counts = torch.randint(0, 45, (q,), generator=g)  # very different widths; one row may have none
    counts[7] = 50
    levels = torch.randint(1, 4 if graded else 2, (q, n), generator=g).double()
    relevance = torch.where(torch.arange(n) < counts[:, None], levels, torch.zeros_like(levels))
    relevance = relevance[:, torch.randperm(n, generator=g)]  # positives anywhere in the row
    index, mask = positives(relevance)
    step = dict(tau=0.05, rho=1.0, delta=0.05, start=0.5, offset=1.0)
    one = scores.clone().requires_grad_()
    grouped = scores.clone().requires_grad_()
    geq_1, lt_1 = _SupRankRanks.apply(one, relevance, index, *step.values(), 2**20)  # the whole batch at once
    geq_g, lt_g = suprank_ranks(grouped, relevance, index, *step.values())
    torch.testing.assert_close(geq_g[mask], geq_1[mask])
    torch.testing.assert_close(lt_g[mask], lt_1[mask])
    assert bool(torch.isfinite(geq_g).all()) and bool(torch.isfinite(lt_g).all())  # padding slots too
    weights = torch.rand(q, index.shape[1], generator=g, dtype=torch.float64) * mask
    (lt_1 * weights).sum().backward()
    (lt_g * weights).sum().backward()
    torch.testing.assert_close(grouped.grad, one.grad)
