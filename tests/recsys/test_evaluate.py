"""Full-ranking evaluation against a brute-force per-user reference on a small model."""

import math

import numpy as np
import pytest
import torch

from itemrec.recsys.data import load_dataset
from itemrec.recsys.data.splits import SplitSpec
from itemrec.recsys.evaluate import evaluate
from itemrec.recsys.models import MF
from tests.ranking import reference as ref
from tests.recsys.test_train import write_interactions


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = write_interactions(tmp_path_factory.mktemp("eval") / "inter.csv", n_users=40, n_items=48, seed=2)
    return load_dataset(path, split=SplitSpec(kind="random"), seed=1, quiet=True)


def brute_force(model, data, split, ks, normalize, exclude_val=True):
    """Per user: score every item, drop the excluded ones, sort, compute the metric by hand."""
    users_vec = model.user_vectors(torch.arange(data.n_users)).detach()
    items_vec = model.item_vectors().detach()
    if normalize:
        users_vec = torch.nn.functional.normalize(users_vec, dim=1)
        items_vec = torch.nn.functional.normalize(items_vec, dim=1)
    scores = (users_vec @ items_vec.T).numpy()
    exclude = data.train if split == "val" or not exclude_val else data.train + data.val
    target = data.val if split == "val" else data.test
    out = {f"{m}@{k}": [] for k in ks for m in ("recall", "ndcg", "precision", "hit", "mrr")}
    for u in range(data.n_users):
        relevant = set(target[u].indices.tolist())
        if not relevant:
            continue
        allowed = [i for i in range(data.n_items) if i not in set(exclude[u].indices.tolist())]
        s = [float(scores[u, i]) for i in allowed]
        rel = [1.0 if i in relevant else 0.0 for i in allowed]
        for k in ks:
            for m in ("recall", "ndcg", "precision", "hit", "mrr"):
                out[f"{m}@{k}"].append(ref.topk(s, rel, k, m))
    return {name: float(np.mean(values)) for name, values in out.items()}


@pytest.mark.parametrize("split", ["val", "test"])
@pytest.mark.parametrize("normalize", [False, True])
def test_evaluation_equals_brute_force(data, split, normalize):
    torch.manual_seed(0)
    model = MF(data.n_users, data.n_items, data.train, dim=8)
    ks = (3, 5, 60)  # 60 > number of items: every allowed item is ranked
    result = evaluate(model, data, split, "transductive", ks, normalize=normalize, batch_users=7)
    expected = brute_force(model, data, split, ks, normalize)
    for name, value in expected.items():
        assert result.metrics[name] == pytest.approx(value, abs=1e-6), name
    assert result.users == len(result.per_user) == sum(np.diff((data.val if split == "val" else data.test).indptr) > 0)
    assert result.per_user["ndcg@5"].mean() == pytest.approx(result.metrics["ndcg@5"], abs=1e-6)


def test_validation_rows_as_test_candidates(data):
    # eval.exclude_val_at_test: false, IR-Benchmark's evaluation: only training rows are excluded
    torch.manual_seed(0)
    model = MF(data.n_users, data.n_items, data.train, dim=8)
    ks = (3, 5, 60)
    assert data.val.nnz > 0
    kept = evaluate(model, data, "test", "transductive", ks, batch_users=7, exclude_val=False)
    expected = brute_force(model, data, "test", ks, False, exclude_val=False)
    for name, value in expected.items():
        assert kept.metrics[name] == pytest.approx(value, abs=1e-6), name
    masked = evaluate(model, data, "test", "transductive", ks, batch_users=7)
    assert kept.metrics["ndcg@60"] < masked.metrics["ndcg@60"] - 1e-3  # validation items now rank among them
    # validation is unaffected
    assert evaluate(model, data, "val", "transductive", ks, exclude_val=False).metrics == pytest.approx(
        evaluate(model, data, "val", "transductive", ks).metrics
    )


def test_coverage_and_novelty(data):
    torch.manual_seed(0)
    model = MF(data.n_users, data.n_items, data.train, dim=8)
    result = evaluate(model, data, "test", "transductive", (3,), batch_users=5)
    top = set()
    users_vec, items_vec = model.user_vectors(torch.arange(data.n_users)).detach(), model.item_vectors().detach()
    exclude = data.train + data.val
    users = np.flatnonzero(np.diff(data.test.indptr))
    pop = data.item_popularity
    novelty = []
    for u in users:
        s = (users_vec[u] @ items_vec.T).numpy().copy()
        s[exclude[u].indices] = -math.inf
        best = np.argsort(-s, kind="stable")[:3]
        top.update(best.tolist())
        novelty.append(np.mean(-np.log2((pop[best] + 1) / (data.n_users + 1))))
    assert result.metrics["coverage@3"] == pytest.approx(len(top) / data.n_items)
    assert result.metrics["novelty@3"] == pytest.approx(float(np.mean(novelty)), rel=1e-5)


def test_progress_counts_every_evaluated_user(data):
    from rich.progress import Progress

    torch.manual_seed(0)
    model = MF(data.n_users, data.n_items, data.train, dim=8)
    bar = Progress(disable=True)
    seen = []
    add_task, advance = bar.add_task, bar.advance
    bar.add_task = lambda *a, **kw: seen.append(("total", kw["total"])) or add_task(*a, **kw)
    bar.advance = lambda task, n: seen.append(("advance", n)) or advance(task, n)
    result = evaluate(model, data, "test", "transductive", (3,), batch_users=7, bar=bar)
    assert seen[0] == ("total", result.users)
    assert [n for kind, n in seen[1:]] == [min(7, result.users - lo) for lo in range(0, result.users, 7)]
    assert not bar.tasks  # removed when done
