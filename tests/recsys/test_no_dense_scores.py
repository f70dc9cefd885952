"""No users × items dense tensor: a graph of a million users and a million items (whose dense score
matrix, 10¹² floats, could never fit) is trained for one step and evaluated on a few hundred users.

Every strided tensor any torch operation produces (forward, backward, optimizer, evaluation) is
checked by a dispatch mode: none may hold more than `LIMIT` elements, far below users × items and
below even one `[batch, items]` block, so building a dense score matrix, or the dense scores of a
training batch against the whole catalogue, fails here (a full `[U, I]` one would already fail to
allocate).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from itemrec.experiment.config import load_config
from itemrec.experiment.runtime import progress
from itemrec.ranking import losses as L
from itemrec.recsys.data.dataset import InteractionData
from itemrec.recsys.data.idmap import IdMap
from itemrec.recsys.data.splits import SplitSpec
from itemrec.recsys.evaluate import evaluate
from itemrec.recsys.models import LightGCN, graph
from itemrec.recsys.sampling import TrainPositives, UniformNegatives
from itemrec.recsys.train import train_epoch

USERS = ITEMS = 1_000_000
PER_USER = 2
BATCH = 256
EVAL_USERS = 300
LIMIT = 2**26
"""Largest tensor allowed (67 M elements): 1/15,000 of users × items, 1/4 of a `[256, items]` block."""


class LargestTensor(TorchDispatchMode):
    """Records the largest strided tensor produced by any operation; fails at the first over `limit`."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit, self.largest = limit, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.layout == torch.strided:
                self.largest = max(self.largest, t.numel())
                assert t.numel() <= self.limit, f"{func} built a tensor of shape {tuple(t.shape)}"
        return out


@dataclasses.dataclass(frozen=True)
class FirstTrainUsers(InteractionData):
    """The dataset with training limited to its first `BATCH` users: one step per epoch."""

    @property
    def train_users(self) -> np.ndarray:
        return np.arange(BATCH)


def million_by_million() -> InteractionData:
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(USERS), PER_USER)
    items = rng.integers(0, ITEMS, users.size)
    train = sp.csr_matrix((np.ones(users.size, np.float32), (users, items)), shape=(USERS, ITEMS))
    train.sum_duplicates()
    train.data[:] = 1.0
    held = np.arange(EVAL_USERS)
    val = sp.csr_matrix((np.ones(EVAL_USERS, np.float32), (held, rng.integers(0, ITEMS, EVAL_USERS))), shape=(USERS, ITEMS))
    frame = pl.DataFrame({"user": users[:10].astype(np.uint32), "item": items[:10].astype(np.uint32)})
    return FirstTrainUsers(
        source="generated", interactions=frame,
        users=IdMap.from_ids("user", pl.Series(np.arange(USERS))), items=IdMap.from_ids("item", pl.Series(np.arange(ITEMS))),
        train=train, val=val, test=val, inductive=None, split=SplitSpec(), seed=0,
    )


def test_a_million_users_and_items_train_one_step_and_evaluate_without_a_dense_users_by_items_tensor(monkeypatch):
    # Without the locality order: that renumbering (numpy and torch before the guard starts; its
    # products equal the plain ones, tests/recsys/models/test_graph.py) took 40 of this test's 50 CPU s.
    monkeypatch.setattr(graph, "LOCALITY_MIN_NODES", USERS + ITEMS + 1)
    data = million_by_million()
    config = load_config(
        "configs/recsys/ml1m_lightgcn_supap_uniform.yaml",
        ["data.source=generated", f"train.batch_size={BATCH}", "model.dim=8", "model.layers=1"],
    )
    torch.manual_seed(0)
    model = LightGCN(USERS, ITEMS, data.train, dim=8, layers=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    before = model.ego.detach().clone()
    generator = torch.Generator().manual_seed(0)
    guard = LargestTensor(LIMIT)
    with guard, progress() as bar:
        loss = train_epoch(
            model, L.sup_ap, optimizer, data, TrainPositives(data.train), UniformNegatives(data.train), config, generator, 1, bar
        )
        result = evaluate(model, data, "val", "transductive", ks=(10, 20), normalize=True)
    assert np.isfinite(loss) and 0 < loss < 1
    assert not torch.equal(model.ego.detach(), before)  # the step changed the embeddings
    assert result.users == EVAL_USERS
    assert 0 <= result.metrics["recall@20"] <= 1
    assert guard.largest >= USERS  # the guard saw the embedding tables: it was watching
