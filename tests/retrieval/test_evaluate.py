"""Evaluation metrics equal the core's exact per-query metrics on full score rows, and plain Python."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from itemrec.ranking import ap, asi, h_ap, hit_at_k, map_at_r, ndcg_at_k, retrieval_rows
from retrieval.evaluate import HIT_KS, retrieval_metrics


def data(n: int = 300, dim: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    fine = torch.randint(0, 12, (n,), generator=g)
    labels = torch.stack([fine, fine // 4], 1)
    centers = torch.randn(12, dim, generator=g)
    embeddings = F.normalize(centers[fine] + 1.5 * torch.randn(n, dim, generator=g), dim=1)
    # quarter steps: every dot product is exact whatever the matmul blocking, and ties are common
    return torch.round(embeddings * 4) / 4, labels


def core_reference(embeddings, labels) -> dict[str, float]:
    scores, levels = retrieval_rows(embeddings.double(), labels)  # every query against all others
    relevant = (levels == 2).double()
    out = {f"hit@{k}": hit_at_k(scores, relevant, k) for k in HIT_KS}
    out.update(
        {
            "map@r": map_at_r(scores, relevant), "ap": ap(scores, relevant),
            "ndcg": ndcg_at_k(scores, levels.double(), scores.shape[1]),
            "h_ap": h_ap(scores, levels, 2), "asi": asi(scores, levels, 2),
            "ap_level0": ap(scores, relevant), "ap_level1": ap(scores, (levels >= 1).double()),
        }
    )
    return {k: float(v) for k, v in out.items()}


@pytest.mark.parametrize("chunk", [1, 37, 1024])
def test_metrics_equal_core_reference(chunk: int):
    embeddings, labels = data()
    got = retrieval_metrics(embeddings.double(), labels, chunk=chunk)
    expected = core_reference(embeddings, labels)
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-7), name


def test_against_plain_python_hit_and_ap():
    embeddings, labels = data(n=60, seed=3)
    fine = labels[:, 0].tolist()
    sims = (embeddings @ embeddings.T).tolist()
    hits, aps = [], []
    for q in range(60):
        others = [j for j in range(60) if j != q]
        # pessimistic ties: among equal scores, non-matching images first
        ranked = sorted(others, key=lambda j: (-sims[q][j], fine[j] == fine[q]))
        match = [fine[j] == fine[q] for j in ranked]
        if not any(match):
            continue
        hits.append(float(match[0]))
        found, total = 0, 0.0
        for i, m in enumerate(match, start=1):
            if m:
                found += 1
                total += found / i
        aps.append(total / sum(match))
    got = retrieval_metrics(embeddings, labels[:, :1], chunk=16)
    assert got["hit@1"] == pytest.approx(sum(hits) / len(hits), abs=1e-6)
    assert got["ap"] == pytest.approx(sum(aps) / len(aps), abs=1e-6)
    assert "ap_level0" not in got  # one level: no per-level AP


def test_self_is_removed_by_index_not_by_score():
    embeddings = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), dim=1)
    # 0 and 1 are identical but different classes; their only match is elsewhere
    labels = torch.tensor([0, 1, 0, 1])
    got = retrieval_metrics(embeddings, labels)
    assert got["hit@1"] == 0.0 and got["hit@2"] == 0.0 and got["hit@4"] == 1.0
    assert got["map@r"] == 0.0 and got["ap"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("names", [["map@r"], ["hit@1", "h_ap"], ["ndcg", "asi", "ap", "ap_level"]])
def test_a_subset_of_metrics_equals_the_same_metrics_of_the_full_set(names):
    embeddings, labels = data(seed=3)
    full = retrieval_metrics(embeddings, labels, chunk=64)
    subset = retrieval_metrics(embeddings, labels, chunk=64, names=names)
    expected = {k: v for k, v in full.items() if k in names or (k.startswith("ap_level") and "ap_level" in names)}
    assert subset == expected  # bit for bit
