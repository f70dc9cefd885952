import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from itemrec.experiment.config import load_config
from itemrec.experiment.loop import run_dir
from itemrec.ranking.modules import SupAPLoss
from itemrec.recsys.frontend import train
from itemrec.recsys.models import DAE
from tests.recsys.models.conftest import random_train
from tests.recsys.test_train import untimed, write_config, write_interactions
from tests.stores import mlflow_store


def dense_encode(model: DAE, rows: np.ndarray) -> torch.Tensor:
    """The module docstring's formula with dense tensors: `tanh(... tanh((x / ||x||) W A_1 + b_1) ...)`."""
    x = torch.tensor(rows, dtype=torch.float32)
    norm = x.sum(1, keepdim=True).clamp(min=1).sqrt()
    hidden = (x / norm) @ model.input_embedding
    for layer in model.hidden:
        hidden = torch.tanh(hidden @ layer.weight.T + layer.bias)
    return hidden


@pytest.mark.parametrize("layers", [0, 2])
def test_eval_forward_is_the_dense_formula(train, layers):
    torch.manual_seed(0)
    model = DAE(12, 9, train, dim=5, layers=layers).eval()
    users, items = model()
    assert users.shape == (12, 5) and items.shape == (9, 5)
    torch.testing.assert_close(users, dense_encode(model, train.toarray()))
    assert items is model.item_embedding


def test_training_forward_drops_interactions_with_the_dropout_rate():
    train = random_train(200, 50, 0.3)
    torch.manual_seed(0)
    model = DAE(200, 50, train, dim=4, dropout=0.5).train()
    with torch.no_grad():  # identity-like input embeddings: the bag shows which items were kept
        model.input_embedding.copy_(torch.eye(50, 4))
    users, _ = model()
    kept_first = (users[:, 0] > 0).float()  # item 0 kept for the users who have it
    has_first = torch.tensor(train[:, 0].toarray().ravel() > 0)
    rate = float(kept_first[has_first].mean())
    assert 0.35 < rate < 0.65
    assert not users[~has_first, 0].any()


def test_dropout_is_off_in_eval_and_deterministic_under_the_seed(train):
    torch.manual_seed(1)
    a = DAE(12, 9, train, dim=5, dropout=0.5)
    torch.manual_seed(1)
    b = DAE(12, 9, train, dim=5, dropout=0.5)
    torch.manual_seed(2)
    first = a.train()()[0]
    torch.manual_seed(2)
    torch.testing.assert_close(b.train()()[0], first, atol=0, rtol=0)
    torch.testing.assert_close(a.eval()()[0], b.eval()()[0], atol=0, rtol=0)


def test_l2_is_the_squared_embeddings_of_the_batch_items(train):
    model = DAE(12, 9, train, dim=5)
    expected = model.input_embedding[[0, 3]].pow(2).sum() + model.item_embedding[[0, 3]].pow(2).sum()
    torch.testing.assert_close(model.l2(torch.tensor([1, 2]), torch.tensor([0, 3])), expected)


def test_new_user_with_a_known_history_gets_the_known_vector(train):
    torch.manual_seed(0)
    model = DAE(12, 9, train, dim=5, layers=1).eval()
    known = model.user_vectors(torch.arange(12))
    torch.testing.assert_close(model.new_user_vectors(train), known)
    torch.testing.assert_close(model.new_user_vectors(train[[4]]), known[[4]])


def test_new_user_vectors_by_hand_and_empty_history():
    model = DAE(3, 4, random_train(3, 4, 0.5), dim=2).eval()
    with torch.no_grad():
        model.input_embedding.copy_(torch.tensor([[1.0, 0], [0, 1], [2, 2], [0, 0]]))
    history = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]], dtype=np.float32))
    vectors = model.new_user_vectors(history)
    torch.testing.assert_close(vectors, torch.tensor([[2**-0.5, 2**-0.5], [0, 0], [2, 2]]))
    with pytest.raises(ValueError, match="history must be"):
        model.new_user_vectors(sp.csr_matrix((1, 5), dtype=np.float32))


def test_learns_to_recover_held_out_items():
    """Two taste groups: trained with SupAP on the rows, users rank their group's items first."""
    rng = np.random.default_rng(0)
    n_users, n_items = 60, 20
    dense = np.zeros((n_users, n_items), dtype=np.float32)
    for u in range(n_users):
        own = np.arange(10) + 10 * (u % 2)
        dense[u, rng.choice(own, size=6, replace=False)] = 1
    train = sp.csr_matrix(dense)
    torch.manual_seed(0)
    model = DAE(n_users, n_items, train, dim=8, dropout=0.3)
    loss_fn = SupAPLoss(tau=0.05, rho=1.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    relevance = torch.tensor(dense)
    for _ in range(100):
        users, items = model()
        loss = loss_fn(users @ items.T, relevance)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    scores = model.eval().user_vectors(torch.arange(n_users)) @ model.item_vectors().T
    group = torch.arange(n_users) % 2
    own_mean = torch.stack([scores[u, 10 * g : 10 * g + 10].mean() for u, g in enumerate(group)])
    other_max = torch.stack([scores[u, 10 * (1 - g) : 10 * (1 - g) + 10].max() for u, g in enumerate(group)])
    held_out = torch.tensor(1 - dense) * (scores > other_max[:, None])  # unseen own-group items above the other group
    assert (own_mean > other_max).all()
    assert held_out.sum() > 0.9 * n_users * 4


def test_trains_end_to_end_and_resumes_to_the_same_metrics(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store(tmp_path / "mlflow.db"))
    write_interactions(tmp_path / "inter.csv")
    path = write_config(
        tmp_path, model={"name": "dae", "dim": 16, "layers": 1, "dropout": 0.5},
        sampling={"negatives": "uniform"}, train={"epochs": 4, "lr": 0.05},
    )
    cfg = load_config(path)
    uninterrupted = train(cfg, quiet=True)
    first = train(cfg, quiet=True, stop_after=1)
    resumed = train(cfg, quiet=True, resume=first)
    a = json.loads((run_dir(cfg, uninterrupted) / "metrics.json").read_text())
    b = json.loads((run_dir(cfg, resumed) / "metrics.json").read_text())
    assert untimed(a) == untimed(b)
    assert a["test/ndcg@10"] > 0.2
