"""Criteria: ranking losses on retrieval rows (with memory), HAPPIER, baselines, name errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from itemrec.experiment.config import NamedSpec
from itemrec.experiment.errors import UserError
from itemrec.ranking import hierarchical_relevance, retrieval_rows, roadmap, sup_hap, sup_ndcg
from retrieval.losses import build_criterion


def batch(n: int = 24, dim: int = 8):
    g = torch.Generator().manual_seed(0)
    fine = torch.arange(n) % 6
    labels = torch.stack([fine, fine // 3], 1)
    return F.normalize(torch.randn(n, dim, generator=g), dim=1).requires_grad_(), labels


def test_roadmap_criterion_equals_core_on_rows_with_memory():
    emb, labels = batch()
    memory = (F.normalize(torch.randn(10, 8), dim=1), labels[:10])
    crit = build_criterion(NamedSpec(name="roadmap", lam=0.2), num_levels=2, num_classes=6, dim=8)
    scores, levels = retrieval_rows(emb, labels, *memory)
    assert scores.shape == (24, 23 + 10)
    expected = roadmap(scores, (levels == 2).float(), lam=0.2)
    assert torch.allclose(crit(emb, labels, memory), expected)
    crit(emb, labels, memory).backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0


def test_hierarchical_and_graded_relevance():
    torch.manual_seed(0)  # HAPPIER's proxies are drawn from the global RNG: fix them whatever ran before
    emb, labels = batch()
    scores, levels = retrieval_rows(emb, labels)
    hap = build_criterion(NamedSpec(name="sup_hap"), 2, 6, 8)
    assert torch.allclose(hap(emb, labels), sup_hap(scores, hierarchical_relevance(levels, 2)))
    ndcg = build_criterion(NamedSpec(name="sup_ndcg"), 2, 6, 8)
    assert torch.allclose(ndcg(emb, labels), sup_ndcg(scores, levels.float()))
    happier = build_criterion(NamedSpec(name="happier"), 2, 6, 8)
    assert happier.loss.proxies.shape == (6, 8)
    loss = happier(emb, labels)
    loss.backward()
    assert happier.loss.proxies.grad is not None and 0 < loss.item() < 2


@pytest.mark.parametrize("name", ["contrastive", "multi_similarity", "triplet"])
def test_baselines_train(name: str):
    pytest.importorskip("pytorch_metric_learning")
    emb, labels = batch()
    loss = build_criterion(NamedSpec(name=name), 2, 6, 8)(emb, labels)
    loss.backward()
    assert loss.item() > 0 and emb.grad.abs().sum() > 0


def test_unknown_loss_and_parameter():
    with pytest.raises(UserError, match=r"loss.name: unknown loss 'ap_loss'"):
        build_criterion(NamedSpec(name="ap_loss"), 1, 2, 4)
    with pytest.raises(UserError, match=r"loss.tua: unknown parameter"):
        build_criterion(NamedSpec(name="sup_ap", tua=0.1), 1, 2, 4)
    with pytest.raises(UserError, match=r"loss.margn: unknown parameter"):
        build_criterion(NamedSpec(name="triplet", margn=0.1), 1, 2, 4)
