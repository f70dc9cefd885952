"""Recommendations from a trained run, in the dataset's own ids: for known users, for a new user
from the items they interacted with (embedded without retraining), or for every user at once.

`Recommender` holds what answering needs and nothing else: the trained model, the training
interactions (what a user has seen is never recommended again) and the id maps. It is built from
a checkpoint (re-reading the run's data) or from an exported model folder (`export` writes one;
the MLflow model of every recommendation run is such a folder, see `itemrec.recsys.serving`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from itemrec.experiment.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from itemrec.experiment.config import to_yaml
from itemrec.experiment.errors import UserError
from itemrec.experiment.registry import build
from itemrec.experiment.runtime import progress
from itemrec.ranking import full_ranking_topk
from itemrec.recsys.config import RecsysConfig
from itemrec.recsys.data import IdMap, to_torch_csr
from itemrec.recsys.models import MODELS
from itemrec.recsys.pipeline import config_from_text, restore

EXPORT_FILES = ("model.pt", "train.npz", "users.parquet", "items.parquet")
"""An exported recommender: weights + config (`model.pt`), training matrix, user and item id maps."""


@dataclass
class Recommender:
    config: RecsysConfig
    model: torch.nn.Module
    seen: sp.csr_matrix  # [U, I] training interactions
    users: IdMap
    items: IdMap

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint, source: str = "checkpoint") -> Recommender:
        """Rebuild the run's data (from its saved config and seed) and load the weights."""
        config, data, model = restore(checkpoint, source)
        return cls(config, model, data.train.tocsr(), data.users, data.items)

    @classmethod
    def load(cls, folder: str | Path) -> Recommender:
        """A recommender `export`ed to `folder` (no dataset needed)."""
        folder = Path(folder)
        missing = [f for f in EXPORT_FILES if not (folder / f).is_file()]
        if missing:
            raise UserError(f"{folder}: not an exported recommender (missing {', '.join(missing)})")
        checkpoint = load_checkpoint(folder / "model.pt")
        config = config_from_text(checkpoint.config, str(folder))
        seen = sp.load_npz(folder / "train.npz").tocsr()  # numpy arrays only, never pickled objects
        model = build(MODELS, config.model, "model", seen.shape[0], seen.shape[1], seen)
        model.load_state_dict(checkpoint.model)
        model.eval()
        users = IdMap("user", pl.read_parquet(folder / "users.parquet")["id"])
        items = IdMap("item", pl.read_parquet(folder / "items.parquet")["id"])
        return cls(config, model, seen, users, items)

    def export(self, folder: str | Path) -> Path:
        """Write everything `load` needs into `folder` (`EXPORT_FILES`)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_checkpoint(folder / "model.pt", Checkpoint(task="recsys", config=to_yaml(self.config), model=self.model.state_dict()))
        sp.save_npz(folder / "train.npz", self.seen.tocsr())
        self.users.frame().write_parquet(folder / "users.parquet")
        self.items.frame().write_parquet(folder / "items.parquet")
        return folder

    @property
    def cosine(self) -> bool:
        return bool(self.model.learned and self.config.train.score == "cosine")

    def user_index(self, raw: object) -> int:
        """Index of a known user given in the dataset's own id (a string from a command line is fine)."""
        try:
            u = int(self.users.to_index([raw])[0])
        except UserError:
            raise UserError(f"user {raw!r}: not in this run's data") from None
        if self.seen[u].nnz == 0:
            raise UserError(f"user {raw!r} has no training interactions; pass their items with --items")
        return u

    def item_indices(self, raw: list) -> list[int]:
        out = []
        for item in raw:
            try:
                out.append(int(self.items.to_index([item])[0]))
            except UserError:
                raise UserError(f"item {item!r}: not in this run's data") from None
        return sorted(set(out))

    @torch.no_grad()
    def top_k(self, users: np.ndarray | None, history: sp.csr_matrix | None, k: int) -> tuple[np.ndarray, np.ndarray]:
        """`(items [b, k], scores [b, k])` as indices, for known `users` or new users' `history [b, I]`.

        Seen items are excluded; where fewer than k remain, the tail scores are `-inf`.
        """
        item_vec = self.model.item_vectors()
        if users is not None:
            query = self.model.user_vectors(torch.as_tensor(users, dtype=torch.long))
            seen = self.seen[users]
        else:
            query, seen = self.model.new_user_vectors(history), history
        if self.cosine:
            query, item_vec = F.normalize(query, dim=1), F.normalize(item_vec, dim=1)
        top, scores = full_ranking_topk(query, item_vec, min(k, self.seen.shape[1]), exclude=to_torch_csr(seen.tocsr()))
        return top.numpy(), scores.numpy()

    def for_user(self, user: object, k: int) -> list[tuple[object, float]]:
        """Top-k `(item id, score)` of a known user."""
        top, scores = self.top_k(np.array([self.user_index(user)]), None, k)
        return self._pairs(top[0], scores[0])

    def for_new_user(self, items: list, k: int) -> list[tuple[object, float]]:
        """Top-k `(item id, score)` of a new user who interacted with `items`, embedded without retraining."""
        cols = self.item_indices(items)
        if not cols:
            raise UserError("--items: give at least one item id")
        history = sp.csr_matrix((np.ones(len(cols), np.float32), (np.zeros(len(cols), int), cols)), shape=(1, self.seen.shape[1]))
        top, scores = self.top_k(None, history, k)
        return self._pairs(top[0], scores[0])

    def all_users(self, k: int, chunk: int = 4096) -> Iterator[pl.DataFrame]:
        """Top-k of every user with training interactions, `chunk` users at a time, as long tables
        `user, rank, item, score` in the dataset's own ids (with a progress bar on a terminal)."""
        users = np.flatnonzero(np.diff(self.seen.indptr))
        with progress() as bar:
            task = bar.add_task("recommending", total=len(users), info="")
            for lo in range(0, len(users), chunk):
                batch = users[lo : lo + chunk]
                top, scores = self.top_k(batch, None, k)
                width = top.shape[1]
                valid = np.isfinite(scores).reshape(-1)
                frame = pl.DataFrame({
                    "user": self.users.to_ids(np.repeat(batch, width)[valid]),
                    "rank": np.tile(np.arange(1, width + 1, dtype=np.int32), len(batch))[valid],
                    "item": self.items.to_ids(top.reshape(-1)[valid]),
                    "score": scores.reshape(-1)[valid].astype(np.float32),
                })
                bar.update(task, advance=len(batch))
                yield frame

    def _pairs(self, top: np.ndarray, scores: np.ndarray) -> list[tuple[object, float]]:
        keep = np.isfinite(scores)
        ids = self.items.to_ids(top[keep]).to_list()
        return list(zip(ids, scores[keep].astype(float).tolist()))


def recommend(state: dict, run_id: str | None, *, user: str | None, items: list[str] | None, k: int) -> list[tuple[object, float]]:
    """Top-k `(item id, score)` for `user` (known) or for a new user who interacted with `items`."""
    if (user is None) == (items is None):
        raise UserError("give exactly one of --user ID or --items ID,ID,...")
    rec = Recommender.from_checkpoint(state, run_id or "checkpoint")
    return rec.for_user(user, k) if user is not None else rec.for_new_user(items, k)


def write_all_users(rec: Recommender, k: int, out: Path, chunk: int = 4096) -> int:
    """Every user's top-k into `out` (Parquet, or CSV when the name ends in .csv), written chunk
    by chunk so memory stays bounded; returns the number of rows."""
    import pyarrow.parquet as pq

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    if out.suffix.lower() == ".csv":
        with out.open("w") as handle:
            for i, frame in enumerate(rec.all_users(k, chunk)):
                frame.write_csv(handle, include_header=i == 0)
                rows += frame.height
        return rows
    writer = None
    try:
        for frame in rec.all_users(k, chunk):
            table = frame.to_arrow()
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
            rows += frame.height
    finally:
        if writer is not None:
            writer.close()
    return rows


def print_recommendations(recs: list[tuple[object, float]], title: str) -> None:
    table = Table(title=title)
    table.add_column("rank", justify="right")
    table.add_column("item")
    table.add_column("score", justify="right")
    for rank, (item, score) in enumerate(recs, 1):
        table.add_row(str(rank), str(item), f"{score:.4f}")
    Console().print(table)
