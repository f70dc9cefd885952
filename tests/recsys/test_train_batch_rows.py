"""Training propagates LightGCN for the rows each batch reads (`model(users, items)`): the same
run, number for number, as propagating every row."""

from __future__ import annotations

import pytest

from itemrec.experiment.config import load_config
from itemrec.recsys.frontend import train
from itemrec.recsys.models import LightGCN
from tests.recsys.test_train import metrics_of, untimed, write_config

SETTINGS = {
    "sup_ap_ppr": {},
    "sampled_softmax_cosine": {
        "loss": {"name": "sampled_softmax", "temperature": 0.2, "include_positive": False},
        "sampling": {"negatives": "uniform"}, "train": {"score": "cosine"},
    },
    "bpr_pairs": {
        "loss": {"name": "bpr"}, "sampling": {"unit": "interaction", "negatives": "uniform", "negatives_per_row": 1},
        "train": {"batch_size": 64},
    },
}


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_training_on_the_batchs_rows_equals_training_on_every_row(workdir, monkeypatch, setting):
    sections = SETTINGS[setting]
    sections = {**sections, "train": {"epochs": 2, **sections.get("train", {})}}
    cfg = load_config(write_config(workdir, **sections))
    seen = []
    original = LightGCN.forward

    def recording(self, users=None, items=None):
        seen.append(users is not None and items is not None)
        return original(self, users, items)

    monkeypatch.setattr(LightGCN, "forward", recording)
    batch_rows = metrics_of(workdir / "tiny.yaml", train(cfg, quiet=True))
    assert any(seen)  # the training steps passed their rows
    monkeypatch.setattr(LightGCN, "forward", lambda self, users=None, items=None: original(self))
    every_row = metrics_of(workdir / "tiny.yaml", train(cfg, quiet=True))
    assert untimed(batch_rows) == untimed(every_row)
    assert any("ndcg" in k for k in batch_rows)
