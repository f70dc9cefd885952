"""The one entry point from arguments to a split dataset: `load_dataset` (and `prepare_dataset`)."""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl

from itemrec.experiment.errors import UserError
from itemrec.recsys.data import preprocess
from itemrec.recsys.data.columns import GIVEN_SPLIT, ITEM, USER, Columns
from itemrec.recsys.data.dataset import PART, InteractionData, build_dataset
from itemrec.recsys.data.fetch import IRB_PREFIX, NAMED_DATASETS, fetch_dataset, unknown_dataset
from itemrec.recsys.data.idmap import IdMap
from itemrec.recsys.data.readers import read_interactions
from itemrec.recsys.data.report import say, status
from itemrec.recsys.data.splits import Part, SplitSpec, assign_parts
from itemrec.recsys.data.store import is_prepared, load_prepared, save_prepared


def load_dataset(
    source: str | Path,
    *,
    columns: Columns | None = None,
    fmt: str | None = None,
    min_rating: float | None = None,
    k_core: int | tuple[int, int] = 0,
    dedup: bool = True,
    split: SplitSpec | None = None,
    seed: int = 0,
    cache: Path | None = None,
    quiet: bool = False,
) -> InteractionData:
    """Read, clean and split interactions into an `InteractionData`.

    - `source`: a named dataset (`ml-100k`, `ml-1m`, `gowalla`, `yelp2018`, `amazon-book`,
      IR-Benchmark's `irb/<folder>` such as `irb/amazon2014-health`; fetched into `cache` once,
      see `fetch.NAMED_DATASETS`), a file (CSV, TSV, Parquet, RecBole `.inter`, `u.data`,
      `ratings.dat`, LightGCN `train.txt`, an IR-Benchmark `proc.zip`), a LightGCN directory, an
      IR-Benchmark `proc/` directory, or a prepared directory (written by `prepare_dataset`;
      loaded exactly as saved, so no other option may be given).
    - `columns`, `fmt`: column names and format override for tabular files.
    - `min_rating`: keep ratings >= this value (implicit feedback); None keeps all rows.
    - `k_core`: minimum interactions per user and per item (one int for both, or (user, item)),
      applied iteratively until no row drops; 0 disables it.
    - `dedup`: keep only the latest row of each (user, item) pair.
    - `split`: how to split; None means the source's own split when it ships one (LightGCN,
      IR-Benchmark; `SplitSpec("given")`, which carves a validation part from the training rows),
      else `SplitSpec()` (per-user random 0.8 / 0.1 / 0.1).
    - `seed`: fixes every random choice of the split.
    - `quiet`: no progress lines.

    Steps run in the order dedup -> rating threshold -> k-core -> contiguous id remapping (over
    the users and items that survived, in sorted id order) -> split, each printing what it dropped,
    the split printing each part's interactions and users. An empty result at any step raises
    `UserError`.
    """
    path = Path(source)
    started = time.perf_counter()
    if isinstance(source, str) and source in NAMED_DATASETS:
        label = source
        cached = fetch_dataset(source, cache=cache, quiet=quiet)
        frame = read_interactions(cached, columns=Columns(user=USER, item=ITEM), fmt="parquet")
    elif is_prepared(path):
        if columns or fmt or min_rating is not None or k_core or not dedup or split is not None:
            raise UserError(f"{path}: a prepared dataset is loaded as saved; filters and split options do not apply")
        return load_prepared(path)
    elif path.exists():
        label = str(path)
        with status(f"reading {path.name}", quiet):
            frame = read_interactions(path, columns=columns, fmt=fmt, quiet=quiet)
    elif isinstance(source, str) and source.startswith(IRB_PREFIX):
        raise unknown_dataset(source)
    else:
        raise UserError(f"{source}: no such file or directory, nor a named dataset ({', '.join(NAMED_DATASETS)})")

    all_users, all_items = IdMap.from_ids("user", frame[USER]), IdMap.from_ids("item", frame[ITEM])
    say(
        f"{label}: read {frame.height:,} interactions, {len(all_users):,} users, {len(all_items):,} items "
        f"({time.perf_counter() - started:.1f} s)", quiet=quiet,
    )
    # Cleaning runs on integer codes (cheaper than on string ids); the maps are compacted after.
    coded = frame.with_columns(all_users.encode(frame[USER]), all_items.encode(frame[ITEM]))
    coded = clean(coded, label, min_rating=min_rating, k_core=k_core, dedup=dedup, quiet=quiet)
    users, user_index = all_users.compact(coded[USER])
    items, item_index = all_items.compact(coded[ITEM])
    indexed = coded.with_columns(user_index, item_index).sort([USER, ITEM], maintain_order=True)
    if split is None:
        split = SplitSpec(kind="given") if GIVEN_SPLIT in indexed.columns else SplitSpec()
    outcome = assign_parts(indexed, len(users), split, seed, source=label, quiet=quiet)
    indexed = indexed.with_columns(pl.Series(PART, outcome.parts, dtype=pl.UInt8))
    say(f"{label}: {describe_split(split, seed)}: {part_sizes(indexed)}", quiet=quiet)
    if GIVEN_SPLIT in indexed.columns:
        indexed = indexed.drop(GIVEN_SPLIT)
    return build_dataset(label, indexed, users, items, split, seed, users_without_test=outcome.users_without_test)


def describe_split(split: SplitSpec, seed: int) -> str:
    """`given split, val 10 % of each user's training rows, seed 0` and the like."""
    if split.kind != "given":
        return f"{split.kind} split, seed {seed}"
    if split.val_ratio == 0:
        return "given split, no validation part (val_ratio 0)"
    return f"given split, val {split.val_ratio * 100:g} % of each user's training rows, seed {seed}"


def part_sizes(frame: pl.DataFrame) -> str:
    """`train 30,000 interactions / 1,974 users, val ..., test ...`: every part that holds rows."""
    sizes = frame.group_by(PART).agg(pl.len().alias("rows"), pl.col(USER).n_unique().alias("users")).sort(PART)
    words = []
    for code, rows, n_users in sizes.iter_rows():
        words.append(f"{Part(code).label} {rows:,} interactions / {n_users:,} users")
    return ", ".join(words)


def clean(
    frame: pl.DataFrame, label: str, *, min_rating: float | None, k_core: int | tuple[int, int], dedup: bool, quiet: bool
) -> pl.DataFrame:
    """Dedup, threshold and k-core in that order; an empty table after any of them fails."""
    if dedup:
        frame = _nonempty(preprocess.deduplicate(frame, quiet=quiet), label, "de-duplication")
    if min_rating is not None:
        try:
            frame = preprocess.keep_ratings_at_least(frame, min_rating, quiet=quiet)
        except UserError as err:
            raise UserError(f"{label}: {err}") from None
        frame = _nonempty(frame, label, f"keeping ratings >= {min_rating:g}")
    min_user, min_item = (k_core, k_core) if isinstance(k_core, int) else k_core
    if min_user > 1 or min_item > 1:
        kept = preprocess.k_core(frame, min_user, min_item, quiet=quiet)
        frame = _nonempty(kept, label, f"the {min_user}/{min_item}-core filter")
    return frame


def _nonempty(frame: pl.DataFrame, label: str, step: str) -> pl.DataFrame:
    """Fail with one line when a cleaning step left nothing."""
    if frame.height == 0:
        raise UserError(f"{label}: no interactions left after {step}")
    return frame


def prepare_dataset(source: str | Path, out: Path, **options: object) -> InteractionData:
    """`load_dataset(source, **options)` and save the result (split included) under `out`."""
    data = load_dataset(source, **options)  # type: ignore[arg-type]
    columns = options.get("columns")
    params = {
        "columns": vars(columns) if isinstance(columns, Columns) else None,
        "format": options.get("fmt"),
        "min_rating": options.get("min_rating"),
        "k_core": options.get("k_core", 0),
        "dedup": options.get("dedup", True),
    }
    save_prepared(data, out, params)
    say(f"prepared dataset written to {out}", quiet=bool(options.get("quiet")))
    return data
