"""Log-DCG against hand-computed values, its bound on the DCG gain, and its module."""

import math

import pytest
import torch

from itemrec.experiment.registry import LOSSES
from itemrec.ranking import LogDCGLoss, TopKEstimate, dcg_losses, sampled_softmax


def test_one_row_by_hand():
    scores = torch.tensor([[2.0, 1.0, 0.0, 3.0]])
    relevance = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    rho = math.exp(-1.0) + math.exp(-2.0) + math.exp(1.0)  # T = 1
    expected = math.log(math.log2(2 + rho))
    assert float(dcg_losses.log_dcg(scores, relevance, temperature=1.0)) == pytest.approx(expected, rel=1e-6)
    rho_half = math.exp(-2.0) + math.exp(-4.0) + math.exp(2.0)  # T = 0.5
    assert float(dcg_losses.log_dcg(scores, relevance, temperature=0.5)) == pytest.approx(
        math.log(math.log2(2 + rho_half)), rel=1e-6)


@pytest.mark.parametrize("temperature", [0.05, 0.2, 1.0])
def test_it_bounds_minus_log_of_each_positives_dcg_gain(temperature):
    torch.manual_seed(0)
    scores = torch.randn(64, 30)
    relevance = torch.zeros(64, 30)
    relevance[:, 0] = 1.0  # one positive per row: the row's loss is that positive's term
    per_row = dcg_losses.log_dcg(scores, relevance, temperature, reduction="none")
    above = (scores[:, 1:] > scores[:, :1]).sum(1).double()  # negatives ranked above the positive
    bound = torch.log(torch.log2(2 + above))
    assert (per_row.double() >= bound - 1e-6).all() and (per_row >= 0).all()



def test_gradient_follows_the_dcg_gain():
    # ∂ℓ/∂s_i = -(ρ/T) / ((2 + ρ) ln(2 + ρ)); SL's is -1/T at every depth. Relative to SL, a
    # positive at the top (ρ → 0, nothing left to gain) and one far down (ρ → ∞) get less.
    t = 0.2
    depth = torch.tensor([-0.9, 0.3, 1.5], dtype=torch.float64)  # the negatives' offset above the positive
    scores = torch.zeros(3, 5, dtype=torch.float64)
    scores[:, 1:] = depth[:, None] + torch.tensor([0.0, -0.1, -0.2, -0.3], dtype=torch.float64)
    scores.requires_grad_()
    relevance = torch.zeros(3, 5, dtype=torch.float64)
    relevance[:, 0] = 1.0
    (grad,) = torch.autograd.grad(dcg_losses.log_dcg(scores, relevance, t, reduction="none").sum(), scores)
    (sl_grad,) = torch.autograd.grad(
        sampled_softmax(scores, relevance, t, include_positive=False, reduction="none").sum(), scores)
    rho = torch.exp((scores[:, 1:] - scores[:, :1]) / t).sum(1).detach()
    torch.testing.assert_close(grad[:, 0], -(rho / t) / ((2 + rho) * torch.log(2 + rho)))
    torch.testing.assert_close(sl_grad[:, 0], torch.full((3,), -1 / t, dtype=torch.float64))
    ratio = grad[:, 0] / sl_grad[:, 0]
    assert float(ratio[0]) < float(ratio[1]) and float(ratio[2]) < float(ratio[1])
    assert float(rho[0]) < 0.1 and float(rho[2]) > 1000  # the rows are what the comment says


def test_top_k_weights_and_no_gradient_into_beta():
    torch.manual_seed(1)
    scores = torch.randn(5, 8, requires_grad=True)
    relevance = (torch.rand(5, 8) < 0.3).float()
    relevance[:, 0] = 1.0
    beta = torch.randn(5, requires_grad=True)
    weighted = dcg_losses.log_dcg(scores, relevance, 0.2, beta, tau_w=0.5, weighting="user", reduction="none")
    plain = []
    for q in range(5):
        pos = relevance[q] > 0
        lse = torch.logsumexp(scores[q][~pos] / 0.2, 0) - scores[q][pos] / 0.2
        terms = torch.log(torch.log2(2 + torch.exp(lse))) * torch.sigmoid((scores[q][pos].detach() - beta[q].detach()) / 0.5)
        plain.append(terms.mean())
    torch.testing.assert_close(weighted, torch.stack(plain))
    weighted.sum().backward()
    assert beta.grad is None
    # constant weights: the gradient is the weighted gradient of the plain terms
    plain_scores = scores.detach().clone().requires_grad_()
    w = torch.sigmoid((scores.detach() - beta.detach()[:, None]) / 0.5)
    per_pos = []
    for q in range(5):
        pos = relevance[q] > 0
        lse = torch.logsumexp(plain_scores[q][~pos] / 0.2, 0) - plain_scores[q][pos] / 0.2
        per_pos.append((torch.log(torch.log2(2 + torch.exp(lse))) * w[q][pos]).mean())
    torch.stack(per_pos).sum().backward()
    torch.testing.assert_close(scores.grad, plain_scores.grad)


def test_interaction_weighting_counts_every_positive():
    scores = torch.tensor([[1.0, 0.0, 0.5, 0.2], [0.3, 0.1, 0.0, 0.9]])
    relevance = torch.tensor([[1.0, 0.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    per_row = dcg_losses.log_dcg(scores, relevance, reduction="none")  # means over each row's positives
    by_pair = float(dcg_losses.log_dcg(scores, relevance, weighting="interaction"))
    by_user = float(dcg_losses.log_dcg(scores, relevance, weighting="user"))
    assert by_pair == pytest.approx(float(3 * per_row[0] + per_row[1]) / 4, rel=1e-6)
    assert by_user == pytest.approx(float(per_row.mean()), rel=1e-6)


def test_extreme_scores_stay_finite_and_empty_rows_are_skipped():
    scores = torch.tensor([[1e4, -1e4, 0.0], [0.0, 1.0, 2.0], [5.0, 1.0, 0.0]], requires_grad=True)
    relevance = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])  # no positive / no negative
    value = dcg_losses.log_dcg(scores, relevance, 0.01)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(scores.grad).all()
    assert float(value) == pytest.approx(0.0, abs=1e-6)  # the one valid row: positive far above


def test_module_registry_and_thresholds():
    assert LOSSES["log_dcg"] is LogDCGLoss
    scores, relevance = torch.randn(3, 6), torch.zeros(3, 6)
    relevance[:, 0] = 1.0
    plain = LogDCGLoss(temperature=0.1)
    assert not plain.topk_thresholds and plain.batch_mean
    torch.testing.assert_close(plain(scores, relevance), dcg_losses.log_dcg(scores, relevance, 0.1))
    assert plain.topk_estimate is None
    top = LogDCGLoss(k=20, tau_w=2.0, centered=False, refresh_every=3, quantile_negatives=50, quantile_positives=7)
    assert top.topk_thresholds and top.topk_estimate == TopKEstimate(refresh_every=3, negatives=50, positives=7)
    beta = torch.zeros(3)
    torch.testing.assert_close(top(scores, relevance, beta), dcg_losses.log_dcg(scores, relevance, 0.2, beta, 2.0))
    default = LogDCGLoss(k=20)  # with k: centered, τ_w 2.5, T_β 20 (the setting that transfers)
    assert (default.centered, default.tau_w, default.topk_estimate.refresh_every) == (True, 2.5, 20) and not LogDCGLoss().centered
    offset = math.log(math.log2(22))
    torch.testing.assert_close(default(scores, relevance, beta),
                               dcg_losses.log_dcg(scores, relevance, 0.2, beta, 2.5, detach_weights=False, offset=offset))
    with pytest.raises(AssertionError, match="beta is given exactly when k is set"):
        top(scores, relevance)


def test_centered_top_k_keeps_the_weights_gradient_with_two_signs():
    # one row, two positives: one well inside the top K (rho < K), one far outside (rho > K)
    k, t, tau_w = 2, 1.0, 1.0
    scores = torch.tensor([[3.0, -2.0, 0.0, 0.5, 1.0]], requires_grad=True)
    relevance = torch.tensor([[1.0, 1.0, 0.0, 0.0, 0.0]])
    beta = torch.tensor([0.5])
    offset = math.log(math.log2(2 + k))
    centered = LogDCGLoss(temperature=t, k=k, tau_w=tau_w, centered=True, weighting="user")
    value = centered(scores, relevance, beta)
    terms = []
    for i in (0, 1):  # by hand: w (log log2(2 + rho) - c), w = sigmoid((s - beta) / tau_w), gradient kept
        s = scores[0, i]
        rho = sum(torch.exp((scores[0, j] - s) / t) for j in (2, 3, 4))
        terms.append(torch.sigmoid((s - beta[0]) / tau_w) * (torch.log(torch.log2(2 + rho)) - offset))
    expected = (terms[0] + terms[1]) / 2
    torch.testing.assert_close(value, expected)
    assert float(terms[0]) < 0 < float(terms[1])  # inside the top K the term is negative, outside positive
    grad, = torch.autograd.grad(value, scores)
    detached = LogDCGLoss(temperature=t, k=k, tau_w=tau_w, weighting="user", centered=False)
    plain_grad, = torch.autograd.grad(detached(scores, relevance, beta), scores)
    assert float(grad[0, 0]) < float(plain_grad[0, 0])  # the weight's gradient pushes the top positive up more
    assert float(grad[0, 1]) > float(plain_grad[0, 1])  # ... and the far one less (given up on)
    with pytest.raises(AssertionError, match="centered needs k"):
        LogDCGLoss(centered=True)


@pytest.mark.parametrize("activation", ["tanh", "atan", "relu"])
def test_psl_activation_bound_by_brute_force_and_chunked(activation):
    from itemrec.ranking.softmax_losses import psl_activation

    torch.manual_seed(3)
    scores = (torch.rand(6, 9, dtype=torch.float64) * 2 - 1).requires_grad_()  # cosine-like, [-1, 1]
    relevance = (torch.rand(6, 9) < 0.35).double()
    relevance[0] = 0.0  # a row without a positive
    relevance[1, 0] = 1.0  # and one with a positive on top of a relu-dead row below
    beta = torch.rand(6, dtype=torch.float64) - 0.5
    t, scale, tau_w = 0.1, 2.0, 2.5
    value = dcg_losses.log_dcg(scores, relevance, t, beta, tau_w, weighting="user", reduction="none",
                               detach_weights=False, offset=0.4, activation=activation, score_scale=scale)
    rows = []
    for u in range(6):  # by hand: ρ = Σ_j exp(σ((s_j - s_i) / c) / T) over the row's negatives
        pos = [i for i in range(9) if relevance[u, i] > 0]
        neg = [j for j in range(9) if relevance[u, j] == 0]
        terms = []
        for i in pos:
            sigma, defined = psl_activation((scores[u, neg] - scores[u, i]) / scale, activation)
            rho = torch.where(defined, torch.exp(sigma / t), torch.zeros_like(sigma)).sum()
            w = torch.sigmoid((scores[u, i] - beta[u]) / tau_w)
            terms.append(w * (torch.log(torch.log2(2 + rho)) - 0.4))
        rows.append(torch.stack(terms).mean() if terms else scores.new_zeros(()))
    expected = torch.stack(rows)
    torch.testing.assert_close(value, expected)
    grad, = torch.autograd.grad(value.sum(), scores)
    expected_grad, = torch.autograd.grad(expected.sum(), scores)
    torch.testing.assert_close(grad, expected_grad)
    chunked = dcg_losses.log_dcg(scores, relevance, t, beta, tau_w, weighting="user", reduction="none",
                                 detach_weights=False, offset=0.4, activation=activation, max_elements=20)
    torch.testing.assert_close(chunked, value)
    chunked_grad, = torch.autograd.grad(chunked.sum(), scores)
    torch.testing.assert_close(chunked_grad, grad)


def test_psl_activation_bound_is_tighter_and_still_a_bound():
    torch.manual_seed(4)
    scores = torch.rand(64, 30) * 2 - 1
    relevance = torch.zeros(64, 30)
    relevance[:, 0] = 1.0
    above = (scores[:, 1:] > scores[:, :1]).sum(1).double()
    t = 0.1  # PSL at (T, c = 2) against the exponential bound at 2T: the same slope at d = 0
    tight = dcg_losses.log_dcg(scores, relevance, t, reduction="none", activation="tanh").double()
    loose = dcg_losses.log_dcg(scores, relevance, 2 * t, reduction="none").double()
    assert (tight >= torch.log(torch.log2(2 + above)) - 1e-6).all()
    assert (tight <= loose + 1e-6).all() and (tight < loose - 1e-3).any()


def test_anchor_moves_the_centered_offset():
    torch.manual_seed(5)
    scores = torch.randn(4, 10, requires_grad=True)
    relevance = (torch.rand(4, 10) < 0.3).float()
    relevance[:, 0] = 1.0
    beta = torch.zeros(4)
    for anchor, k in ((None, 20), (1.0, 20), (50.0, 20)):
        loss = LogDCGLoss(k=k, tau_w=2.5, centered=True, anchor=anchor)
        offset = math.log(math.log2(2 + (k if anchor is None else anchor)))
        expected = dcg_losses.log_dcg(scores, relevance, 0.2, beta, 2.5, detach_weights=False, offset=offset)
        torch.testing.assert_close(loss(scores, relevance, beta), expected)
    with pytest.raises(AssertionError, match="anchor sets a centered loss's offset"):
        LogDCGLoss(k=20, anchor=5.0, centered=False)


def test_positive_ranks_by_brute_force_with_ties():
    scores = torch.tensor([[0.5, 2.0, 0.5, 9.0, -1.0, 0.5]])
    pos = torch.tensor([[True, True, True, False, True, False]])
    ranks = dcg_losses.positive_ranks(scores, pos)
    # 1 + the other positives scoring >= it: 2.0 -> 1; each 0.5 (a tie) -> 3; -1.0 -> 4; negatives ignored
    assert ranks[pos].tolist() == [3.0, 1.0, 3.0, 4.0]
    torch.manual_seed(7)
    scores = torch.randn(6, 40).round(decimals=1)  # many ties
    pos = torch.rand(6, 40) < 0.4
    brute = ((scores[:, None, :] >= scores[:, :, None]) & pos[:, None, :]).sum(-1).float()  # [Q, N]
    torch.testing.assert_close(dcg_losses.positive_ranks(scores, pos)[pos], brute[pos])


def test_positives_above_one_row_by_hand_and_it_bounds_the_dcg_gain():
    scores = torch.tensor([[2.0, 1.0, 0.0, 3.0, 1.5]])
    relevance = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0]])
    rho_a = math.exp(-1.0) + math.exp(-2.0) + math.exp(1.0)  # T = 1, positive 2.0: first of the positives
    rho_b = math.exp(-0.5) + math.exp(-1.5) + math.exp(1.5)  # positive 1.5: second
    expected = (math.log(math.log2(2 + rho_a)) + math.log(math.log2(3 + rho_b))) / 2
    got = dcg_losses.log_dcg(scores, relevance, temperature=1.0, positives_above=True)
    assert float(got) == pytest.approx(expected, rel=1e-6)
    alone = (math.log(math.log2(2 + rho_a)) + math.log(math.log2(2 + rho_b))) / 2  # positives ignored
    assert float(dcg_losses.log_dcg(scores, relevance, temperature=1.0)) == pytest.approx(alone, rel=1e-6)
    # the row's terms bound -log of its positives' DCG gains at their ranks among every candidate
    torch.manual_seed(8)
    scores, relevance = torch.randn(32, 30), (torch.rand(32, 30) < 0.3).float()
    relevance[:, 0], relevance[:, 1] = 1.0, 0.0
    for temperature in (0.05, 0.2, 1.0):
        per_row = dcg_losses.log_dcg(scores, relevance, temperature, positives_above=True, reduction="none")
        for row in range(32):
            pos = relevance[row].nonzero().flatten()
            ranks = (scores[row][None, :] >= scores[row, pos][:, None]).sum(1).double()  # 1-based, ties against it
            bound = torch.log(torch.log2(1 + ranks)).sum()
            assert float(per_row[row]) * len(pos) >= float(bound) - 1e-5


def test_softmax_mix_adds_sls_term_by_hand():
    scores = torch.tensor([[2.0, 1.0, 0.0, 3.0]])
    relevance = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    rho = math.exp(-1.0) + math.exp(-2.0) + math.exp(1.0)  # T = 1
    for mix in (0.0, 0.25, 1.0):
        got = dcg_losses.log_dcg(scores, relevance, temperature=1.0, softmax_mix=mix)
        assert float(got) == pytest.approx(math.log(math.log2(2 + rho)) + mix * math.log(rho), rel=1e-6)
    beta = torch.zeros(1)
    offset = math.log(math.log2(22)) + 0.25 * math.log(20)  # the mixed term's value at rank K
    expected = dcg_losses.log_dcg(scores, relevance, 0.2, beta, 2.5, detach_weights=False, offset=offset,
                                  softmax_mix=0.25)
    torch.testing.assert_close(LogDCGLoss(k=20, softmax_mix=0.25)(scores, relevance, beta), expected)


def test_the_uncentered_mix_is_centered_log_dcg_plus_sl_at_k_values_and_gradients():
    from itemrec.ranking.softmax_losses import sl_at_k

    torch.manual_seed(4)
    scores = torch.randn(6, 40, dtype=torch.float64)
    relevance = (torch.rand(6, 40) < 0.2).double()
    relevance[:, 0], relevance[:, 1] = 1.0, 0.0  # every row has a positive and a negative
    beta = torch.randn(6, dtype=torch.float64)
    leaves = [scores.clone().requires_grad_() for _ in range(2)]
    mixed = LogDCGLoss(k=20, softmax_mix=1.0, mix_centered=False)(leaves[0], relevance, beta)
    summed = LogDCGLoss(k=20)(leaves[1], relevance, beta) + sl_at_k(leaves[1], relevance, beta, tau_d=0.2, tau_w=2.5)
    torch.testing.assert_close(mixed, summed)
    mixed.backward()
    summed.backward()
    torch.testing.assert_close(leaves[0].grad, leaves[1].grad)
    # by hand, one positive at weight w: w (log log2(2 + ρ) − log log2 22) + λ w log ρ, no λ log K
    one = torch.tensor([[2.0, 1.0, 0.0, 3.0]])
    rel = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    rho = math.exp(-1.0 / 0.2) + math.exp(-2.0 / 0.2) + math.exp(1.0 / 0.2)
    w = 1 / (1 + math.exp(-(2.0 - 0.5) / 2.5))
    expected = w * (math.log(math.log2(2 + rho)) - math.log(math.log2(22))) + 0.25 * w * math.log(rho)
    got = LogDCGLoss(k=20, softmax_mix=0.25, mix_centered=False)(one, rel, torch.tensor([0.5]))
    assert float(got) == pytest.approx(expected, rel=1e-6)
    assert "mix not centered" in repr(LogDCGLoss(k=20, softmax_mix=0.25, mix_centered=False))


def test_positives_above_module_and_gradient():
    torch.manual_seed(9)
    scores = torch.randn(4, 12, dtype=torch.float64, requires_grad=True)
    relevance = (torch.rand(4, 12) < 0.4).double()
    relevance[:, 0], relevance[:, 1] = 1.0, 0.0
    beta = torch.zeros(4, dtype=torch.float64)
    loss = LogDCGLoss(k=20, positives_above=True)
    offset = math.log(math.log2(22))
    expected = dcg_losses.log_dcg(scores, relevance, 0.2, beta, 2.5, detach_weights=False, offset=offset,
                                  positives_above=True)
    torch.testing.assert_close(loss(scores, relevance, beta), expected)
    assert "positives_above" in repr(loss)
    # the ranks among positives are constants: the gradient is that of the formula with r⁺ fixed
    torch.autograd.gradcheck(lambda s: dcg_losses.log_dcg(s, relevance, 0.2, positives_above=True), (scores,))
    assert LOSSES["log_dcg"](k=20, positives_above=True).positives_above


def test_sup_ndcg_at_k_one_row_by_hand():
    from itemrec.ranking import SupNDCGAtKLoss, sup_ndcg_at_k
    from itemrec.ranking.surrogates import suprank_step

    scores = torch.tensor([[0.9, 0.1, 0.5, 0.3, -0.2]], dtype=torch.float64, requires_grad=True)
    relevance = torch.tensor([[1.0, 1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    beta = torch.tensor([0.4], dtype=torch.float64)
    k, tau_w, step = 2, 0.5, dict(tau=0.2, rho=1.0, delta=0.05, start=0.5)
    value = sup_ndcg_at_k(scores, relevance, beta, k=k, tau_w=tau_w, **step)
    s = scores[0]
    dcg = 0.0
    for i in (0, 1):  # rank_s = exact rank among positives + H- over the three negatives
        rank_pos = 1 + sum(float(s[j] >= s[i]) for j in (0, 1) if j != i)
        rank_neg = sum(suprank_step(s[j] - s[i], **step) for j in (2, 3, 4))
        dcg = dcg + torch.sigmoid((s[i] - beta[0]) / tau_w) / torch.log2(1 + rank_pos + rank_neg)
    idcg = 1 / math.log2(2) + 1 / math.log2(3)  # the best K = 2 gains
    torch.testing.assert_close(value, 1 - dcg / idcg)
    grad, = torch.autograd.grad(value, scores)
    assert float(grad[0, 1]) < 0  # the positive below β is pushed up, its weight's gradient included
    module = SupNDCGAtKLoss(k=k, tau_w=tau_w, **step)
    assert LOSSES["sup_ndcg_at_k"] is SupNDCGAtKLoss and module.topk_thresholds and not module.batch_mean
    torch.testing.assert_close(module(scores, relevance, beta), value)


def test_sup_ndcg_at_k_weighting_and_rows_without_positives():
    from itemrec.ranking import sup_ndcg_at_k

    g = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 9, generator=g, dtype=torch.float64)
    relevance = (torch.rand(4, 9, generator=g) < 0.4).double()
    relevance[0] = 0.0
    relevance[1, :3] = 1.0
    beta = torch.zeros(4, dtype=torch.float64)
    per_row = sup_ndcg_at_k(scores, relevance, beta, reduction="none")
    n_pos = (relevance > 0).sum(1).double()
    assert float(per_row[0]) == 0.0
    torch.testing.assert_close(sup_ndcg_at_k(scores, relevance, beta), per_row[1:].mean())
    torch.testing.assert_close(sup_ndcg_at_k(scores, relevance, beta, weighting="interaction"),
                               (per_row * n_pos).sum() / n_pos.sum())
