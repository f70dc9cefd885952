import functools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from itemrec.ranking import losses as L
from itemrec.ranking import metrics as M
from itemrec.ranking import modules
from itemrec.ranking.batch import hierarchical_relevance, retrieval_rows
from itemrec.ranking.surrogates import suprank_step
from tests.ranking import reference as ref

BOUNDED = [L.sup_ap, L.smooth_ap, L.sup_recall_at_k, L.sup_ndcg, L.sup_hap]


def random_rows(seed, q=6, n=10, graded=False, spread=0.3):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(q, n, generator=g, dtype=torch.float64) * spread
    if graded:
        rel = torch.randint(0, 4, (q, n), generator=g).double()
    else:
        rel = (torch.rand(q, n, generator=g) < 0.4).double()
    rel[0] = 0
    rel[1, :3] = 1.0
    return scores, rel


@st.composite
def rows(draw, graded=False, ties=False, max_q=4, max_n=12):
    """Score rows in [-1, 1] (distinct within a row unless `ties`) with binary or graded relevance."""
    q = draw(st.integers(1, max_q))
    n = draw(st.integers(2, max_n))
    value = st.sampled_from([-0.5, 0.0, 0.25, 0.5]) if ties else st.floats(-1, 1, allow_nan=False)
    scores = [draw(st.lists(value, min_size=n, max_size=n, unique=not ties)) for _ in range(q)]
    levels = st.integers(0, 3) if graded else st.integers(0, 1)
    rel = [draw(st.lists(levels, min_size=n, max_size=n)) for _ in range(q)]
    return torch.tensor(scores, dtype=torch.float64), torch.tensor(rel, dtype=torch.float64)


# ------------------------------------------------------------------ values against brute force


def per_query(fn_ref, scores, rel, **kw):
    return [fn_ref(s, r, **kw) for s, r in zip(scores.tolist(), rel.tolist())]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "fn, fn_ref, graded",
    [
        (L.sup_ap, ref.sup_ap, False),
        (L.smooth_ap, ref.smooth_ap, False),
        (L.sup_recall_at_k, ref.sup_recall, False),
        (L.sup_ndcg, ref.sup_ndcg, True),
        (L.sup_hap, ref.sup_hap, True),
        (L.bpr, ref.bpr, False),
        (L.sampled_softmax, ref.sampled_softmax, False),
        (L.cosine_contrastive, ref.cosine_contrastive, False),
    ],
)
def test_loss_matches_reference(seed, fn, fn_ref, graded):
    scores, rel = random_rows(seed, graded=graded)
    if fn is L.sup_hap:
        rel = rel / 3  # any non-negative relevance works, not only w_l / n_l
    expected = per_query(fn_ref, scores, rel)
    values = fn(scores, rel, reduction="none")
    for v, e in zip(values.tolist(), expected):
        assert v == pytest.approx(0.0 if e is None else e, rel=1e-9, abs=1e-12)
    defined = [e for e in expected if e is not None]
    assert float(fn(scores, rel)) == pytest.approx(sum(defined) / len(defined), rel=1e-9)


def test_calibration_and_roadmap_by_hand():
    scores = torch.tensor([[0.95, 0.5, 0.7], [0.2, 0.65, 0.1]])
    rel = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    # positive pairs: [0.9-0.95]+=0, [0.9-0.5]+=0.4, [0.9-0.1]+=0.8 -> mean 0.4
    # negative pairs: [0.7-0.6]+=0.1, [0.2-0.6]+=0, [0.65-0.6]+=0.05 -> mean 0.05
    assert float(L.calibration(scores, rel)) == pytest.approx(0.45)
    expected = 0.9 * float(L.sup_ap(scores, rel)) + 0.1 * 0.45
    assert float(L.roadmap(scores, rel)) == pytest.approx(expected)


def test_happier_is_weighted_sum_of_hap_and_proxy_loss():
    torch.manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(8, 4), dim=1)
    labels = torch.tensor([[0, 0], [0, 0], [1, 0], [1, 0], [2, 1], [2, 1], [3, 1], [3, 1]])
    scores, levels = retrieval_rows(emb, labels)
    rel = hierarchical_relevance(levels, 2)
    proxies = torch.randn(4, 4)
    logits = emb @ torch.nn.functional.normalize(proxies, dim=1).T / 0.05
    ce = torch.nn.functional.cross_entropy(logits, labels[:, 0])
    expected = 0.9 * L.sup_hap(scores, rel) + 0.1 * ce
    torch.testing.assert_close(L.happier(scores, rel, emb, labels[:, 0], proxies), expected)


# ------------------------------------------------------------------ properties


@settings(max_examples=60, deadline=None)
@given(rows())
def test_sup_ap_upper_bounds_one_minus_ap(data):
    scores, rel = data
    loss = L.sup_ap(scores, rel, reduction="none")
    bound = 1 - M.ap(scores, rel, reduction="none")
    valid = (rel > 0).any(1)
    assert torch.all(loss[valid] >= bound[valid] - 1e-12)


@settings(max_examples=60, deadline=None)
@given(rows(graded=True))
def test_sup_hap_and_sup_ndcg_upper_bound_their_metric(data):
    scores, rel = data
    levels = rel.long()
    valid = (rel > 0).any(1)
    hap_loss = L.sup_hap(scores, hierarchical_relevance(levels, 3, dtype=torch.float64), reduction="none")
    assert torch.all(hap_loss[valid] >= 1 - M.h_ap(scores, levels, 3, reduction="none")[valid] - 1e-12)
    ndcg_loss = L.sup_ndcg(scores, rel, reduction="none")
    ndcg = M.ndcg_at_k(scores, rel, scores.shape[1], reduction="none")
    assert torch.all(ndcg_loss[valid] >= 1 - ndcg[valid] - 1e-12)


@settings(max_examples=40, deadline=None)
@given(rows())
def test_sup_hap_with_one_level_equals_sup_ap(data):
    scores, rel = data
    one_level = hierarchical_relevance(rel.long(), 1, dtype=torch.float64)
    torch.testing.assert_close(
        L.sup_hap(scores, one_level, reduction="none"), L.sup_ap(scores, rel, reduction="none")
    )


@settings(max_examples=40, deadline=None)
@given(st.booleans().flatmap(lambda ties: st.tuples(st.just(ties), rows(graded=True, ties=ties))))
def test_bounded_losses_lie_in_unit_interval(case):
    ties, (scores, rel) = case
    # H-AP_s can exceed 1 on exact ties between positives of different relevance (H-(0) = 0.5
    # is below H(0) = 1 there); every other bounded loss stays in [0, 1] even with ties.
    for fn in BOUNDED if not ties else [f for f in BOUNDED if f is not L.sup_hap]:
        values = fn(scores, rel, reduction="none")
        assert torch.all(values >= -1e-12) and torch.all(values <= 1 + 1e-12), fn.__name__


@settings(max_examples=40, deadline=None)
@given(rows(ties=True), st.sampled_from([1e-2, 1e-3, 1e-4]))
def test_gradients_are_finite_with_ties_and_small_tau(data, tau):
    scores, rel = data
    scores = scores.float().requires_grad_()
    rel = rel.float()
    for fn in [
        functools.partial(L.sup_ap, tau=tau),
        functools.partial(L.smooth_ap, tau=tau),
        functools.partial(L.sup_recall_at_k, tau=tau),
        functools.partial(L.sup_ndcg, tau=tau),
        functools.partial(L.sup_hap, tau=tau),
        functools.partial(L.roadmap, tau=tau),
        L.bpr,
        L.sampled_softmax,
        L.cosine_contrastive,
    ]:
        (grad,) = torch.autograd.grad(fn(scores, rel), scores)
        assert torch.isfinite(grad).all()


@settings(max_examples=40, deadline=None)
@given(rows(graded=True), st.randoms(use_true_random=False))
def test_losses_are_invariant_to_permuting_candidates(data, rnd):
    scores, rel = data
    perm = list(range(scores.shape[1]))
    rnd.shuffle(perm)
    for fn in [*BOUNDED, L.bpr, L.sampled_softmax, L.cosine_contrastive, L.roadmap]:
        torch.testing.assert_close(fn(scores, rel), fn(scores[:, perm], rel[:, perm]))


def test_no_gradient_through_positive_positive_orderings_in_sup_ap():
    # Positives within a few τ of each other and of a negative: a smooth rank+ would pull them.
    scores = torch.tensor([[0.50, 0.505, 0.52, 0.51, 0.2]], dtype=torch.float64, requires_grad=True)
    rel = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    (grad,) = torch.autograd.grad(L.sup_ap(scores, rel), scores)

    def expected_grad(smooth_rank_pos: bool):
        s = scores.detach().clone().requires_grad_()
        pos, neg = [0, 1, 2], [3, 4]
        terms = []
        for k in pos:
            if smooth_rank_pos:  # what a loss differentiating positive-positive pairs would do
                rank_pos = 1 + sum(torch.sigmoid((s[0, j] - s[0, k]) / 0.01) for j in pos if j != k)
            else:
                rank_pos = float(sum(float(s[0, j] >= s[0, k]) for j in pos))
            rank_neg = sum(suprank_step(s[0, j] - s[0, k]) for j in neg)
            terms.append(rank_pos / (rank_pos + rank_neg))
        (g,) = torch.autograd.grad(1 - sum(terms) / 3, s)
        return g

    torch.testing.assert_close(grad, expected_grad(smooth_rank_pos=False))
    assert (grad - expected_grad(smooth_rank_pos=True)).abs().max() > 1e-3  # the check has teeth


def test_sup_ap_gradient_only_on_misordered_pairs():
    scores = torch.tensor([[0.5, 0.2, 0.6, -0.5]], requires_grad=True)
    rel = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    (grad,) = torch.autograd.grad(L.sup_ap(scores, rel), scores)
    assert grad[0, 2] > 0  # the negative above the positives is pushed down
    assert grad[0, 0] < 0 and grad[0, 1] < 0  # positives below it are pulled up
    assert grad[0, 3] == pytest.approx(0.0, abs=1e-12)  # a well-placed negative is left alone


def test_empty_batch_gives_zero_loss_with_graph():
    scores = torch.randn(3, 5, requires_grad=True)
    rel = torch.zeros(3, 5)
    for fn in [*BOUNDED, L.bpr, L.sampled_softmax, L.cosine_contrastive]:
        loss = fn(scores, rel)
        assert float(loss) == 0.0
        (grad,) = torch.autograd.grad(loss, scores)
        assert torch.all(grad == 0)


# ------------------------------------------------------------------ gradients against finite differences


def separated_rows(seed, q=5, n=9, graded=False, step=0.0137):
    """Rows whose pairwise score differences are multiples of `step`: every one at least 1e-3 from the
    kinks of `H` and `H-` (0 and δ = 0.05), and spread over all three branches of `H-`."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.stack([torch.randperm(n, generator=g) for _ in range(q)]).double() * step - 0.05
    levels = 4 if graded else 2
    rel = torch.randint(0, levels, (q, n), generator=g).double()
    rel[0, :2] = 1.0
    return scores, rel


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize(
    "fn, graded, kw",
    [
        (L.sup_ap, False, {}),
        (L.sup_ap, False, dict(tau=0.05, rho=1.0)),
        (L.smooth_ap, False, {}),
        (L.sup_recall_at_k, False, {}),
        (L.sup_ndcg, True, {}),
        (L.sup_hap, True, {}),
        (L.roadmap, False, dict(tau=0.05, rho=1.0)),
    ],
)
def test_loss_gradcheck(seed, fn, graded, kw):
    scores, rel = separated_rows(seed, graded=graded)
    if fn is L.sup_hap:
        rel = rel / 3
    scores.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: fn(s, rel, **kw), (scores,), eps=1e-7, atol=1e-6, rtol=1e-5)


# ------------------------------------------------------------------ layouts and chunking


@pytest.mark.parametrize("fn", [*BOUNDED, L.bpr])
def test_chunked_equals_unchunked_values_and_gradients(fn):
    scores, rel = random_rows(3, q=9, n=14, graded=fn in (L.sup_ndcg, L.sup_hap))
    scores = scores.requires_grad_()
    full = fn(scores, rel)
    (g_full,) = torch.autograd.grad(full, scores)
    chunked = fn(scores, rel, max_elements=30)  # a couple of queries per chunk, checkpointed
    (g_chunked,) = torch.autograd.grad(chunked, scores)
    torch.testing.assert_close(chunked, full)
    torch.testing.assert_close(g_chunked, g_full)


def test_square_batch_excludes_self_and_matches_direct_smooth_ap():
    torch.manual_seed(1)
    emb = torch.nn.functional.normalize(torch.randn(12, 8, dtype=torch.float64), dim=1)
    labels = torch.arange(12) // 4
    scores, levels = retrieval_rows(emb, labels)
    assert scores.shape == (12, 11)
    rel = (levels == 1).double()
    assert torch.all(rel.sum(1) == 3)  # 3 other samples of the same class, not 4
    # Direct form: every sample a query over the other 11, all pairs, self removed by index.
    sim = emb @ emb.T
    losses = []
    for i in range(12):
        others = [j for j in range(12) if j != i]
        s = sim[i, others]
        r = (labels[others] == labels[i]).double()
        losses.append(ref.smooth_ap(s.tolist(), r.tolist()))
    assert float(L.smooth_ap(scores, rel)) == pytest.approx(sum(losses) / 12, rel=1e-10)


def test_retrieval_rows_with_memory_appends_candidates():
    emb = torch.eye(3)
    labels = torch.tensor([0, 0, 1])
    memory, memory_labels = torch.ones(2, 3), torch.tensor([1, 0])
    scores, levels = retrieval_rows(emb, labels, memory, memory_labels)
    assert scores.shape == (3, 4)
    assert levels.tolist() == [[1, 0, 0, 1], [1, 0, 0, 1], [0, 0, 1, 0]]


def test_modules_hold_defaults_and_call_functions():
    scores, rel = random_rows(5)
    pairs = [
        (modules.SupAPLoss(), L.sup_ap),
        (modules.SmoothAPLoss(), L.smooth_ap),
        (modules.SupRecallLoss(), L.sup_recall_at_k),
        (modules.SupNDCGLoss(), L.sup_ndcg),
        (modules.SupHAPLoss(), L.sup_hap),
        (modules.ROADMAPLoss(), L.roadmap),
        (modules.CalibrationLoss(), L.calibration),
        (modules.BPRLoss(), L.bpr),
        (modules.SampledSoftmaxLoss(), L.sampled_softmax),
        (modules.CosineContrastiveLoss(), L.cosine_contrastive),
    ]
    for module, fn in pairs:
        torch.testing.assert_close(module(scores, rel), fn(scores, rel))
    assert float(modules.SupAPLoss(tau=0.1)(scores, rel)) != pytest.approx(float(L.sup_ap(scores, rel)))
