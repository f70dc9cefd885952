"""The tables of the benchmarks that need ml-1m or long runs, rendered from the numbers of their
RESULTS.md sections: each renderer gives back the measured table line for line."""

from __future__ import annotations

import pytest

from benchmarks import data, distributed, ppr, propagation, retrieval
from benchmarks.harness import RESULTS, read_section


def table_lines(section: str) -> list[str]:
    """The lines of the first Markdown table in a section of RESULTS.md."""
    lines = read_section(RESULTS.read_text(), section).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip("|").split("|")]


def number(text: str) -> float:
    return float(text.replace(",", ""))


def test_data_table():
    measured = table_lines("data")
    keys = ["case", "seconds", "peak_mib", "growth_mib", "users", "items", "interactions", "train"]
    results = [dict(zip(keys, [c[0], *(number(x) for x in c[1:4]), *(int(number(x)) for x in c[4:])], strict=True))
               for c in map(cells, measured[2:])]
    assert data.table(results).splitlines() == measured


def test_ppr_table():
    measured = table_lines("ppr")
    rows = [(c[0], *(float(x) for x in c[1:])) for c in map(cells, measured[2:])]
    text = ppr.markdown(rows, {"users": 6039, "items": 3628, "train": 669169, "load": 1.0})
    assert text.splitlines()[-len(measured):] == measured


def test_propagation_table():
    measured = table_lines("propagation")
    rows = [(c[0], float(c[1])) for c in map(cells, measured[2:])]
    text = propagation.markdown(rows, {"users": 6039, "items": 3628, "train": 669169, "load": 1.0})
    assert text.splitlines()[-len(measured):] == measured


def test_distributed_table():
    measured = table_lines("distributed")
    settings = [(int(c[0]), int(c[1])) for c in map(cells, measured[2:])]
    seconds = {s: [float(c[2])] * int(c[3]) for s, c in zip(settings, map(cells, measured[2:]), strict=True)}
    assert distributed.table(seconds, settings).splitlines() == measured


@pytest.fixture
def retrieval_results() -> dict[str, dict[str, float]]:
    names = ("test/hit@1", "test/map@r", "test/h_ap", "test/asi", "test/ap", "test/ndcg")
    out = {}
    for c in map(cells, table_lines("retrieval")[2:]):
        out[c[0]] = {**{k: float(v) / 100 for k, v in zip(names, c[1:7], strict=True)},
                     "epoch_seconds": float(c[7]), "best_epoch": float(c[8])}
    return out


def test_retrieval_table_and_comparisons(retrieval_results):
    assert retrieval.table(retrieval_results).splitlines() == table_lines("retrieval")
    assert retrieval.comparisons(retrieval_results) == [
        "- best on mAP@R: happier (a ranking loss); on H-AP: happier; on ASI: happier",
        "- hit@1, best ranking loss against best baseline: 93.77 vs 93.70 (+0.07 points)",
    ]
