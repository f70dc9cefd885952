"""The `nn.Module` wrappers pass every hyper-parameter through to their functional form."""

import pytest
import torch

from itemrec.ranking import losses as L
from itemrec.ranking import modules as M

STEP = dict(tau=0.05, rho=10.0, delta=0.1, start=0.6, offset=0.9)
"""Non-default `H-` parameters: a wrapper that dropped one would fall back to the default."""


def rows(graded: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(4, 8, generator=g, dtype=torch.float64) * 2 - 1
    relevance = torch.randint(0, 3 if graded else 2, (4, 8), generator=g).double()
    relevance[:, 0], relevance[:, -1] = 2 if graded else 1, 0  # a positive and a negative per row
    return scores, relevance


CASES = [
    (M.SupAPLoss(**STEP), lambda s, r: L.sup_ap(s, r, **STEP), L.sup_ap, False),
    (M.SupNDCGLoss(**STEP), lambda s, r: L.sup_ndcg(s, r, **STEP), L.sup_ndcg, True),
    (M.SupHAPLoss(**STEP), lambda s, r: L.sup_hap(s, r, **STEP), L.sup_hap, True),
    (
        M.SupRecallLoss(ks=(1, 3), temperature=0.5, **STEP),
        lambda s, r: L.sup_recall_at_k(s, r, ks=(1, 3), temperature=0.5, **STEP),
        L.sup_recall_at_k,
        False,
    ),
    (
        M.ROADMAPLoss(lam=0.3, alpha=0.8, beta=0.5, **STEP),
        lambda s, r: L.roadmap(s, r, lam=0.3, alpha=0.8, beta=0.5, **STEP),
        L.roadmap,
        False,
    ),
    (M.SmoothAPLoss(tau=0.1), lambda s, r: L.smooth_ap(s, r, tau=0.1), L.smooth_ap, False),
    (M.CalibrationLoss(alpha=0.7, beta=0.4), lambda s, r: L.calibration(s, r, 0.7, 0.4), L.calibration, False),
    (M.SampledSoftmaxLoss(temperature=0.5), lambda s, r: L.sampled_softmax(s, r, 0.5), L.sampled_softmax, False),
    (
        M.CosineContrastiveLoss(margin=0.5, negative_weight=2.0),
        lambda s, r: L.cosine_contrastive(s, r, 0.5, 2.0),
        L.cosine_contrastive,
        False,
    ),
]


@pytest.mark.parametrize("module, functional, default, graded", CASES, ids=[type(c[0]).__name__ for c in CASES])
def test_wrapper_equals_its_function_with_the_same_hyper_parameters(module, functional, default, graded):
    scores, relevance = rows(graded)
    value = module(scores, relevance)
    torch.testing.assert_close(value, functional(scores, relevance))
    assert float(value) != pytest.approx(float(default(scores, relevance)), rel=1e-6)  # the settings matter


def test_bpr_chunked_equals_unchunked():
    scores, relevance = rows()
    torch.testing.assert_close(M.BPRLoss(max_elements=8)(scores, relevance), L.bpr(scores, relevance))


def test_happier_holds_its_proxies_and_trains_them():
    torch.manual_seed(0)
    loss = M.HAPPIERLoss(num_classes=3, dim=4, lam=0.5, temperature=0.1, **STEP)
    assert [name for name, _ in loss.named_parameters()] == ["proxies"] and loss.proxies.shape == (3, 4)
    scores, relevance = rows(graded=True)
    embeddings = torch.randn(4, 4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 1])
    proxies = loss.proxies.double()
    value = loss.double()(scores, relevance, embeddings, labels)
    expected = L.happier(scores, relevance, embeddings, labels, proxies, lam=0.5, temperature=0.1, **STEP)
    torch.testing.assert_close(value, expected)
    value.backward()
    assert loss.proxies.grad is not None and loss.proxies.grad.abs().sum() > 0


def test_repr_shows_the_surrogate_settings():
    assert repr(M.SupAPLoss(tau=0.05, rho=10.0)) == "SupAPLoss(tau=0.05, rho=10.0, delta=0.05, start=0.5)"


@pytest.mark.parametrize("module, functional", [
    (M.SupAPLoss, L.sup_ap), (M.SupNDCGLoss, L.sup_ndcg), (M.SupHAPLoss, L.sup_hap), (M.SupRecallLoss, L.sup_recall_at_k),
])
def test_suprank_interaction_weighting_weighs_each_row_by_its_positives(module, functional):
    scores, relevance = rows()
    relevance[1] = 0.0  # a row without a positive counts for nothing either way
    per_row = functional(scores, relevance, reduction="none", **STEP)  # [Q]
    n_pos = (relevance > 0).sum(1).double()
    assert sorted(n_pos.tolist()) != [n_pos[0].item()] * 4  # the rows differ, so the weightings do
    expected = (per_row * n_pos).sum() / n_pos.sum()
    torch.testing.assert_close(module(weighting="interaction", **STEP)(scores, relevance), expected)
    torch.testing.assert_close(module(weighting="user", **STEP)(scores, relevance), per_row[n_pos > 0].mean())
    assert module(weighting="interaction").batch_mean and not module().batch_mean


def test_roadmap_interaction_weighting_weighs_its_ap_term_and_keeps_the_calibration():
    scores, relevance = rows()
    per_row = L.sup_ap(scores, relevance, reduction="none", **STEP)
    n_pos = (relevance > 0).sum(1).double()
    expected = 0.7 * (per_row * n_pos).sum() / n_pos.sum() + 0.3 * L.calibration(scores, relevance)
    torch.testing.assert_close(M.ROADMAPLoss(lam=0.3, weighting="interaction", **STEP)(scores, relevance), expected)


def test_happier_refuses_a_weighting_it_would_ignore():
    with pytest.raises(AssertionError, match="HAPPIER"):
        M.HAPPIERLoss(num_classes=3, dim=4, weighting="interaction")
