"""Training makes each batch's rows ahead of the step (`itemrec.recsys.train.prefetched`): in order,
one at a time, and with the same draws as a plain loop."""

from __future__ import annotations

import pytest
import torch

from itemrec.experiment.config import load_config
from itemrec.recsys import train as train_module
from itemrec.recsys.frontend import train
from tests.recsys.test_train import metrics_of, untimed, write_config


def test_prefetched_makes_each_item_in_order_one_at_a_time_ahead_of_the_caller():
    import threading

    running, most, started, lock = [0], [0], {}, threading.Lock()
    order = []

    def make(item: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        order.append(item)
        started.setdefault(item, threading.Event()).set()
        with lock:
            running[0] -= 1
        return item * item

    out = []
    for value in train_module.prefetched(make, list(range(6))):
        item = int(value**0.5)
        if item < 5:  # the next item is made while the caller still holds this one
            assert started.setdefault(item + 1, threading.Event()).wait(5)
        out.append(value)
    assert out == [i * i for i in range(6)] and order == list(range(6)) and most[0] == 1
    assert list(train_module.prefetched(make, [])) == []


def test_rows_are_made_ahead_on_an_accelerator_only():
    assert not train_module.rows_ahead(torch.device("cpu"))
    assert train_module.rows_ahead(torch.device("cuda")) and train_module.rows_ahead(torch.device("mps"))


@pytest.mark.parametrize("negatives", ["uniform", "ppr"])
def test_rows_made_ahead_draw_what_a_plain_loop_draws(workdir, monkeypatch, negatives):
    cfg = load_config(write_config(workdir, sampling={"negatives": negatives}, train={"epochs": 2}))
    made = []
    original = train_module.prefetched
    monkeypatch.setattr(train_module, "prefetched", lambda make, items: made.append(len(items)) or original(make, items))
    monkeypatch.setattr(train_module, "rows_ahead", lambda device: True)
    ahead = metrics_of(workdir / "tiny.yaml", train(cfg, quiet=True))
    assert len(made) == 2  # both epochs made their rows ahead
    monkeypatch.setattr(train_module, "rows_ahead", lambda device: False)
    plain = metrics_of(workdir / "tiny.yaml", train(cfg, quiet=True))
    assert len(made) == 2
    assert untimed(ahead) == untimed(plain)
    assert any("ndcg" in k for k in ahead)
    reseeded = metrics_of(workdir / "tiny.yaml", train(cfg.model_copy(update={"seed": 4}), quiet=True))
    assert {k: v for k, v in reseeded.items() if "ndcg" in k} != {k: v for k, v in plain.items() if "ndcg" in k}
