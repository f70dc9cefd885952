"""`itemrec recommend`: top-k items for a known user, or for a new user from a list of items,
in the dataset's own ids."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from itemrec.data import to_torch_csr
from itemrec.errors import UserError
from itemrec.pipeline import restore
from itemrec.ranking import full_ranking_topk


def _index(id_map, raw: str, what: str) -> int:
    """Index of an id given on the command line, in the data's own id type."""
    try:
        return int(id_map.to_index([raw])[0])
    except UserError:
        raise UserError(f"{what} {raw!r}: not in this run's data") from None


def recommend(state: dict, run_id: str | None, *, user: str | None, items: list[str] | None, k: int) -> list[tuple[object, float]]:
    """Top-k `(item id, score)` for `user` (known) or for a new user who interacted with `items`."""
    if (user is None) == (items is None):
        raise UserError("give exactly one of --user ID or --items ID,ID,...")
    config, data, model = restore(state, run_id or "checkpoint")
    cosine = model.learned and config.train.score == "cosine"
    with torch.no_grad():
        item_vec = model.item_vectors()
        if user is not None:
            u = _index(data.users, user, "user")
            if data.train[u].nnz == 0:
                raise UserError(f"user {user!r} has no training interactions; pass their items with --items")
            query = model.user_vectors(torch.tensor([u]))
            seen = data.train[[u]]
        else:
            cols = sorted({_index(data.items, raw, "item") for raw in items})
            seen = sp.csr_matrix((np.ones(len(cols), np.float32), (np.zeros(len(cols), int), cols)), shape=(1, data.n_items))
            query = model.new_user_vectors(seen)
        if cosine:
            query, item_vec = F.normalize(query, dim=1), F.normalize(item_vec, dim=1)
        top, scores = full_ranking_topk(query, item_vec, k, exclude=to_torch_csr(seen.tocsr()))
    ids = data.items.to_ids(top[0].numpy())
    return [(i, float(s)) for i, s in zip(list(ids), scores[0].tolist()) if np.isfinite(s)]


def print_recommendations(recs: list[tuple[object, float]], title: str) -> None:
    table = Table(title=title)
    table.add_column("rank", justify="right")
    table.add_column("item")
    table.add_column("score", justify="right")
    for rank, (item, score) in enumerate(recs, 1):
        table.add_row(str(rank), str(item), f"{score:.4f}")
    Console().print(table)
