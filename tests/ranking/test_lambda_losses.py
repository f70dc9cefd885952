"""LambdaLoss@K against a hand-computed row and a pair-by-pair reference."""

import math

import pytest
import torch
import torch.nn.functional as F

from itemrec.ranking import LambdaLossAtK, lambda_loss_at_k
from itemrec.ranking.lambda_losses import ideal_dcg_at_k, row_ranks


def D(r: float) -> float:
    return math.log2(1 + r)


def reference(scores: torch.Tensor, relevance: torch.Tensor, k: int, temperature: float) -> torch.Tensor:
    """Pair by pair, from the paper's definitions; mean over (row, positive) pairs."""
    total, count = 0.0, 0
    for s, rel in zip(scores.tolist(), relevance.tolist()):
        n = len(s)
        order = sorted(range(n), key=lambda j: (-s[j], j))
        rank = {j: position + 1 for position, j in enumerate(order)}
        pos = [j for j in range(n) if rel[j] > 0]
        neg = [j for j in range(n) if rel[j] <= 0]
        if not pos or not neg:
            continue
        ideal = sum(1 / D(r) for r in range(1, min(len(pos), k) + 1))
        for i in pos:
            term = 0.0
            for j in neg:
                gap = abs(rank[i] - rank[j])
                delta = abs(1 / D(gap) - 1 / D(gap + 1))
                top = max(rank[i], rank[j])
                mu = 1 / (1 - 1 / D(top)) if top > k else 1.0
                term += delta * mu / ideal * math.log1p(math.exp((s[j] - s[i]) / temperature))
            total, count = total + term, count + 1
    return torch.tensor(total / count, dtype=torch.float64)


def test_a_hand_computed_row():
    # ranks: 0.9 -> 1 (the positive), 0.7 -> 2, 0.5 -> 3; K = 1, IDCG@1 = 1
    scores = torch.tensor([[0.9, 0.5, 0.7]], dtype=torch.float64)
    relevance = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    w_rank2 = (1 - 1 / D(2)) / (1 - 1 / D(2))  # δ for a gap of 1, μ for a pair reaching rank 2: exactly 1
    w_rank3 = (1 / D(2) - 1 / D(3)) / (1 - 1 / D(3))  # gap 2, reaching rank 3: 0.1309 × 2
    expected = w_rank2 * math.log1p(math.exp(-0.2)) + w_rank3 * math.log1p(math.exp(-0.4))
    assert w_rank2 == pytest.approx(1.0) and w_rank3 == pytest.approx(0.2618595, abs=1e-6)
    assert float(lambda_loss_at_k(scores, relevance, k=1, temperature=1.0)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("k", [1, 3, 20])
def test_equals_the_pair_by_pair_reference_chunked_or_not(k):
    g = torch.Generator().manual_seed(k)
    scores = torch.rand(6, 12, generator=g, dtype=torch.float64) * 2 - 1
    relevance = (torch.rand(6, 12, generator=g) < 0.3).double()
    relevance[0] = 0.0  # a row without a positive: left out
    relevance[1, :3] = 1.0
    expected = reference(scores, relevance, k, temperature=0.2)
    whole = lambda_loss_at_k(scores, relevance, k=k, temperature=0.2)
    chunked = lambda_loss_at_k(scores, relevance, k=k, temperature=0.2, max_elements=30)  # a few rows at a time
    torch.testing.assert_close(whole, expected)
    torch.testing.assert_close(chunked, expected)


def test_gradient_pushes_each_positive_up_and_its_negatives_down():
    scores = (torch.rand(4, 30, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1).requires_grad_()
    relevance = torch.zeros(4, 30, dtype=torch.float64)
    relevance[:, :5] = 1.0
    lambda_loss_at_k(scores, relevance, k=5, temperature=0.1).backward()
    assert (scores.grad[:, :5] < 0).all() and (scores.grad[:, 5:] > 0).all()
    torch.autograd.gradcheck(lambda s: lambda_loss_at_k(s, relevance, k=5, temperature=0.1), scores.detach().clone().requires_grad_())


def test_ranks_and_ideal_dcg():
    assert row_ranks(torch.tensor([[0.1, 0.9, 0.5, 0.9]])).tolist() == [[4.0, 1.0, 3.0, 2.0]]  # a tie in stored order
    ideal = ideal_dcg_at_k(torch.tensor([0, 1, 3, 50]), k=2)
    torch.testing.assert_close(ideal, torch.tensor([0.0, 1.0, 1 + 1 / D(2), 1 + 1 / D(2)], dtype=torch.float64))


def test_the_module_holds_the_defaults_and_weighting():
    scores = torch.rand(3, 40, generator=torch.Generator().manual_seed(2)) * 2 - 1
    relevance = torch.zeros(3, 40)
    relevance[0, :2], relevance[1, :10], relevance[2, :1] = 1.0, 1.0, 1.0
    module = LambdaLossAtK()
    assert (module.k, module.temperature, module.weighting) == (20, 0.1, "interaction")
    torch.testing.assert_close(module(scores, relevance), lambda_loss_at_k(scores, relevance, 20, 0.1))
    per_row = lambda_loss_at_k(scores, relevance, 20, 0.1, reduction="none")
    torch.testing.assert_close(LambdaLossAtK(weighting="user")(scores, relevance), per_row.mean())
    assert float(F.relu(-per_row).sum()) == 0.0  # every term is ≥ 0


def test_a_model_trains_with_it_from_a_config(tmp_path):
    """`loss.name: lambda_loss_at_k` end to end: MF on generated data, two epochs, finite loss."""
    from itemrec.experiment.config import load_config
    from itemrec.recsys.frontend import train
    from tests.recsys.test_train import write_config, write_interactions

    write_interactions(tmp_path / "inter.csv")
    path = write_config(tmp_path, model={"name": "mf", "dim": 8}, loss={"name": "lambda_loss_at_k", "k": 5, "temperature": 0.2},
                        sampling={"negatives": "uniform"}, train={"epochs": 2, "eval_every": 1, "score": "cosine"})
    run_id = train(load_config(path), tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", quiet=True)
    from mlflow.tracking import MlflowClient

    run = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(run_id)
    assert run.data.params["loss.name"] == "lambda_loss_at_k" and math.isfinite(run.data.metrics["loss"])
    assert 0 < run.data.metrics["test/ndcg_at_10"] <= 1
