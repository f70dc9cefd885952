import math

import pytest
import torch

from itemrec.ranking import losses as L
from itemrec.ranking import modules
from itemrec.ranking import softmax_losses as S
from itemrec.ranking.thresholds import TopKEstimate

# Two rows of four candidates: row A has two positives, row B one.
SCORES = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 0.5, 1.0, -0.5]], dtype=torch.float64)
REL = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)


def lse(values):
    return math.log(sum(math.exp(v) for v in values))


def by_hand_rows(per_pos):
    """Per-row lists of per-positive values -> (interaction mean, user mean)."""
    flat = [v for row in per_pos for v in row]
    return sum(flat) / len(flat), sum(sum(row) / len(row) for row in per_pos) / len(per_pos)


def random_rows(seed, q=5, n=9, spread=0.5, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    scores = (torch.rand(q, n, generator=g, dtype=dtype) * 2 - 1) * spread
    rel = (torch.rand(q, n, generator=g) < 0.35).to(dtype)
    rel[0, :2] = 1.0
    rel[1] = 0.0  # no positive: skipped
    rel[2] = 1.0  # no negative: skipped
    return scores, rel


# ------------------------------------------------------------------ sampled softmax / SL


def test_sampled_softmax_default_is_unchanged():
    scores = torch.tensor(
        [[0.9, 0.1, 0.4, -0.3, 0.8], [0.2, 0.7, -0.5, 0.0, 0.3], [0.5] * 5], dtype=torch.float64
    )
    rel = torch.tensor([[1, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0] * 5], dtype=torch.float64)
    # InfoNCE by hand, T = 0.1, each row's mean over its positives, then the mean over rows
    t = 0.1
    row_a = [-math.log(math.exp(s / t) / (math.exp(s / t) + sum(math.exp(x / t) for x in (0.1, -0.3, 0.8))))
             for s in (0.9, 0.4)]
    row_b = -math.log(math.exp(0.0) / (math.exp(0.0) + sum(math.exp(x / t) for x in (0.2, 0.7, -0.5, 0.3))))
    expected = (sum(row_a) / 2 + row_b) / 2
    value = L.sampled_softmax(scores, rel)
    assert float(value) == pytest.approx(expected, rel=1e-12)
    assert float(value) == pytest.approx(4.5959632352375355, rel=1e-12)  # the value before the option
    assert float(L.sampled_softmax(scores, rel, temperature=0.5)) == pytest.approx(1.618495593345457, rel=1e-12)
    torch.testing.assert_close(
        L.sampled_softmax(scores, rel, reduction="none"),
        torch.tensor([2.166286392661198, 7.025640077813873, 0.0], dtype=torch.float64),
    )
    same = L.sampled_softmax(scores, rel, include_positive=True, weighting="user")
    assert torch.equal(value, same)
    assert float(modules.SampledSoftmaxLoss()(scores, rel)) == float(value)


def test_sl_benchmark_form_by_hand_both_weightings():
    neg_a, neg_b = lse([0.0, -1.0]), lse([0.0, 1.0, -0.5])  # τ = 1
    per_pos = [[neg_a - 2.0, neg_a - 1.0], [neg_b - 0.5]]  # log Σ_j exp(s_j - s_i)
    interaction, user = by_hand_rows(per_pos)
    sl = L.sampled_softmax(SCORES, REL, temperature=1.0, include_positive=False)
    assert float(sl) == pytest.approx(interaction, rel=1e-12)  # weighting follows include_positive
    user_sl = L.sampled_softmax(SCORES, REL, temperature=1.0, include_positive=False, weighting="user")
    assert float(user_sl) == pytest.approx(user, rel=1e-12)
    rows = L.sampled_softmax(SCORES, REL, temperature=1.0, include_positive=False, reduction="none")
    torch.testing.assert_close(rows, torch.tensor([sum(per_pos[0]) / 2, per_pos[1][0]], dtype=torch.float64))
    assert modules.SampledSoftmaxLoss(include_positive=False).batch_mean
    assert not modules.SampledSoftmaxLoss().batch_mean


@pytest.mark.parametrize("weighting", ["interaction", "user"])
def test_sl_push_adds_each_row_s_mean_score_per_positive(weighting):
    """Row A's mean score is 0.5, row B's 0.25: each positive's term grows by p times its row's mean.
    SL alone does not move when a row's scores all shift; with the push it falls by p per unit shift
    of the mean's pairs."""
    neg_a, neg_b = lse([0.0, -1.0]), lse([0.0, 1.0, -0.5])
    p = 1.5
    per_pos = [[neg_a - 2.0 + p * 0.5, neg_a - 1.0 + p * 0.5], [neg_b - 0.5 + p * 0.25]]
    interaction, user = by_hand_rows(per_pos)
    scores = SCORES.clone().requires_grad_()
    sl = L.sampled_softmax(scores, REL, 1.0, include_positive=False, weighting=weighting, push=p)
    assert float(sl) == pytest.approx(interaction if weighting == "interaction" else user, rel=1e-12)
    (grad,) = torch.autograd.grad(sl, scores)
    (plain,) = torch.autograd.grad(L.sampled_softmax(scores, REL, 1.0, include_positive=False, weighting=weighting),
                                   scores)
    rows_weight = [2 / 3, 1 / 3] if weighting == "interaction" else [1 / 2, 1 / 2]  # each row's share of the mean
    for row, share in enumerate(rows_weight):
        assert float(plain[row].sum()) == pytest.approx(0.0, abs=1e-12)  # SL: blind to a row's shift
        assert float(grad[row].sum()) == pytest.approx(p * share, rel=1e-12)
    module = modules.SampledSoftmaxLoss(temperature=1.0, include_positive=False, weighting=weighting, push=p)
    assert float(module(SCORES, REL)) == float(sl)


# ------------------------------------------------------------------ BSL


def test_bsl_by_hand():
    t1, t2 = 0.5, 0.25
    neg_a = lse([0.0 / t2, -1.0 / t2])
    neg_b = lse([0.0 / t2, 1.0 / t2, -0.5 / t2])
    per_pos = [[-2.0 / t1 + t2 / t1 * neg_a, -1.0 / t1 + t2 / t1 * neg_a], [-0.5 / t1 + t2 / t1 * neg_b]]
    interaction, user = by_hand_rows(per_pos)
    assert float(S.bsl(SCORES, REL, t1, t2)) == pytest.approx(interaction, rel=1e-12)
    assert float(S.bsl(SCORES, REL, t1, t2, weighting="user")) == pytest.approx(user, rel=1e-12)
    # the formula as written: -log[ e^{s/τ1} / (Σ e^{s_j/τ2})^{τ2/τ1} ]
    direct = -math.log(math.exp(0.5 / t1) / sum(math.exp(x / t2) for x in (0.0, 1.0, -0.5)) ** (t2 / t1))
    assert float(S.bsl(SCORES, REL, t1, t2, reduction="none")[1]) == pytest.approx(direct, rel=1e-12)


@pytest.mark.parametrize("tau", [0.05, 0.1, 1.0])
@pytest.mark.parametrize("weighting", ["interaction", "user"])
def test_bsl_equals_sl_when_temperatures_match(tau, weighting):
    scores, rel = random_rows(0)
    sl = L.sampled_softmax(scores, rel, temperature=tau, include_positive=False, weighting=weighting)
    torch.testing.assert_close(S.bsl(scores, rel, tau, tau, weighting=weighting), sl)
    torch.testing.assert_close(
        S.bsl(scores, rel, tau, tau, reduction="none"),
        L.sampled_softmax(scores, rel, temperature=tau, include_positive=False, reduction="none"),
    )



@pytest.mark.parametrize(("tau1", "tau2"), [(0.1, 0.2), (0.05, 0.2), (0.5, 0.2)])
def test_bsl_is_sl_at_tau2_scaled_so_adam_trains_them_alike(tau1, tau2):
    # ℓ = -s/τ1 + (τ2/τ1) log Σ e^{s_j/τ2} = (τ2/τ1) (-s/τ2 + log Σ e^{s_j/τ2}): SL at τ2 times a constant,
    # so its gradient is SL's times τ2/τ1, and Adam (invariant to that scale, up to its ε) steps alike.
    scores, rel = random_rows(0)
    sl = L.sampled_softmax(scores, rel, temperature=tau2, include_positive=False)
    torch.testing.assert_close(S.bsl(scores, rel, tau1, tau2), (tau2 / tau1) * sl)
    steps = []
    for loss in (lambda s: S.bsl(s, rel, tau1, tau2), lambda s: L.sampled_softmax(s, rel, tau2, include_positive=False)):
        weight = torch.nn.Parameter(scores.clone().double())
        optimizer = torch.optim.Adam([weight], lr=1e-2, eps=1e-30)  # ε ≪ every gradient: no effect
        for _ in range(3):
            optimizer.zero_grad()
            loss(weight).backward()
            optimizer.step()
        steps.append(weight.detach())
    torch.testing.assert_close(steps[0], steps[1])

# ------------------------------------------------------------------ LLPAUC

DUALS = dict(a=0.9, b=0.2, gamma=0.1, s_pos=0.3, s_neg=0.7, theta_a=0.4, theta_b=0.6)


def llpauc_reference(scores, rel, a, b, gamma, s_pos, s_neg, theta_a, theta_b, alpha, beta, kappa):
    """Per-row (F_u, number of positives) by a loop."""
    def r(x):
        return math.log1p(math.exp(kappa * x)) / kappa

    rows = []
    for s, rr in zip(scores.tolist(), rel.tolist()):
        p = [1 / (1 + math.exp(-x)) for x in s]
        pos = [p[k] for k in range(len(rr)) if rr[k] > 0]
        neg = [p[k] for k in range(len(rr)) if rr[k] <= 0]
        if not pos or not neg:
            continue
        pos_term = sum(r(2 * (1 + gamma) * x - (x - a) ** 2 - s_pos) for x in pos) / len(pos)
        neg_term = sum(r((x - b) ** 2 + 2 * (1 + gamma) * x - s_neg) for x in neg) / len(neg)
        value = (-s_pos - pos_term / alpha + s_neg + neg_term / beta - gamma**2
                 + theta_a * (a + gamma) + theta_b * (1 + gamma - b))
        rows.append((value, len(pos)))
    return rows


def test_llpauc_by_hand():
    scores, rel = random_rows(3, spread=2.0)
    rows = llpauc_reference(scores, rel, **DUALS, alpha=0.7, beta=0.1, kappa=5.0)
    interaction = sum(v * n for v, n in rows) / sum(n for _, n in rows)
    user = sum(v for v, _ in rows) / len(rows)
    assert float(S.llpauc(scores, rel, **DUALS)) == pytest.approx(interaction, rel=1e-12)
    assert float(S.llpauc(scores, rel, **DUALS, weighting="user")) == pytest.approx(user, rel=1e-12)
    rows_03 = llpauc_reference(scores, rel, **DUALS, alpha=0.3, beta=0.05, kappa=2.0)
    value = S.llpauc(scores, rel, **DUALS, alpha=0.3, beta=0.05, kappa=2.0, weighting="user")
    assert float(value) == pytest.approx(sum(v for v, _ in rows_03) / len(rows_03), rel=1e-12)
    # sigmoid=False takes the scores as they are (already in [0, 1])
    torch.testing.assert_close(
        S.llpauc(torch.sigmoid(scores), rel, **DUALS, sigmoid=False), S.llpauc(scores, rel, **DUALS)
    )


def test_llpauc_prefers_a_separated_row_and_pushes_the_right_way():
    rel = torch.tensor([[1.0, 1.0, 0.0, 0.0, 0.0]])
    separated = torch.tensor([[4.0, 3.0, -3.0, -4.0, -2.0]])
    reversed_ = torch.tensor([[-4.0, -3.0, 3.0, 4.0, 2.0]])
    loss = modules.LLPAUCLoss()
    with torch.no_grad():
        assert float(loss(separated, rel)) < float(loss(reversed_, rel)) - 1.0
    # the gradient raises the positives and lowers the negatives, at any feasible duals
    scores = torch.tensor([[0.3, -0.2, 0.1, 0.4, -0.6]], requires_grad=True)
    (grad,) = torch.autograd.grad(S.llpauc(scores, rel, **DUALS), scores)
    assert torch.all(grad[0, :2] < 0) and torch.all(grad[0, 2:] > 0)


@pytest.mark.parametrize("ascent", [True, False])
def test_llpauc_one_step_descends_on_the_model_and_ascends_on_the_duals(ascent):
    torch.manual_seed(0)
    loss = modules.LLPAUCLoss(ascent=ascent)
    scores = torch.randn(4, 12, dtype=torch.float64)
    rel = (torch.rand(4, 12) < 0.3).double()
    rel[:, 0] = 1.0
    model_scores = scores.clone().requires_grad_()
    before = {name: float(p) for name, p in loss.named_parameters()}
    # the true gradient of F at the current variables (no reversal)
    leaves = {name: torch.tensor(v, dtype=torch.float64, requires_grad=True) for name, v in before.items()}
    true = torch.autograd.grad(S.llpauc(scores, rel, **leaves), list(leaves.values()))
    true = dict(zip(leaves, (float(g) for g in true)))
    lr = 1e-3
    optimizer = torch.optim.SGD([model_scores, *loss.parameters()], lr=lr)
    value = loss(model_scores, rel)
    value.backward()
    model_grad = model_scores.grad.clone()
    optimizer.step()
    for name, v in before.items():
        direction = 1.0 if ascent and name in loss.ASCENT else -1.0
        assert float(getattr(loss, name)) - v == pytest.approx(direction * lr * true[name], abs=2e-7), name  # float32 variables
        assert abs(true[name]) > 0.1, name  # a move, not rounding
    # the model's gradient is the true one, and F went down along it
    fresh = scores.clone().requires_grad_()
    torch.testing.assert_close(model_grad, torch.autograd.grad(S.llpauc(fresh, rel, **before), fresh)[0])
    after_model = S.llpauc(model_scores.detach(), rel, **before)
    assert float(after_model) < float(S.llpauc(scores, rel, **before))
    if ascent:  # F went up along s_pos and gamma with the model held fixed
        moved = {**before, "s_pos": float(loss.s_pos), "gamma": float(loss.gamma)}
        assert float(S.llpauc(scores, rel, **moved)) > float(S.llpauc(scores, rel, **before))


def test_llpauc_projects_its_variables_and_registers_them():
    loss = modules.LLPAUCLoss()
    assert {name for name, _ in loss.named_parameters()} == set(loss.BOUNDS)
    with torch.no_grad():
        loss.a.fill_(1.7)
        loss.gamma.fill_(-3.0)
        loss.theta_b.fill_(-0.2)
        loss.s_pos.fill_(9.0)
    loss(torch.randn(2, 5), torch.tensor([[1.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0]]))
    assert (float(loss.a), float(loss.gamma), float(loss.theta_b), float(loss.s_pos)) == (1.0, -1.0, 0.0, 4.0)


def test_llpauc_gamma_stays_in_its_feasible_set():
    # Ω_γ = [max(-a, b - 1), 1]: a = 0.3, b = 0.9 → γ ≥ -0.1, not the box's -1
    loss = modules.LLPAUCLoss()
    with torch.no_grad():
        loss.a.fill_(0.3)
        loss.b.fill_(0.9)
        loss.gamma.fill_(-0.8)
    rel = torch.tensor([[1.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0]])
    loss(torch.randn(2, 5), rel)
    assert float(loss.gamma) == pytest.approx(-0.1)
    # Descent on everything (the benchmark's variant) from the state that used to diverge: the
    # negatives' term pulls γ down, yet a + γ and 1 + γ - b stay >= 0, so θ cannot grow without
    # bound and F stays bounded (it fell by ~1 per 10 steps before the projection).
    torch.manual_seed(0)
    loss = modules.LLPAUCLoss(alpha=0.7, beta=0.01, ascent=False)
    scores = torch.randn(8, 50)
    rel = torch.zeros(8, 50)
    rel[:, 0] = 1.0
    optimizer = torch.optim.Adam(loss.parameters(), lr=0.1)
    values = []
    for _ in range(300):
        optimizer.zero_grad()
        value = loss(scores, rel)
        value.backward()
        optimizer.step()
        values.append(float(value))
        loss.project_()  # what the next forward does first
        assert float(loss.a + loss.gamma) >= -1e-6 and float(1 + loss.gamma - loss.b) >= -1e-6
    assert float(loss.theta_a) < 1.0 and float(loss.theta_b) < 1.0
    assert min(values) > -20.0 and abs(values[-1] - values[-50]) < 0.5


def test_llpauc_free_multipliers_fall_below_zero_as_in_the_benchmark():
    torch.manual_seed(0)
    scores = torch.randn(8, 50)
    rel = torch.zeros(8, 50)
    rel[:, 0] = 1.0
    ends = {}
    for free in (False, True):
        loss = modules.LLPAUCLoss(alpha=0.7, beta=0.01, ascent=False, free_multipliers=free)
        optimizer = torch.optim.Adam(loss.parameters(), lr=0.1)
        for _ in range(200):
            optimizer.zero_grad()
            loss(scores, rel).backward()
            optimizer.step()
        loss.project_()
        ends[free] = (float(loss.theta_a), float(loss.gamma), float(loss(scores, rel)))
    assert ends[False][0] == 0.0 and ends[True][0] < -10.0  # a step of ~lr per iteration, unclamped
    assert ends[True][1] == pytest.approx(1.0) and ends[False][1] < 0.0  # θ < 0 pushes γ to its upper end
    assert ends[True][2] < ends[False][2] - 50.0  # and the objective down with θ


def test_reverse_gradient_is_identity_forward_and_negated_backward():
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, dtype=torch.float64)
    y = S.reverse_gradient(x)
    assert torch.equal(y, x)
    (grad,) = torch.autograd.grad((y * w).sum(), x)
    assert torch.equal(grad, -w)


# ------------------------------------------------------------------ SL@K


def test_topk_quantile():
    scores = torch.tensor([[5.0, 1.0, 3.0, 2.0], [0.5, 0.1, 0.9, 0.3], [1.0, 2.0, 3.0, 4.0]], requires_grad=True)
    torch.testing.assert_close(S.topk_quantile(scores, 2), torch.tensor([3.0, 0.5, 3.0]))
    mask = torch.tensor([[False, True, True, True], [True, True, False, False], [False] * 4])
    out = S.topk_quantile(scores, 3, mask)
    assert out[0] == 1.0 and out[1] == 0.1 and out[2] == -math.inf  # k > count: smallest; empty: -inf
    assert not out.requires_grad


def test_sl_at_k_by_hand_and_weight_gradients():
    beta = torch.tensor([1.5, 0.0], dtype=torch.float64)
    tau_d, tau_w = 0.5, 0.25
    neg_a = lse([0.0 / tau_d, -1.0 / tau_d])
    neg_b = lse([0.0 / tau_d, 1.0 / tau_d, -0.5 / tau_d])

    def w(s, b):
        return 1 / (1 + math.exp(-(s - b) / tau_w))

    per_pos = [
        [w(2.0, 1.5) * (neg_a - 2.0 / tau_d), w(1.0, 1.5) * (neg_a - 1.0 / tau_d)],
        [w(0.5, 0.0) * (neg_b - 0.5 / tau_d)],
    ]
    interaction, user = by_hand_rows(per_pos)
    assert float(S.sl_at_k(SCORES, REL, beta, tau_d, tau_w)) == pytest.approx(interaction, rel=1e-12)
    assert float(S.sl_at_k(SCORES, REL, beta, tau_d, tau_w, weighting="user")) == pytest.approx(user, rel=1e-12)
    # with β = -inf every weight is 1: SL
    sl = L.sampled_softmax(SCORES, REL, temperature=tau_d, include_positive=False)
    torch.testing.assert_close(S.sl_at_k(SCORES, REL, torch.full((2,), -math.inf, dtype=torch.float64), tau_d), sl)
    # the gradient on row B's positive, with and without the weight's own gradient
    scores = SCORES.clone().requires_grad_()
    sl_b = neg_b - 0.5 / tau_d
    wb = w(0.5, 0.0)
    (live,) = torch.autograd.grad(S.sl_at_k(scores, REL, beta, tau_d, tau_w, reduction="none")[1], scores)
    (dead,) = torch.autograd.grad(
        S.sl_at_k(scores, REL, beta, tau_d, tau_w, detach_weights=True, reduction="none")[1], scores
    )
    assert float(dead[1, 1]) == pytest.approx(-wb / tau_d, rel=1e-12)
    assert float(live[1, 1]) == pytest.approx(-wb / tau_d + wb * (1 - wb) / tau_w * sl_b, rel=1e-12)


def test_sl_at_k_falls_when_a_row_s_scores_all_drop_unless_its_weights_are_detached():
    """Lowering every score of a row by c leaves each SL term as it is and lowers each weight: the
    derivative along the shift is sum_i w_i (1 - w_i) SL_i / tau_w (over the mean's pairs), a
    direction that changes no ranking; detached weights give it 0."""
    beta = torch.tensor([1.5, 0.0], dtype=torch.float64)
    tau_d, tau_w = 0.5, 0.25
    neg_a = lse([0.0 / tau_d, -1.0 / tau_d])
    neg_b = lse([0.0 / tau_d, 1.0 / tau_d, -0.5 / tau_d])
    pairs = [(2.0, 1.5, neg_a), (1.0, 1.5, neg_a), (0.5, 0.0, neg_b)]  # (s_ui, beta_u, lse over negatives)
    expected = 0.0
    for s, b, neg in pairs:
        w = 1 / (1 + math.exp(-(s - b) / tau_w))
        expected += w * (1 - w) / tau_w * (neg - s / tau_d) / len(pairs)
    shift = torch.ones_like(SCORES)
    for detach, want in ((False, expected), (True, 0.0)):
        scores = SCORES.clone().requires_grad_()
        (grad,) = torch.autograd.grad(S.sl_at_k(scores, REL, beta, tau_d, tau_w, detach_weights=detach), scores)
        assert float((grad * shift).sum()) == pytest.approx(want, rel=1e-12, abs=1e-12)
    # row B alone (its SL term > 0): the loss is lower after all its scores drop, its ranking unchanged
    row, rel_b, beta_b = SCORES[1:], REL[1:], beta[1:]
    assert float(S.sl_at_k(row - 0.1, rel_b, beta_b, tau_d, tau_w)) < float(S.sl_at_k(row, rel_b, beta_b, tau_d, tau_w))


@pytest.mark.parametrize("weighting", ["interaction", "user"])
def test_shift_invariant_sl_at_k_is_sl_at_k_less_each_row_s_mean_gradient(weighting):
    """The same value; each row's gradient is SL@K's minus its mean over the row's candidates, so
    lowering all of a row's scores no longer changes the loss (to first order)."""
    scores, rel = random_rows(11)
    beta = torch.linspace(-0.2, 0.3, scores.shape[0], dtype=scores.dtype)
    a, b = scores.clone().requires_grad_(True), scores.clone().requires_grad_(True)
    live = S.sl_at_k(a, rel, beta, 0.1, 0.5, weighting=weighting)
    invariant = S.sl_at_k(b, rel, beta, 0.1, 0.5, weighting=weighting, shift_invariant=True)
    torch.testing.assert_close(invariant, live, rtol=0, atol=0)
    live.backward()
    invariant.backward()
    assert float(a.grad.sum(1).abs().max()) > 1e-3  # SL@K's gradient does move the rows' mean
    torch.testing.assert_close(b.grad, a.grad - a.grad.mean(1, keepdim=True), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(b.grad.sum(1), torch.zeros(scores.shape[0], dtype=scores.dtype), rtol=0, atol=1e-12)


# ------------------------------------------------------------------ numerics


def all_losses(scores, rel):
    q = scores.shape[0]
    beta = torch.zeros(q, dtype=scores.dtype)
    out = {
        "sl": L.sampled_softmax(scores, rel, temperature=0.05, include_positive=False),
        "bsl": S.bsl(scores, rel, 0.05, 0.2),
        "llpauc": S.llpauc(scores, rel, **DUALS),
        "sl_at_k": S.sl_at_k(scores, rel, beta, tau_d=0.05, tau_w=0.1),
    }
    for activation in S.PSL_ACTIVATIONS:
        for scale in (2.0, 0.01):
            out[f"psl-{activation}-{scale}"] = S.psl(scores, rel, tau=0.05, activation=activation, score_scale=scale)
    return out


@pytest.mark.parametrize("magnitude", [1.0, 50.0, 1e4])
def test_forward_and_gradients_are_finite_for_extreme_scores(magnitude):
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(6, 10, generator=g) * magnitude
    scores[3] = 0.0  # ties everywhere
    scores[4, :5] = magnitude  # positives far above the negatives
    scores[4, 5:] = -magnitude
    rel = (torch.rand(6, 10, generator=g) < 0.4).float()
    rel[4, :5], rel[4, 5:] = 1.0, 0.0
    rel[5] = 0.0
    scores.requires_grad_()
    for name, value in all_losses(scores, rel).items():
        assert torch.isfinite(value), name
        (grad,) = torch.autograd.grad(value, scores)
        assert torch.isfinite(grad).all(), name


def test_rows_without_positive_or_negative_are_skipped():
    scores, rel = random_rows(5)
    keep = [0, 3, 4]
    for name, value in all_losses(scores, rel).items():
        assert float(value) == pytest.approx(float(all_losses(scores[keep], rel[keep])[name]), rel=1e-12), name
    none = S.psl(scores, rel, reduction="none")
    assert none[1] == 0 and none[2] == 0


def test_gradcheck_bsl_sl_at_k_and_llpauc():
    scores, rel = random_rows(8, q=4, n=6)
    scores.requires_grad_()
    beta = torch.tensor([0.1, -0.2, 0.0, 0.3], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda s: S.bsl(s, rel, 0.3, 0.7), (scores,))
    assert torch.autograd.gradcheck(lambda s: S.sl_at_k(s, rel, beta, 0.3, 0.5), (scores,))
    duals = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in DUALS.values()]
    assert torch.autograd.gradcheck(lambda s, *d: S.llpauc(s, rel, *d), (scores, *duals))


# ------------------------------------------------------------------ SL@K module


@pytest.mark.parametrize("weighting, detach, invariant", [("interaction", False, False), ("user", True, False),
                                                         ("interaction", False, True)])
def test_sl_at_k_module_equals_the_function_with_the_given_beta(weighting, detach, invariant):
    scores, rel = random_rows(7)
    beta = torch.linspace(-0.3, 0.4, scores.shape[0], dtype=scores.dtype)
    module = modules.SLatKLoss(k=5, tau_d=0.15, tau_w=0.7, detach_weights=detach, weighting=weighting,
                               shift_invariant=invariant)
    a, b = scores.clone().requires_grad_(True), scores.clone().requires_grad_(True)
    expected = S.sl_at_k(a, rel, beta, tau_d=0.15, tau_w=0.7, detach_weights=detach, weighting=weighting,
                         shift_invariant=invariant)
    got = module(b, rel, beta)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    expected.backward()
    got.backward()
    torch.testing.assert_close(b.grad, a.grad, rtol=0, atol=0)
    assert module.batch_mean is (weighting == "interaction")


def test_sl_at_k_registry_entry_defaults_and_ranges():
    from itemrec.experiment.config import NamedSpec
    from itemrec.experiment.errors import UserError
    from itemrec.experiment.registry import build_loss

    loss = build_loss(NamedSpec(name="sl_at_k"))
    assert isinstance(loss, modules.SLatKLoss)
    assert (loss.k, loss.tau_d, loss.tau_w) == (20, 0.2, 1.0)
    assert loss.topk_estimate == TopKEstimate(refresh_every=5, negatives=1000, positives=None)
    for key, bad, rule in [("k", 0, ">= 1"), ("tau_d", 0, "> 0"), ("tau_w", -1, "> 0"),
                           ("refresh_every", 0, ">= 1"), ("quantile_negatives", 0, ">= 1")]:
        with pytest.raises(UserError, match=rf"loss\.{key}: must be {rule}"):
            build_loss(NamedSpec(name="sl_at_k", **{key: bad}))


def test_sl_push_registry_key_and_range():
    from itemrec.experiment.config import NamedSpec
    from itemrec.experiment.errors import UserError
    from itemrec.experiment.registry import build_loss

    assert build_loss(NamedSpec(name="sampled_softmax")).push == 0.0
    assert build_loss(NamedSpec(name="sampled_softmax", include_positive=False, push=1.5)).push == 1.5
    with pytest.raises(UserError, match=r"loss\.push: must be >= 0"):
        build_loss(NamedSpec(name="sampled_softmax", push=-1))
