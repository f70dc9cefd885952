"""Training with per-user top-K thresholds (SL@K, Log-DCG@K, Sup-NDCG@K): when they are
estimated, what each row gets, what a resumed run keeps, what the run logs."""

from __future__ import annotations

import pytest
import torch

from itemrec.experiment.config import load_config
from itemrec.experiment.errors import UserError
from itemrec.experiment.loop import run_dir
from itemrec.recsys import train as train_module
from itemrec.recsys.frontend import train
from tests.recsys.test_train import metrics_of, untimed, write_config

SLATK = {
    "loss": {"name": "sl_at_k", "k": 5, "tau_d": 0.2, "tau_w": 1.0, "refresh_every": 2, "quantile_negatives": 20},
    "sampling": {"unit": "interaction", "negatives": "uniform", "negatives_per_row": 16},
    "train": {"epochs": 3, "batch_size": 128},
}


def test_sl_at_k_resumes_exactly_with_its_thresholds(workdir):
    # refreshed at epoch 1 only: epoch 3, after the resume, trains with the checkpoint's β
    cfg = load_config(write_config(workdir, **{**SLATK, "loss": {**SLATK["loss"], "refresh_every": 3}}))
    uninterrupted = train(cfg, quiet=True)
    first = train(cfg, quiet=True, stop_after=2)
    beta = torch.load(run_dir(cfg, first) / "last.pt", weights_only=True)["extra"]["quantiles"]["beta"]
    assert beta.shape == (80,) and beta.abs().sum() > 0
    resumed = train(cfg, quiet=True, resume=first)
    a, b = metrics_of(workdir / "tiny.yaml", uninterrupted), metrics_of(workdir / "tiny.yaml", resumed)
    assert untimed(a) == untimed(b)
    last = [torch.load(run_dir(cfg, run) / "last.pt", weights_only=True) for run in (uninterrupted, resumed)]
    for name, weight in last[0]["model"].items():
        assert torch.equal(weight, last[1]["model"][name]), name
    assert torch.equal(last[0]["extra"]["quantiles"]["beta"], beta)


def test_sl_at_k_refreshes_beta_every_t_epochs_and_rows_get_their_users(workdir, monkeypatch):
    seen, rows = [], []
    original, rank_loss = train_module.train_epoch, train_module.rank_loss

    def recording(*args, quantiles=None, **kwargs):
        seen.append(quantiles.beta.clone())
        return original(*args, quantiles=quantiles, **kwargs)

    def recording_loss(loss_fn, user_all, item_all, users, items, relevance, cosine, info, beta=None):
        rows.append((users, beta))
        return rank_loss(loss_fn, user_all, item_all, users, items, relevance, cosine, info, beta)

    monkeypatch.setattr(train_module, "train_epoch", recording)
    monkeypatch.setattr(train_module, "rank_loss", recording_loss)
    cfg = load_config(write_config(workdir, **{**SLATK, "train": {"epochs": 4, "batch_size": 128}}))
    run = train(cfg, quiet=True)
    assert len(seen) == 4 and seen[0].abs().sum() > 0  # epoch 1 starts with an estimate
    changed = [not torch.equal(seen[e], seen[e - 1]) for e in range(1, 4)]
    assert changed == [False, True, False]  # refreshed at epochs 1 and 3
    users, beta = rows[-1]
    torch.testing.assert_close(beta, seen[3][users])
    # each validated epoch logs the mean threshold it trained with (every user here has positives)
    history = torch.load(run_dir(cfg, run) / "last.pt", weights_only=True)["history"]
    assert [row["topk_threshold_mean"] for row in history] == pytest.approx([float(b.mean()) for b in seen], rel=1e-6)


@pytest.mark.parametrize("loss", [
    {**SLATK["loss"], "quantile_positives": 2},
    {"name": "log_dcg", "k": 5, "refresh_every": 2, "quantile_negatives": 20, "quantile_positives": 2},
])
def test_quantile_positives_caps_the_positives_of_each_threshold_estimate(workdir, monkeypatch, loss):
    made = []
    real = train_module.UserQuantiles

    def recording(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(train_module, "UserQuantiles", recording)
    train(load_config(write_config(workdir, **{**SLATK, "loss": loss, "train": {"epochs": 1, "batch_size": 128}})), quiet=True)
    assert [q.max_positives for q in made] == [2]
    with pytest.raises(UserError, match=r"loss\.quantile_positives: must be >= 1"):
        train(load_config(write_config(workdir, **{**SLATK, "loss": {**loss, "quantile_positives": 0}})), quiet=True)


@pytest.mark.parametrize("loss, thresholds", [
    ({"name": "log_dcg", "k": 5, "refresh_every": 2, "quantile_negatives": 20}, True),
    ({"name": "log_dcg"}, False),
])
def test_log_dcg_gets_top_k_thresholds_only_with_k(workdir, monkeypatch, loss, thresholds):
    rows = []
    rank_loss = train_module.rank_loss

    def recording_loss(loss_fn, user_all, item_all, users, items, relevance, cosine, info, beta=None):
        rows.append(beta)
        return rank_loss(loss_fn, user_all, item_all, users, items, relevance, cosine, info, beta)

    monkeypatch.setattr(train_module, "rank_loss", recording_loss)
    run_id = train(load_config(write_config(workdir, **{**SLATK, "loss": loss, "train": {"epochs": 2, "batch_size": 128}})), quiet=True)
    assert rows and all((beta is not None) == thresholds for beta in rows)
    if thresholds:
        assert rows[-1].abs().sum() > 0
    assert metrics_of(workdir / "tiny.yaml", run_id)["test/ndcg@10"] > 0
