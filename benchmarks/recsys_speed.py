"""The speed rows of `benchmarks.recsys`: our full-ranking evaluation of all test users, and the
peer, torch_geometric's LightGCN trained with its `recommendation_loss` (BPR) as in PyG's
example and evaluated the usual PyG way."""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import torch

import itemrec.frontends  # noqa: F401  (registers the front ends that configs are validated by)
from benchmarks.harness import median_of, time_calls
from itemrec.experiment.config import load_config
from itemrec.recsys.evaluate import evaluate
from itemrec.recsys.pipeline import build_model, load_data


def ours_eval_seconds(config_file: str, quick: bool) -> dict:
    """Full-ranking evaluation of all test users (transductive), LightGCN dot and cosine scores:
    the median seconds of each, the users ranked, and the data (for the peer)."""
    config = load_config(config_file, [])
    data = load_data(config, quiet=True)
    torch.manual_seed(0)
    model = build_model(config, data)
    ks = config.eval.ks
    repeats = 2 if quick else 9
    out = {"users": None, "repeats": repeats}
    secs: dict[bool, list[float]] = {False: [], True: []}
    for normalize in (False, True):  # warm-up
        evaluate(model, data, "test", "transductive", ks, normalize, config.eval.batch_users)
    for _ in range(repeats):  # dot and cosine interleaved, so a burst of load hits both alike
        for normalize in (False, True):
            ev = evaluate(model, data, "test", "transductive", ks, normalize, config.eval.batch_users)
            secs[normalize].append(ev.seconds)
            out["users"] = ev.users
    out["dot"], out["cosine"] = statistics.median(secs[False]), statistics.median(secs[True])
    out["data"] = data
    out["batch_users"] = config.eval.batch_users
    return out


def pyg_peer(data, batch: int, batches: int, quick: bool) -> dict:
    """torch_geometric's LightGCN + recommendation_loss (BPR), edge-batched as in PyG's example:
    the median of `batches` timed batches of `batch` edges scaled to an epoch, and its evaluation."""
    from torch_geometric.nn.models import LightGCN as PyGLightGCN

    torch.manual_seed(0)
    n_users, n_items = data.n_users, data.n_items
    coo = data.train.tocoo()
    users = torch.as_tensor(coo.row, dtype=torch.long)
    items = torch.as_tensor(coo.col, dtype=torch.long) + n_users
    train_edges = torch.stack([users, items])  # [2, E] user -> item, the supervision edges
    edge_index = torch.cat([train_edges, train_edges.flip(0)], 1)  # undirected message passing
    model = PyGLightGCN(n_users + n_items, embedding_dim=64, num_layers=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    n_edges = train_edges.size(1)
    batches_per_epoch = math.ceil(n_edges / batch)
    perm = torch.randperm(n_edges)
    step_index = itertools.count()  # batch 0 warms up, batches 1..n are timed

    def step() -> float:
        i = next(step_index)
        index = perm[(i * batch) % n_edges :][:batch]
        pos = train_edges[:, index]
        neg = torch.stack([pos[0], torch.randint(n_users, n_users + n_items, (index.numel(),))])
        label_index = torch.cat([pos, neg], 1)
        optimizer.zero_grad()
        pos_rank, neg_rank = model(edge_index, label_index).chunk(2)
        loss = model.recommendation_loss(pos_rank, neg_rank, node_id=label_index.unique())
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    n = min(batches, batches_per_epoch)
    per_batch = time_calls(step, n, warmup=1).median
    exclude = (data.train + data.val).tocsr()
    test_users = np.flatnonzero(np.diff(data.test.indptr))

    @torch.no_grad()
    def full_ranking() -> None:  # the usual PyG evaluation: embeddings, dense scores, mask, top-k
        emb = model.get_embedding(edge_index)
        user_emb, item_emb = emb[:n_users], emb[n_users:]
        for lo in range(0, len(test_users), 2048):
            b = test_users[lo : lo + 2048]
            scores = user_emb[torch.as_tensor(b)] @ item_emb.T
            rows = exclude[b].tocoo()
            scores[
                torch.as_tensor(rows.row, dtype=torch.long),
                torch.as_tensor(rows.col, dtype=torch.long),
            ] = -math.inf
            scores.topk(50, dim=1)

    eval_repeats = 2 if quick else 3
    return {
        "per_batch": per_batch,
        "batches_timed": n,
        "batches_per_epoch": batches_per_epoch,
        "epoch_s": per_batch * batches_per_epoch,
        "eval_s": median_of(full_ranking, eval_repeats),
        "eval_repeats": eval_repeats,
        "edges": n_edges,
    }
