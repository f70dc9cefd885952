"""Column names: the canonical ones every reader produces, and the user's mapping onto them."""

from __future__ import annotations

from dataclasses import dataclass

USER = "user"
ITEM = "item"
RATING = "rating"
TIMESTAMP = "timestamp"
GIVEN_SPLIT = "given_split"
"""Column of a source that carries its own train/test split (LightGCN `train.txt` / `test.txt`)."""


@dataclass(frozen=True)
class Columns:
    """Which columns of a CSV / TSV / Parquet / RecBole file hold the user, item, rating and time.

    `user` and `item` must exist. `rating` and `timestamp` left as None mean "use the column named
    `rating` / `timestamp` when the file has one"; named explicitly, the column must exist.
    For RecBole `.inter` files the names are matched against the part before the `:type`.
    """

    user: str = "user_id"
    item: str = "item_id"
    rating: str | None = None
    timestamp: str | None = None

    def optional_names(self) -> dict[str, tuple[str, bool]]:
        """Canonical name -> (column name in the file, whether the user asked for it explicitly)."""
        return {
            RATING: (self.rating or "rating", self.rating is not None),
            TIMESTAMP: (self.timestamp or "timestamp", self.timestamp is not None),
        }
