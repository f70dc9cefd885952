"""Readers: interaction files in their many formats -> one polars frame with canonical columns.

Every reader returns a frame with `user` and `item` (Int64 when every id is a plain integer,
else String), optionally `rating` (Float64) and `timestamp` (Int64 or Float64), and for sources
that ship their own split (LightGCN, IR-Benchmark), `given_split` ("train" / "test"). Rows keep
the file's order.
A malformed file raises `UserError("path: what is wrong")`, naming the line where it can.
"""

from __future__ import annotations

import contextlib
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import polars as pl

from itemrec.experiment.errors import UserError
from itemrec.recsys.data.columns import (
    FLAGS,
    GIVEN_SPLIT,
    ITEM,
    KNOWN_NAMES,
    RATING,
    TIMESTAMP,
    USER,
    Columns,
    normalized,
)
from itemrec.recsys.data.report import say

FORMATS = ("csv", "tsv", "parquet", "recbole", "movielens-100k", "movielens-1m", "lightgcn", "ir-benchmark")
"""Formats `read_interactions` understands; `detect_format` picks one from the file name."""

IRB_HEADER = ("user_procid", "item_procid")
"""Header of IR-Benchmark's `train.tsv` / `test.tsv`."""

_LINE = "_line"
_RECBOLE_NUMBER_TYPES = ("float",)
_RECBOLE_SCALAR_TYPES = ("token", "float")


def detect_format(path: Path) -> str:
    """The format of `path`, from its name (or, for a directory, the files inside: LightGCN
    `train.txt`, IR-Benchmark `train.tsv`, `proc/` or `proc.zip`)."""
    if path.is_dir():
        if (path / "train.txt").exists():
            return "lightgcn"
        if any((path / name).exists() for name in ("train.tsv", "proc", "proc.zip")):
            return "ir-benchmark"
        raise UserError(
            f"{path}: directory holds no train.txt (LightGCN), train.tsv, proc/ or proc.zip (IR-Benchmark) "
            "nor a prepared dataset"
        )
    name, suffix = path.name.lower(), path.suffix.lower()
    by_name = {"u.data": "movielens-100k", "ratings.dat": "movielens-1m", "train.txt": "lightgcn", "test.txt": "lightgcn"}
    by_suffix = {
        ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet", ".inter": "recbole",
        ".zip": "ir-benchmark",
    }
    if name in by_name:
        return by_name[name]
    if suffix in by_suffix:
        return by_suffix[suffix]
    raise UserError(f"{path}: unknown file format; name the format explicitly (one of {', '.join(FORMATS)})")


def read_interactions(
    path: Path | str, *, columns: Columns | None = None, fmt: str | None = None, quiet: bool = True
) -> pl.DataFrame:
    """Read one interaction file (or a LightGCN directory) into the canonical frame.

    `columns` maps the file's column names for CSV / TSV / Parquet / RecBole files (ignored by the
    fixed-layout MovieLens and LightGCN formats); roles it leaves out are detected from the header
    (`detect_columns`), and unless `quiet` the chosen mapping is printed. `fmt` overrides the
    format detected from the name.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    fmt = fmt or detect_format(path)
    columns = columns or Columns()
    readers = {
        "csv": lambda: read_delimited(path, columns=columns, separator=",", quiet=quiet),
        "tsv": lambda: read_delimited(path, columns=columns, separator="\t", quiet=quiet),
        "parquet": lambda: read_parquet(path, columns=columns, quiet=quiet),
        "recbole": lambda: read_recbole(path, columns=columns, quiet=quiet),
        "movielens-100k": lambda: read_movielens_100k(path),
        "movielens-1m": lambda: read_movielens_1m(path),
        "lightgcn": lambda: read_lightgcn(path),
        "ir-benchmark": lambda: read_irbench(path),
    }
    if fmt not in readers:
        raise UserError(f"{path}: unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    return readers[fmt]()


# --- formats ------------------------------------------------------------------------------------


def read_delimited(path: Path, *, columns: Columns, separator: str, quiet: bool = True) -> pl.DataFrame:
    """CSV or TSV with a header row; `columns` names the user, item, rating and time columns."""
    with _reading(path):
        lazy = pl.scan_csv(path, separator=separator, infer_schema=False, quote_char='"')
        available = list(lazy.collect_schema().names())
        selection = _select(path, available, columns, quiet)
        frame = lazy.with_row_index(_LINE, offset=2).select(_LINE, *selection).collect()
    return _normalize(frame, path, row_word="line")


def read_parquet(path: Path, *, columns: Columns, quiet: bool = True) -> pl.DataFrame:
    """A Parquet table; `columns` names the user, item, rating and time columns."""
    with _reading(path):
        lazy = pl.scan_parquet(path)
        available = list(lazy.collect_schema().names())
        selection = _select(path, [c for c in available if c != GIVEN_SPLIT], columns, quiet)
        if GIVEN_SPLIT in available:
            selection.append(pl.col(GIVEN_SPLIT).cast(pl.String))
        frame = lazy.with_row_index(_LINE, offset=1).select(_LINE, *selection).collect()
    return _normalize(frame, path, row_word="row")


def read_recbole(path: Path, *, columns: Columns, quiet: bool = True) -> pl.DataFrame:
    """A RecBole atomic `.inter` file: tab-separated, header fields typed as `name:token|float`."""
    header = _first_line(path).split("\t")
    names, types = [], {}
    for field in header:
        if ":" not in field:
            raise UserError(f"{path}: not a RecBole atomic file: header field {field!r} has no ':type'")
        name, kind = field.rsplit(":", 1)
        names.append(name)
        types[name] = kind
    with _reading(path):
        lazy = pl.scan_csv(path, separator="\t", infer_schema=False, quote_char=None, has_header=True, new_columns=names)
        mapping = detect_columns(path, names, columns)
        _announce(path, mapping, columns, quiet)
        selection = [pl.col(name).alias(role) for role, name in mapping.items()]
        frame = lazy.with_row_index(_LINE, offset=2).select(_LINE, *selection).collect()
    for canonical, name in ((USER, mapping[USER]), (ITEM, mapping[ITEM])):
        kind = types[name]
        if kind not in _RECBOLE_SCALAR_TYPES:
            raise UserError(f"{path}: column {name!r} is declared {kind}; an id column must be token or float")
        if kind in _RECBOLE_NUMBER_TYPES:
            frame = frame.with_columns(_integer_ids(frame, path, canonical, f"the header declares {name}:{kind}"))
    return _normalize(frame, path, row_word="line")


def read_movielens_100k(path: Path) -> pl.DataFrame:
    """MovieLens 100K raw `u.data`: `user item rating timestamp`, tab-separated, no header."""
    with _reading(path):
        lazy = pl.scan_csv(
            path, separator="\t", has_header=False, infer_schema=False, quote_char=None,
            new_columns=[USER, ITEM, RATING, TIMESTAMP],
        )
        frame = lazy.with_row_index(_LINE, offset=1).collect()
    return _normalize(_require_fields(frame, path, 5), path, row_word="line")


def read_movielens_1m(path: Path) -> pl.DataFrame:
    """MovieLens 1M raw `ratings.dat`: `user::item::rating::timestamp`, no header."""
    with _reading(path):
        data = path.read_bytes().replace(b"::", b"\t")
        frame = pl.read_csv(
            data, separator="\t", has_header=False, infer_schema=False, quote_char=None,
            new_columns=[USER, ITEM, RATING, TIMESTAMP],
        ).with_row_index(_LINE, offset=1)
    return _normalize(_require_fields(frame, path, 5), path, row_word="line")


def read_lightgcn(path: Path) -> pl.DataFrame:
    """LightGCN `train.txt` / `test.txt`: each line is a user id followed by its item ids.

    A directory reads its `train.txt` and `test.txt` (both required); a single file reads that file.
    The file each row came from is kept in `given_split`, so the published split can be used as is.
    """
    if path.is_dir():
        files = [path / "train.txt", path / "test.txt"]
        for file in files:
            if not file.exists():
                raise UserError(f"{file}: missing (a LightGCN directory needs train.txt and test.txt)")
    else:
        files = [path]
    return pl.concat([_read_lightgcn_file(file) for file in files])


def _read_lightgcn_file(path: Path) -> pl.DataFrame:
    """One LightGCN file; the split is named after the file (`train` unless it is `test.txt`)."""
    split = "test" if path.name.lower().startswith("test") else "train"
    with _reading(path):
        lines = pl.read_csv(
            path, separator="\x1f", has_header=False, infer_schema=False, quote_char=None, new_columns=["text"]
        ).with_row_index(_LINE, offset=1)
    tokens = (
        lines.with_columns(pl.col("text").str.strip_chars().str.split(" "))
        .with_columns(pl.col("text").list.first().alias(USER), pl.col("text").list.slice(1).alias(ITEM))
        .select(_LINE, USER, ITEM)
        .explode(ITEM)
        .filter(pl.col(ITEM).is_not_null() & (pl.col(ITEM) != ""))
    )
    frame = tokens.with_columns(
        _integer_ids(tokens, path, USER, "LightGCN files hold integer ids"),
        _integer_ids(tokens, path, ITEM, "LightGCN files hold integer ids"),
    ).with_columns(pl.lit(split).alias(GIVEN_SPLIT))
    if frame.height == 0:
        raise UserError(f"{path}: no interactions (expected lines of 'user item item ...')")
    return frame.drop(_LINE)


def read_irbench(path: Path) -> pl.DataFrame:
    """IR-Benchmark `train.tsv` / `test.tsv`: tab-separated, header `user_procid item_procid`.

    `path` is a folder holding both files (an unzipped `proc/`), a folder holding `proc/` or
    `proc.zip`, or a zip archive with both files at its top or in one folder inside. The file each
    row came from is kept in `given_split`, so the published split can be used as is.
    """
    if path.is_dir():
        if not (path / "train.tsv").exists() and not (path / "test.tsv").exists():
            if (path / "proc").is_dir():
                return read_irbench(path / "proc")
            if (path / "proc.zip").exists():
                return read_irbench(path / "proc.zip")
        tables = []
        for split in ("train", "test"):
            file = path / f"{split}.tsv"
            if not file.exists():
                raise UserError(f"{file}: missing (an IR-Benchmark folder needs train.tsv and test.tsv)")
            tables.append(_irbench_table(file, file, split))
        return pl.concat(tables)
    return pl.concat([_irbench_table(data, label, split) for split, label, data in _irbench_members(path)])


def _irbench_members(archive: Path) -> list[tuple[str, str, bytes]]:
    """(split, label, bytes) of `train.tsv` and `test.tsv` inside a zip archive."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            names = [n for n in bundle.namelist() if not n.startswith("__MACOSX/")]
            members = []
            for split in ("train", "test"):
                found = [n for n in names if PurePosixPath(n).name == f"{split}.tsv"]
                if len(found) != 1:
                    what = "no" if not found else f"{len(found)} files named"
                    raise UserError(f"{archive}: {what} {split}.tsv inside (an IR-Benchmark archive holds one train.tsv and one test.tsv)")
                members.append((split, f"{archive}:{found[0]}", bundle.read(found[0])))
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as err:
        raise UserError(f"{archive}: unreadable or truncated zip ({err})") from None
    return members


def _irbench_table(source: Path | bytes, label: Path | str, split: str) -> pl.DataFrame:
    """One IR-Benchmark file (a path, or the bytes of an archive member) -> integer ids + `given_split`."""
    with _reading(label):
        frame = pl.read_csv(source, separator="\t", has_header=True, infer_schema=False, quote_char=None)
    if tuple(frame.columns) != IRB_HEADER:
        raise UserError(f"{label}: expected the header {chr(9).join(IRB_HEADER)!r}, found {chr(9).join(frame.columns)!r}")
    if frame.height == 0:
        raise UserError(f"{label}: no interactions (the file has a header but no rows)")
    frame = frame.rename(dict(zip(IRB_HEADER, (USER, ITEM)))).with_row_index(_LINE, offset=2)
    for name in (USER, ITEM):
        _no_missing(frame, label, name, "line")
    why = "IR-Benchmark files hold integer ids"
    return frame.select(
        _integer_ids(frame, label, USER, why), _integer_ids(frame, label, ITEM, why), pl.lit(split).alias(GIVEN_SPLIT)
    )


# --- shared steps --------------------------------------------------------------------------------


@contextlib.contextmanager
def _reading(path: Path | str) -> Iterator[None]:
    """Turn a parser or I/O failure on `path` into a one-line `UserError`."""
    try:
        yield
    except UserError:
        raise
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"{path}: unreadable or truncated file ({reason})") from None


def _first_line(path: Path) -> str:
    """The first line of a text file, without its line ending."""
    with _reading(path), path.open("r", encoding="utf-8", newline="") as handle:
        line = handle.readline()
    if not line.strip():
        raise UserError(f"{path}: empty file")
    return line.rstrip("\r\n")


def detect_columns(path: Path, available: list[str], columns: Columns) -> dict[str, str]:
    """Canonical role -> the file's column for it: the one `columns` names, else the detected one.

    Detection compares `normalized` names with `KNOWN_NAMES`; a role's preferred name (e.g.
    `user_id`) wins, otherwise exactly one match is required. The user and item must be found;
    a missing or ambiguous one fails, listing the candidates and the flag / key that names it.
    """
    listing = ", ".join(available) or "none"
    mapping: dict[str, str] = {}
    for role, given in columns.given().items():
        if given is not None:
            if given not in available:
                what = f"{role} id" if role in (USER, ITEM) else role
                raise UserError(f"{path}: no column {given!r} for the {what} (columns are: {listing})")
            mapping[role] = given
            continue
        known = {normalized(n) for n in KNOWN_NAMES[role]}
        matches = [c for c in available if normalized(c) in known and c not in mapping.values()]
        preferred = [c for c in matches if normalized(c) == normalized(KNOWN_NAMES[role][0])]
        if len(preferred) == 1:
            mapping[role] = preferred[0]
        elif len(matches) == 1:
            mapping[role] = matches[0]
        elif len(matches) > 1:
            raise UserError(
                f"{path}: several columns could hold the {role} ({', '.join(matches)}); name one with {FLAGS[role]}"
            )
        elif role in (USER, ITEM):
            raise UserError(
                f"{path}: no {role} id column found (columns are: {listing}; recognised names: "
                f"{', '.join(KNOWN_NAMES[role][:6])}, ...); name it with {FLAGS[role]}"
            )
    return mapping


def _announce(path: Path, mapping: dict[str, str], columns: Columns, quiet: bool) -> None:
    """Print the mapping when any role was detected rather than named."""
    if any(columns.given()[role] is None for role in mapping):
        say(f"{path.name}: columns " + ", ".join(f"{role} <- {name}" for role, name in mapping.items()), quiet=quiet)


def _select(path: Path, available: list[str], columns: Columns, quiet: bool) -> list[pl.Expr]:
    """Expressions that pick the file's columns under their canonical names (`detect_columns`)."""
    mapping = detect_columns(path, available, columns)
    _announce(path, mapping, columns, quiet)
    return [pl.col(name).alias(role) for role, name in mapping.items()]


def _require_fields(frame: pl.DataFrame, path: Path, width: int) -> pl.DataFrame:
    """Fixed-layout files: every line must hold all four fields (a short line means truncation)."""
    if frame.width != width:
        raise UserError(f"{path}: expected 4 fields per line (user, item, rating, timestamp), found {frame.width - 1}")
    return frame


def _normalize(frame: pl.DataFrame, path: Path, *, row_word: str) -> pl.DataFrame:
    """Check for empty cells, make ratings and times numeric and ids integer where they all are."""
    if frame.height == 0:
        raise UserError(f"{path}: no interactions (the file has a header but no rows)")
    for name in (USER, ITEM, RATING, TIMESTAMP):
        if name in frame.columns:
            _no_missing(frame, path, name, row_word)
    updates = [_plain_ids(frame[USER]), _plain_ids(frame[ITEM])]
    if RATING in frame.columns:
        updates.append(_numeric(frame, path, RATING, row_word).cast(pl.Float64))
    if TIMESTAMP in frame.columns:
        updates.append(_integral_if_possible(_numeric(frame, path, TIMESTAMP, row_word)))
    return frame.with_columns(updates).drop(_LINE)


def _no_missing(frame: pl.DataFrame, path: Path | str, name: str, row_word: str) -> None:
    """Fail on the first empty cell of column `name` (a cut-off line shows up this way too)."""
    missing = frame.filter(pl.col(name).is_null())
    if missing.height:
        raise UserError(f"{path}: {row_word} {missing[_LINE][0]}: no {name} value ({missing.height} rows lack one; truncated file?)")


def _numeric(frame: pl.DataFrame, path: Path, name: str, row_word: str) -> pl.Series:
    """Column `name` as numbers; the first value that is not one fails with its line."""
    column = frame[name]
    if column.dtype.is_numeric():
        return column
    if column.dtype != pl.String:
        raise UserError(f"{path}: column {name} has type {column.dtype}, expected numbers")
    parsed = column.str.strip_chars().cast(pl.Float64, strict=False)
    if name == TIMESTAMP and parsed.is_null().any():
        dates = _as_datetime(column)
        if dates is not None:
            return dates.dt.epoch("s").alias(name)
    bad = frame.filter(parsed.is_null())
    if bad.height:
        raise UserError(f"{path}: {row_word} {bad[_LINE][0]}: {name} {bad[name][0]!r} is not a number ({bad.height} such rows)")
    return parsed.alias(name)


def _as_datetime(column: pl.Series) -> pl.Series | None:
    """Date / date-time strings (ISO 8601 and the formats polars infers) as datetimes, or None."""
    try:
        dates = column.str.strip_chars().str.to_datetime(strict=False)
    except pl.exceptions.PolarsError:
        return None
    return dates if not dates.is_null().any() else None


def _integral_if_possible(column: pl.Series) -> pl.Series:
    """Float column whose values are all whole numbers -> Int64 (times usually are)."""
    if column.dtype.is_float() and (column == column.floor()).all():
        return column.cast(pl.Int64)
    return column


def _plain_ids(column: pl.Series) -> pl.Series:
    """String ids that are all plain integers (no sign, no leading zeros) become Int64."""
    if column.dtype != pl.String:
        if column.dtype.is_integer():
            return column.cast(pl.Int64)
        return column.cast(pl.String)
    as_int = column.cast(pl.Int64, strict=False)
    if as_int.null_count() == 0 and (as_int.cast(pl.String) == column).all():
        return as_int
    return column


def _integer_ids(frame: pl.DataFrame, path: Path | str, name: str, why: str) -> pl.Series:
    """Ids declared numeric must parse as integers; the first that does not fails with its line."""
    column = frame[name]
    parsed = column.cast(pl.Float64, strict=False) if column.dtype == pl.String else column.cast(pl.Float64)
    bad = frame.filter(parsed.is_null() | (parsed != parsed.floor()))
    if bad.height:
        raise UserError(f"{path}: line {bad[_LINE][0]}: {name} id {bad[name][0]!r} is not an integer ({why})")
    return parsed.cast(pl.Int64).alias(name)
