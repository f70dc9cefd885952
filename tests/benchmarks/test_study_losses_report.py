"""benchmarks/study_losses_report.py: the report table from given numbers, what did not run, the
batches comparison, and Table 2 of the reference file."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from benchmarks import study_losses_report as report
from benchmarks.study_losses_report import Result

T_975_2 = 4.302652729911275  # Student t, 0.975 quantile, 2 degrees of freedom


def results() -> dict:
    return {
        ("health", "mf", "bpr", 0): Result(0.16, 0.12, 150, 2.0),
        ("health", "mf", "bpr", 1): Result(0.17, 0.13, 195, 2.5),
        ("health", "mf", "bpr", 2): Result(0.18, 0.14, 200, 3.0),
        ("health", "mf", "slk20", 0): Result(0.18, 0.1251, 85, 4.25),
    }


def test_the_report_table_is_rendered_from_the_numbers():
    table = report.table(results(), "health", "mf", report.published())
    half = T_975_2 * 0.01 / math.sqrt(3)  # 0.0248: sd 0.01 over 3 seeds
    assert f"{half:.4f}" == "0.0248"
    assert table.splitlines() == [
        "| loss | published R@20 | published N@20 | n | R@20 | N@20 | R@20 vs published | N@20 vs published | best epoch | s / epoch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        # (0.17 - 0.1627) / 0.1627 = +4.49 %, (0.13 - 0.1234) / 0.1234 = +5.35 %
        "| BPR | 0.1627 | 0.1234 | 3 | 0.1700 ± 0.0248 | 0.1300 ± 0.0248 | +4.5 % | +5.3 % | 150, 195, 200 | 2.5 |",
        "| LLPAUC | 0.1644 | 0.1209 | 0 | not run | not run | — | — | — | — |",
        "| SL | 0.1719 | 0.1261 | 0 | not run | not run | — | — | — | — |",
        "| BSL | 0.1719 | 0.1261 | 0 | not run | not run | — | — | — | — |",
        "| PSL | 0.1718 | 0.1268 | 0 | not run | not run | — | — | — | — |",
        # one seed: no interval; (0.18 - 0.1823) / 0.1823 = -1.26 %, (0.1251 - 0.1390) / 0.1390 = -10.0 %
        "| SL@20 | 0.1823 | 0.1390 | 1 | 0.1800 | 0.1251 | -1.3 % | -10.0 % | 85 | 4.2 |",
    ]
    assert report.relative([], 0.1) == "—"


def test_the_report_lists_what_did_not_run():
    lines = report.missing_lines(results(), [0, 1, 2])
    assert lines[0] == "- Health, MF: LLPAUC (seeds 0, 1, 2); SL (seeds 0, 1, 2); BSL (seeds 0, 1, 2); PSL (seeds 0, 1, 2); SL@20 (seeds 1, 2)"
    assert len(lines) == 6 and lines[-1].startswith("- Gowalla, LightGCN: BPR (seeds 0, 1, 2); ")
    text = report.report(results(), report.published(), "python -m benchmarks.study_losses")
    assert "### Not run yet (104 of the 108 runs of seeds 0, 1, 2)" in text
    assert text.count("| not run | not run |") == 34 and "Chart" not in text


def test_the_batches_table_sets_pairs_beside_users_where_both_ran():
    users = {("health", "mf", "sl", 0): Result(0.17, 0.126, 150, 0.3), ("health", "mf", "sl", 1): Result(0.17, 0.124, 150, 0.5),
             ("health", "mf", "psl", 0): Result(0.17, 0.125, 150, 0.3)}
    pairs = {("health", "mf", "sl", 0): Result(0.20, 0.100, 150, 6.0)}
    text = report.batches_table(users, pairs)
    rows = [line for line in text.splitlines()[2:]]
    assert len(rows) == 1  # PSL ran on users only
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[:3] == ["Health, MF", "SL", "1"] and cells[3] == "0.1000" and cells[4] == "2"
    assert cells[6] == "+25.0 %" and cells[7] == "-15.0 %"  # mean N@20 0.125 vs 0.100; R@20 0.17 vs 0.20
    assert cells[8:] == ["6.00", "0.40", "15x"]
    assert report.batches_table(users, {}) is None


def test_table_2_is_read_from_the_reference_file_with_a_source_beside_each_row():
    table = report.published()
    assert len(table) == 36
    assert table[("health", "mf", "bpr")] == {"recall@20": 0.1627, "ndcg@20": 0.1234}
    assert table[("electronic", "lightgcn", "llpauc")] == {"recall@20": 0.0831, "ndcg@20": 0.0507}
    assert table[("gowalla", "mf", "slk20")] == {"recall@20": 0.2121, "ndcg@20": 0.1709}
    rows = [line for line in report.REFERENCES.read_text().splitlines() if "{recall@20:" in line]
    assert len(rows) == 36 and all(re.search(r"\}\s+# SL@K paper, Table 2: \w+, \w+ \+ \S+$", row) for row in rows)


def test_a_missing_value_of_table_2_is_refused(tmp_path: Path):
    text = report.REFERENCES.read_text().replace("slk20:  {recall@20: 0.2128, ndcg@20: 0.1729}", "slk20:  {recall@20: 0.2128}")
    (tmp_path / "refs.yaml").write_text(text)
    with pytest.raises(ValueError, match="gowalla / lightgcn / slk20"):
        report.published(tmp_path / "refs.yaml")
