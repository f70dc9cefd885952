"""Prepared datasets on disk: interactions with their parts, both id maps, and the parameters.

A prepared directory holds
- `interactions.parquet`: `user`, `item` (indices), `rating` / `timestamp` when known, `part` (name),
- `users.parquet`, `items.parquet`: `index`, `id` (the source's own ids),
- `params.json`: source, filters, split and seed that produced it, plus summary counts.
Loading it rebuilds exactly the same matrices, without re-splitting.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from itemrec.experiment.errors import UserError
from itemrec.recsys.data.dataset import PART, InteractionData, build_dataset
from itemrec.recsys.data.idmap import ID, INDEX, IdMap
from itemrec.recsys.data.splits import Part, SplitSpec

PARAMS = "params.json"
FILES = ("interactions.parquet", "users.parquet", "items.parquet", PARAMS)
FORMAT_VERSION = 1
_LABELS = pl.Series([part.label for part in Part])
_CODES = pl.Series([int(part) for part in Part], dtype=pl.UInt8)


def is_prepared(path: Path) -> bool:
    """Whether `path` is a directory written by `save_prepared`."""
    return path.is_dir() and (path / PARAMS).exists()


def save_prepared(data: InteractionData, directory: Path, params: dict[str, object]) -> None:
    """Write `data` and the `params` (filters etc.) that produced it into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    frame = data.interactions.with_columns(pl.col(PART).replace_strict(_CODES, _LABELS, return_dtype=pl.String))
    frame.write_parquet(directory / "interactions.parquet")
    data.users.frame().write_parquet(directory / "users.parquet")
    data.items.frame().write_parquet(directory / "items.parquet")
    stats = data.stats()
    record = {
        "format_version": FORMAT_VERSION,
        "source": data.source,
        **params,
        "split": data.split.to_dict(),
        "seed": data.seed,
        "users_without_test": data.users_without_test,
        "counts": {"users": stats.users, "items": stats.items, "interactions": stats.interactions, **stats.parts},
    }
    (directory / PARAMS).write_text(json.dumps(record, indent=2) + "\n")


def load_prepared(directory: Path) -> InteractionData:
    """Read a prepared directory back into the same `InteractionData`."""
    for name in FILES:
        if not (directory / name).exists():
            raise UserError(f"{directory / name}: missing from the prepared dataset")
    try:
        record = json.loads((directory / PARAMS).read_text())
        split = SplitSpec.from_dict(record["split"])
        seed = int(record["seed"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise UserError(f"{directory / PARAMS}: unreadable parameters ({err})") from None
    try:
        frame = pl.read_parquet(directory / "interactions.parquet")
        frame = frame.with_columns(pl.col(PART).replace_strict(_LABELS, _CODES, return_dtype=pl.UInt8))
        users = pl.read_parquet(directory / "users.parquet").sort(INDEX)[ID]
        items = pl.read_parquet(directory / "items.parquet").sort(INDEX)[ID]
    except (pl.exceptions.PolarsError, OSError) as err:
        raise UserError(f"{directory}: unreadable prepared dataset ({str(err).splitlines()[0]})") from None
    return build_dataset(
        str(record.get("source", directory)), frame, IdMap("user", users), IdMap("item", items), split, seed,
        users_without_test=int(record.get("users_without_test", 0)),
    )
