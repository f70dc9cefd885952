"""`itemrec data`: list the named datasets (`list`), inspect one (`info`) and write its processed
form and split (`prepare`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from itemrec.experiment.errors import UserError
from itemrec.help_text import epilog
from itemrec.recsys.data.columns import Columns
from itemrec.recsys.data.split_kinds import SPLIT_KINDS

if TYPE_CHECKING:
    from itemrec.recsys.data.dataset import InteractionData

# The commands import the data code (polars, numpy, torch) when they run, not when `itemrec` starts.

data_app = typer.Typer(
    help="Read, inspect and prepare recommendation datasets.", no_args_is_help=True, add_completion=False
)

Source = Annotated[str, typer.Argument(help="Named dataset (ml-100k, ml-1m, gowalla, yelp2018, amazon-book, irb/<folder> such as irb/amazon2014-health; `itemrec data list` shows them all), file, or directory.")]
Format = Annotated[str | None, typer.Option("--format", help="File format when the name does not tell (csv, tsv, parquet, recbole, movielens-100k, movielens-1m, lightgcn, ir-benchmark).")]
UserCol = Annotated[str | None, typer.Option("--user-col", help="Column holding user ids (default: detected from common names: user, userId, user_id, customer_id, ...).")]
ItemCol = Annotated[str | None, typer.Option("--item-col", help="Column holding item ids (default: detected from common names: item, itemId, movieId, product_id, asin, ...).")]
RatingCol = Annotated[str | None, typer.Option("--rating-col", help="Column holding ratings (default: detected: rating, score, stars, ... when present).")]
TimeCol = Annotated[str | None, typer.Option("--time-col", help="Column holding timestamps (default: detected: timestamp, ts, time, ... when present).")]
MinRating = Annotated[float | None, typer.Option("--min-rating", help="Keep ratings >= this value (implicit feedback).")]
KCore = Annotated[str, typer.Option("--k-core", help="Minimum interactions per user and item: 'K' or 'USER,ITEM'; 0 disables.")]
NoDedup = Annotated[bool, typer.Option("--no-dedup", help="Keep repeated (user, item) rows.")]
Split = Annotated[str | None, typer.Option("--split", help=f"Split kind: {', '.join(SPLIT_KINDS)} (default: the source's own split, else random).")]
Ratios = Annotated[str, typer.Option("--ratios", help="Train,val,test shares.")]
Heldout = Annotated[str, typer.Option("--heldout", help="Inductive: val,test shares of users held out of training.")]
FoldIn = Annotated[float, typer.Option("--fold-in", help="Inductive: share of a held-out user's history revealed.")]
ByTime = Annotated[bool, typer.Option("--by-time", help="Inductive: cut fold-in / target by time instead of at random.")]
ValRatio = Annotated[float, typer.Option("--val-ratio", help="Given split: share of each user's training rows moved to validation (at least one for users with two or more; 0: none).")]
Seed = Annotated[int, typer.Option("--seed", help="Seed fixing the split.")]
Cache = Annotated[Path | None, typer.Option("--cache", help="Cache directory for named datasets (default: $ITEMREC_DATA or the XDG cache).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")]


def _numbers(option: str, text: str, count: int) -> tuple[float, ...]:
    """'0.8,0.1,0.1' -> (0.8, 0.1, 0.1); a wrong count or a non-number is a user error."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise UserError(f"{option}: expected {count} comma-separated numbers, got {text!r}") from None
    if len(values) != count:
        raise UserError(f"{option}: expected {count} comma-separated numbers, got {text!r}")
    return values


def _k_core(text: str) -> int | tuple[int, int]:
    """'10' -> 10, '5,10' -> (5, 10)."""
    try:
        parts = [int(part) for part in text.split(",")]
    except ValueError:
        raise UserError(f"--k-core: expected K or USER,ITEM integers, got {text!r}") from None
    if len(parts) not in (1, 2) or min(parts) < 0:
        raise UserError(f"--k-core: expected K or USER,ITEM non-negative integers, got {text!r}")
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def _options(
    fmt: str | None, user_col: str | None, item_col: str | None, rating_col: str | None, time_col: str | None,
    min_rating: float | None, k_core: str, no_dedup: bool, split: str | None, ratios: str,
    heldout: str, fold_in: float, by_time: bool, seed: int, cache: Path | None, quiet: bool,
    val_ratio: float = 0.1,
) -> dict[str, object]:
    """Command-line options -> `load_dataset` keyword arguments (defaults left out)."""
    options: dict[str, object] = {"seed": seed, "cache": cache, "quiet": quiet}
    columns = Columns(user=user_col, item=item_col, rating=rating_col, timestamp=time_col)
    if columns != Columns():
        options["columns"] = columns
    if fmt:
        options["fmt"] = fmt
    if min_rating is not None:
        options["min_rating"] = min_rating
    if _k_core(k_core):
        options["k_core"] = _k_core(k_core)
    if no_dedup:
        options["dedup"] = False
    if split is not None or val_ratio != 0.1:
        from itemrec.recsys.data.splits import SplitSpec

        options["split"] = SplitSpec(
            kind=split or "given", ratios=_numbers("--ratios", ratios, 3), heldout=_numbers("--heldout", heldout, 2),  # type: ignore[arg-type]
            fold_in=fold_in, by_time=by_time, val_ratio=val_ratio,
        )
    return options


def _print_stats(data: InteractionData) -> None:
    """The dataset's summary as a two-column table on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=data.source, show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for label, value in data.stats().rows():
        table.add_row(label, value)
    split = data.split
    kind = split.kind
    if kind == "given":
        kind = f"given, val {split.val_ratio * 100:g} % of training rows" if split.val_ratio else "given, no val part"
    table.add_row("split", f"{kind}, seed {data.seed}")
    Console().print(table)


@data_app.command("list", epilog=epilog("itemrec data list", "docs/guides/quickstart-recommendation.md"))
def list_datasets(cache: Cache = None) -> None:
    """The named datasets: name, recorded checksum, published size, and whether it is cached."""
    from rich.console import Console
    from rich.table import Table

    from itemrec.recsys.data import fetch

    root = cache or fetch.cache_root()
    table = Table(title=f"named datasets (cache: {root})")
    for column in ("name", "checksum", "users / items / interactions", "cached"):
        table.add_column(column)
    for name, dataset in fetch.NAMED_DATASETS.items():
        sums = [f"md5 {d.md5}" if d.md5 else f"sha256 {d.sha256}" if d.sha256 else "none recorded" for d in dataset.downloads]
        size = " / ".join(f"{n:,}" for n in dataset.expected) if dataset.expected else "-"
        cached = "yes" if (root / name / fetch.PARQUET).exists() else "no"
        table.add_row(name, ", ".join(dict.fromkeys(sums)), size, cached)
    Console(soft_wrap=True).print(table)
    typer.echo(f"irb/<folder>: {fetch.IRB_BASE}/<folder>/proc.zip, read with its own train / test split")
    mirror = fetch.mirror_root()
    if mirror is not None:
        typer.echo(f"{fetch.MIRROR_ENV}={mirror}: archives there (<folder>.zip) are used before the URLs")


@data_app.command(epilog=epilog("itemrec data info ml-1m --min-rating 3 --split random", "docs/guides/quickstart-recommendation.md"))
def info(
    source: Source, fmt: Format = None, user_col: UserCol = None, item_col: ItemCol = None,
    rating_col: RatingCol = None, time_col: TimeCol = None, min_rating: MinRating = None, k_core: KCore = "0",
    no_dedup: NoDedup = False, split: Split = None, ratios: Ratios = "0.8,0.1,0.1", heldout: Heldout = "0.1,0.1",
    fold_in: FoldIn = 0.8, by_time: ByTime = False, val_ratio: ValRatio = 0.1, seed: Seed = 0, cache: Cache = None,
    quiet: Quiet = False,
) -> None:
    """Users, items, interactions, density, popularity Gini and split sizes of a dataset."""
    from itemrec.recsys.data.load import load_dataset

    options = _options(fmt, user_col, item_col, rating_col, time_col, min_rating, k_core, no_dedup, split,
                       ratios, heldout, fold_in, by_time, seed, cache, quiet, val_ratio)
    _print_stats(load_dataset(source, **options))  # type: ignore[arg-type]


@data_app.command(epilog=epilog("itemrec data prepare ml-1m --out data/ml1m --split inductive", "docs/guides/quickstart-recommendation.md"))
def prepare(
    source: Source,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output directory (default: prepared/<source name>).")] = None,
    fmt: Format = None, user_col: UserCol = None, item_col: ItemCol = None,
    rating_col: RatingCol = None, time_col: TimeCol = None, min_rating: MinRating = None, k_core: KCore = "0",
    no_dedup: NoDedup = False, split: Split = None, ratios: Ratios = "0.8,0.1,0.1", heldout: Heldout = "0.1,0.1",
    fold_in: FoldIn = 0.8, by_time: ByTime = False, val_ratio: ValRatio = 0.1, seed: Seed = 0, cache: Cache = None,
    quiet: Quiet = False,
) -> None:
    """Write the processed interactions, id maps, split assignment and parameters to a directory."""
    from itemrec.recsys.data.load import prepare_dataset

    options = _options(fmt, user_col, item_col, rating_col, time_col, min_rating, k_core, no_dedup, split,
                       ratios, heldout, fold_in, by_time, seed, cache, quiet, val_ratio)
    target = out or Path("prepared") / Path(source).name.split(".")[0]
    _print_stats(prepare_dataset(source, target, **options))


@data_app.command(epilog=epilog("itemrec data synth --users 100 --items 50 --interactions 900 -o s.csv", "docs/guides/quickstart-recommendation.md"))
def synth(
    users: Annotated[int, typer.Option("--users", help="Number of users (each gets at least one interaction).")],
    items: Annotated[int, typer.Option("--items", help="Number of items in the catalogue.")],
    interactions: Annotated[int, typer.Option("--interactions", help="Number of distinct (user, item) rows.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file: .parquet, .csv or .tsv.")],
    seed: Annotated[int, typer.Option("--seed", help="Seed; the same seed gives the same table.")] = 0,
    communities: Annotated[int, typer.Option("--communities", help="Number of user/item communities.")] = 50,
    in_community: Annotated[float, typer.Option("--in-community", help="Share of a user's items drawn from its community.")] = 0.8,
    popularity: Annotated[float, typer.Option("--popularity", help="Power-law exponent of item popularity in rank.")] = 0.8,
    activity_sigma: Annotated[float, typer.Option("--activity-sigma", help="σ of the log-normal user activity.")] = 1.0,
    min_per_user: Annotated[int, typer.Option("--min-per-user", help="Floor of interactions per user (when N allows).")] = 5,
    quiet: Quiet = False,
) -> None:
    """Generate a synthetic interaction table (power-law popularity, communities, timestamps)."""
    from itemrec.recsys.data.synth import SynthSpec, write_synthetic

    spec = SynthSpec(
        users=users, items=items, interactions=interactions, seed=seed, communities=communities,
        in_community=in_community, popularity=popularity, activity_sigma=activity_sigma, min_per_user=min_per_user,
    )
    summary = write_synthetic(spec, out)
    if not quiet:
        typer.echo(
            f"{out}: {summary.interactions:,} interactions, {summary.users:,} users, "
            f"{summary.items_used:,} of {items:,} items used, popularity gini {summary.popularity_gini:.3f}"
        )
