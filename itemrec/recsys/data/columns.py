"""Column names: the canonical ones every reader produces, and the user's mapping onto them."""

from __future__ import annotations

from dataclasses import dataclass

USER = "user"
ITEM = "item"
RATING = "rating"
TIMESTAMP = "timestamp"
GIVEN_SPLIT = "given_split"
"""Column of a source that carries its own train/test split (LightGCN `train.txt` / `test.txt`)."""


KNOWN_NAMES: dict[str, tuple[str, ...]] = {
    USER: (
        "user_id", "user", "userid", "uid", "user_idx", "customer_id", "customer", "visitor_id",
        "member_id", "reviewer_id", "reviewerid", "client_id", "account_id", "session_id",
    ),
    ITEM: (
        "item_id", "item", "itemid", "iid", "item_idx", "movie_id", "movie", "product_id", "product",
        "asin", "article_id", "track_id", "song_id", "book_id", "isbn", "business_id", "video_id",
        "artist_id", "game_id", "recipe_id", "anime_id", "news_id", "poi_id", "venue_id",
        "location_id", "course_id", "content_id", "sku",
    ),
    RATING: ("rating", "ratings", "score", "stars", "star", "rate", "overall", "preference"),
    TIMESTAMP: ("timestamp", "ts", "time", "unixreviewtime", "time_stamp", "unix_timestamp", "datetime", "event_time"),
}
"""Column names recognised for each role, compared case-insensitively with `_`, `-`, spaces and dots
ignored (so `userId`, `user_id` and `User ID` are the same). The first name of each role is the
preferred one: when the file has it, it wins over other matches."""

FLAGS = {USER: "--user-col / data.user_col", ITEM: "--item-col / data.item_col",
         RATING: "--rating-col / data.rating_col", TIMESTAMP: "--time-col / data.time_col"}
"""Where a user names the column of each role: the `itemrec data` flag and the config key."""


def normalized(name: str) -> str:
    """`User_ID` -> `userid`: the form column names are compared in."""
    return "".join(c for c in name.lower() if c.isalnum())


@dataclass(frozen=True)
class Columns:
    """Which columns of a CSV / TSV / Parquet / RecBole file hold the user, item, rating and time.

    A role left as None is detected from the file's header (`KNOWN_NAMES`): `user` and `item`
    must be found, `rating` and `timestamp` are used when present. A role named explicitly must
    exist under exactly that name. For RecBole `.inter` files the names are matched against the
    part before the `:type`.
    """

    user: str | None = None
    item: str | None = None
    rating: str | None = None
    timestamp: str | None = None

    def given(self) -> dict[str, str | None]:
        """Canonical role -> the column name the user gave (None: detect)."""
        return {USER: self.user, ITEM: self.item, RATING: self.rating, TIMESTAMP: self.timestamp}
