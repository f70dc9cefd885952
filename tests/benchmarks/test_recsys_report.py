"""benchmarks/recsys_report.py and reference_results.yaml: the reference numbers are data with a
source beside each, and the report sets the results beside them without judging them."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from benchmarks import harness, recsys_report
from benchmarks.recsys import RANKING_ROWS, ROWS


def run(ndcg10: float, ndcg20: float, epochs: int = 6, wall: float = 38.0) -> dict:
    return {"metrics": {"test/ndcg@10": ndcg10, "test/ndcg@20": ndcg20}, "epochs": epochs, "best_epoch": epochs,
            "epoch_s": 5.25, "wall": wall, "to_best": 32.8, "load": "1.00 / 1.00 / 1.00"}


def test_references_are_the_numbers_quoted_in_results_md():
    refs = recsys_report.load_references()
    assert refs["recbole_gnn_lightgcn"]["ndcg@10"] == 0.2538 and refs["recbole_gnn_lightgcn"]["recall@10"] == 0.1861
    assert refs["recbole_gnn_lightgcn"]["epochs"] == 500
    assert (refs["recbole_epoch"]["seconds"], refs["recbole_evaluation"]["seconds"], refs["pyg_epoch"]["seconds"]) == (63.0, 0.44, 426.0)
    section = harness.read_section(harness.RESULTS.read_text(), "recsys")
    for line in ("| *reference, not measured here:* RecBole 1.2.1 LightGCN-BPR, one epoch (batch 4096) | 63.00 | earlier measurement |",
                 "| *reference, not measured here:* RecBole 1.2.1, evaluation of all users | 0.44 | earlier measurement |",
                 "| *reference, not measured here:* torch_geometric `LightGCN` + `recommendation_loss`, one epoch (batch 4096) | 426.00 | earlier measurement |"):
        assert line in section


def test_every_number_of_the_reference_file_has_its_source_beside_it():
    lines = recsys_report.REFERENCES.read_text().splitlines()
    numbers = [line for line in lines if re.match(r"\s+[\w@]+: [\d.]+", line)]
    assert len(numbers) == 6
    assert all(re.search(r"[\d.]+\s+# \S.{20,}", line) for line in numbers), numbers


def test_a_reference_missing_a_field_is_refused(tmp_path):
    text = recsys_report.REFERENCES.read_text().replace("  recall@10: 0.1861", "  recall_10: 0.1861")
    (tmp_path / "refs.yaml").write_text(text)
    with pytest.raises(ValueError, match="recbole_gnn_lightgcn.*recall@10"):
        recsys_report.load_references(tmp_path / "refs.yaml")


def test_the_report_compares_with_the_references_and_asserts_nothing():
    refs = recsys_report.load_references()
    results = {"lgcn_supap": run(0.1706, 0.1859), "lgcn_bpr": run(0.1213, 0.1260, wall=12.0)}
    results["lgcn_bpr"]["epoch_s"] = 1.66
    measured = {"load_start": "1.00 / 1.00 / 1.00", "wanted": ["lgcn_supap", "lgcn_bpr"],
                "eval": {"users": 6038, "batch_users": 2048, "dot": 0.145, "cosine": 0.146, "repeats": 9}}
    args = SimpleNamespace(quick=False, budget_epochs=6, pyg_batch=4096)
    text = recsys_report.markdown(results, measured, [], rows=[(k, label) for k, label, *_ in ROWS], ranking=RANKING_ROWS,
                                  args=args, command="python -m benchmarks.recsys", started="2026-01-01 00:00", references=refs)
    lines = text.splitlines()
    assert ("| best ranking loss on LightGCN against BPR, test ndcg@20 (same 6-epoch budget) | "
            "LightGCN, sup_ap, uniform: 0.1859 | BPR: 0.1260 | +47.5% relative |") in lines
    assert ("| best ranking loss on LightGCN against RecBole-GNN LightGCN on ml-1m, published (500 epochs), test ndcg@10 | "
            "LightGCN, sup_ap, uniform: 0.1706 after 38 s wall (6 epochs; the longer run below, `--long-epochs`, goes further) | "
            "0.2538 | -0.0832 |") in lines
    assert ("| *reference, not measured here:* RecBole-GNN LightGCN on ml-1m, published (500 epochs) | 500 | — | — | — | — | "
            "0.2538 | — | 0.1861 | — | — | — | — | — |") in lines
    assert "RecBole epoch (reference) / our BPR epoch: **38.0×**" in text
    assert "RecBole evaluation (reference) / ours (dot): **3.03×**" in text
    assert not re.search(r"\bgoal|\bmet\b|not met|target", text, re.I)


def test_the_longer_run_is_set_beside_the_published_number():
    refs = recsys_report.load_references()
    r = run(0.2625, 0.2731, epochs=67, wall=351.0) | {"best_epoch": 59, "epoch_s": 5.0, "to_best": 300.0}
    block = recsys_report.long_block(r, "lightgcn_roadmap_uniform", 100, "python -m benchmarks.recsys --long-epochs 100", refs)
    assert "| 67 (100) | 59 | 5.0 | 351 | 300 | 0.2625 | 0.2731 | — | — |" in block.splitlines()
    assert block.splitlines()[-1] == ("Against RecBole-GNN LightGCN on ml-1m, published (500 epochs), test ndcg@10 0.2538: "
                                      "0.2625 after 351 s wall and 67 epochs (+0.0087).")
