"""The documentation site builds with `mkdocs build --strict`: a broken page, link or API
reference fails the build (and this test)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True, text=True, timeout=300, env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )


def test_docs_build_strictly(tmp_path):
    out = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert out.returncode == 0, out.stderr[-3000:]
    ranking = (tmp_path / "site" / "reference" / "ranking" / "index.html").read_text()
    assert "sup_ap" in ranking and "SupAPLoss" in ranking  # the API reference rendered from docstrings
    benchmarks = tmp_path / "site" / "guides" / "benchmarks"
    assert "Data, propagation and speed" in (benchmarks / "index.html").read_text()
    assert "Data: ml-1m read + filter + split" in (benchmarks / "data-and-speed" / "index.html").read_text()  # RESULTS.md


def test_a_broken_link_fails_the_build(tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "docs", copy / "docs")
    for name in ("mkdocs.yml",):
        shutil.copy(ROOT / name, copy / name)
    (copy / "benchmarks").mkdir()
    shutil.copy(ROOT / "benchmarks" / "RESULTS.md", copy / "benchmarks" / "RESULTS.md")
    for package in ("itemrec", "retrieval"):
        (copy / package).symlink_to(ROOT / package)
    page = copy / "docs" / "guides" / "serving.md"
    page.write_text(page.read_text() + "\nSee [the missing page](nowhere.md).\n")
    out = build(copy / "mkdocs.yml", tmp_path / "site")
    assert out.returncode != 0 and "nowhere.md" in out.stderr
