"""PSL: brute force, its activations' support, its hand-written backward, and the tanh closed form
against the path every activation takes."""

import math

import pytest
import torch

from itemrec.ranking import softmax_losses as S
from itemrec.ranking.ranks import map_rows
from tests.ranking import reference as ref
from tests.ranking.test_softmax_losses import by_hand_rows, random_rows


@pytest.mark.parametrize("activation", ["tanh", "atan", "relu"])
@pytest.mark.parametrize("seed", [0, 1])
def test_psl_matches_brute_force(activation, seed):
    scores, rel = random_rows(seed, spread=1.0)  # cosine-like: |d| ≤ 2, d / 2 within [-1, 1]
    for tau, scale in [(0.05, 2.0), (0.3, 1.5)]:
        interaction, user = by_hand_rows(ref.psl_rows(scores.tolist(), rel.tolist(), tau, activation, scale))
        kw = dict(tau=tau, activation=activation, score_scale=scale)
        assert float(S.psl(scores, rel, **kw)) == pytest.approx(interaction, rel=1e-10)
        assert float(S.psl(scores, rel, weighting="user", **kw)) == pytest.approx(user, rel=1e-10)
        chunked = S.psl(scores, rel, max_elements=20, **kw)  # one row per chunk
        assert float(chunked) == pytest.approx(interaction, rel=1e-10)


def test_psl_activations_and_their_support():
    d = torch.tensor([-3.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0], dtype=torch.float64)
    for name, sigma in ref.PSL_SIGMA.items():
        value, defined = S.psl_activation(d, name)
        for x, v, ok in zip(d.tolist(), value.tolist(), defined.tolist()):
            expected = sigma(x)
            assert ok == math.isfinite(expected), (name, x)
            if ok:
                assert v == pytest.approx(expected, rel=1e-12, abs=1e-12), (name, x)
    # exp(σ(d)) bounds the step from above and exp(d) from below on [-1, 1]
    grid = torch.linspace(-1, 1, 201, dtype=torch.float64)
    for name in ref.PSL_SIGMA:
        value, defined = S.psl_activation(grid, name)
        e = torch.where(defined, value.exp(), torch.zeros_like(value))
        assert torch.all(e >= (grid >= 0).double() - 1e-12) and torch.all(e <= grid.exp() + 1e-12), name


@pytest.mark.parametrize("activation", ["relu", "atan"])
def test_psl_pairs_beyond_the_support_are_finite(activation):
    # row 0: the positive is 3 above every negative, d / c = -3: every pair outside the support
    # row 1: some pairs outside, some inside
    scores = torch.tensor([[3.0, 0.0, -0.5, 0.0], [1.0, 0.9, -2.5, 0.0]], dtype=torch.float64, requires_grad=True)
    rel = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    rows = S.psl(scores, rel, tau=0.5, activation=activation, score_scale=1.0, reduction="none").detach()
    floor = math.log(torch.finfo(torch.float64).tiny)
    assert float(rows[0]) == pytest.approx(floor)
    neg = [0.9, -2.5, 0.0]
    expected = math.log(sum(math.exp(ref.PSL_SIGMA[activation](x - 1.0) / 0.5) for x in neg
                            if math.isfinite(ref.PSL_SIGMA[activation](x - 1.0))))
    assert float(rows[1]) == pytest.approx(expected, rel=1e-12)
    (grad,) = torch.autograd.grad(S.psl(scores, rel, tau=0.5, activation=activation, score_scale=1.0), scores)
    assert torch.isfinite(grad).all()
    assert torch.all(grad[0] == 0)  # nothing to push in row 0
    assert grad[1, 2] == 0  # the pair beyond the support carries no gradient



@pytest.mark.parametrize("activation", ["tanh", "atan", "relu"])
def test_gradcheck_psl(activation):
    scores, rel = random_rows(7, q=4, n=6, spread=0.4)
    scores.requires_grad_()
    assert torch.autograd.gradcheck(lambda s: S.psl(s, rel, tau=0.3, activation=activation), (scores,))


@pytest.mark.parametrize("activation", ["tanh", "atan", "relu"])
def test_psl_gradient_equals_autograd_through_the_pairs_chunked_or_not(activation):
    scores, rel = random_rows(11, q=6, n=40, spread=1.5)  # wide: atan / relu pairs beyond their support
    w = torch.rand(6, dtype=scores.dtype, generator=torch.Generator().manual_seed(3))
    s, expected = scores.clone().requires_grad_(), 0
    for u in [u for u in range(6) if (rel[u] > 0).any() and (rel[u] <= 0).any()]:  # autograd, one row at a time
        sigma, ok = S.psl_activation((s[u, rel[u] <= 0][None, :] - s[u, rel[u] > 0][:, None]) / 2.0, activation)
        expected = expected + w[u] * torch.logsumexp((sigma / 0.2).masked_fill(~ok, -math.inf), 1).clamp(min=-700).sum()
    (want,) = torch.autograd.grad(expected, s)
    for max_elements in (10**6, 40):  # one chunk; one row per chunk (checkpointed)
        s = scores.clone().requires_grad_()
        rows = S.psl(s, rel, tau=0.2, activation=activation, reduction="none", max_elements=max_elements)
        (got,) = torch.autograd.grad((rows * (rel > 0).sum(1) * w).sum(), s)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def closed_and_general(scores, rel, **kw):
    """`(values, gradients)` of PSL-tanh's per-row sums, its closed form and the general path."""
    out = []
    for general in (False, True):
        s = scores.clone().requires_grad_()
        rows, _, _ = S._psl_rows(s, rel, activation="tanh", general=general, **kw)
        w = torch.arange(1.0, len(rows) + 1, dtype=rows.dtype)  # a gradient that differs per row
        (grad,) = torch.autograd.grad((rows * w).sum(), s)
        out.append((rows.detach(), grad))
    return out


@pytest.mark.parametrize("spread, dtype", [(1.0, torch.float64), (1.0, torch.float32), (60.0, torch.float64)])
@pytest.mark.parametrize("tau, scale", [(0.05, 2.0), (0.3, 1.0)])
def test_psl_tanh_closed_form_equals_the_general_path(spread, dtype, tau, scale):
    # spread 60: dot-like scores whose pairs far below the positive underflow to e^{σ/τ} = 0 in the
    # general path's terms; the closed form shifts by the row's largest logit and must agree.
    scores, rel = random_rows(5, q=7, n=30, spread=spread, dtype=dtype)
    rel[3, 5:] = 1.0  # many positives, few negatives
    (closed, closed_grad), (general, general_grad) = closed_and_general(scores, rel, tau=tau, score_scale=scale)
    tol = dict(rtol=1e-9, atol=1e-9) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(closed, general, **tol)
    torch.testing.assert_close(closed_grad, general_grad, **tol)
    assert closed[1] == 0 and closed[2] == 0 and closed_grad[1:3].abs().sum() == 0  # no positive / no negative


def test_psl_tanh_closed_form_when_every_pair_is_far_below():
    # Every negative 400 below the positive (dot scores): e^{σ/τ} underflows for all of them, which
    # the general path floors at log(tiny); the closed form keeps the exact value,
    # (log 2 + log sigmoid(k (max_j s_j - s_i))) / τ + log Σ_j e^{(L_j - m) / τ}.
    scores = torch.tensor([[400.0, 0.0, -1.0]], dtype=torch.float64)
    rel = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    tau = 0.1
    logsig = [math.log(1 / (1 + math.exp(-(s - 400.0)))) for s in (0.0, -1.0)]  # k = 1 (c = 2)
    top = max(logsig)
    want = (math.log(2) + top) / tau + math.log(sum(math.exp((v - top) / tau) for v in logsig))
    assert float(S.psl(scores, rel, tau=tau)) == pytest.approx(want, rel=1e-12)
    assert want < -3000  # far below the general path's floor, log(tiny) ≈ -708


def test_map_rows_chunks_by_each_rows_cost_and_psl_by_its_positives(monkeypatch):
    scores, rel = random_rows(2, q=6, n=10)
    seen = []

    def fn(s, r):
        seen.append(len(s))
        return (s.sum(1),)

    costs = torch.tensor([5, 5, 5, 20, 1, 1])
    (out,) = map_rows(fn, scores, rel, max_elements=10, row_elements=costs)
    assert seen == [2, 1, 1, 2]  # 5+5 | 5 (5+20 > 10) | 20 alone (over, at least one row) | 1+1
    torch.testing.assert_close(out, scores.sum(1))
    seen.clear()
    map_rows(fn, scores, rel, max_elements=int(costs.sum()), row_elements=costs)
    assert seen == [6]  # fits: one call, no checkpoint
    # PSL: 40 rows, one with 30 positives, the others one each, 1,000 wide: the padded layout
    # [q, P, N] = 40 x 30 x 1,000 would need 2 chunks under 1e6; one [N] row per positive (69,000) needs none.
    rel = torch.zeros(40, 1000, dtype=torch.float64)
    rel[:, 0] = 1.0
    rel[0, :30] = 1.0
    scores = torch.rand(40, 1000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    calls = []
    rows = S._psl_rows
    monkeypatch.setattr(S, "_psl_rows", lambda s, *a, **k: calls.append(len(s)) or rows(s, *a, **k))
    whole = S.psl(scores, rel, max_elements=10**6)
    assert calls == [40]
    calls.clear()
    torch.testing.assert_close(S.psl(scores, rel, max_elements=5000), whole)  # chunked: same value
    assert calls == [1] + [5] * 7 + [4]  # 30,000 alone; then 5 x 1,000 per chunk
