"""benchmarks/scale*.py: exponents fitted from a record, the table built from it, and the walks
stage on a small generated graph."""

from __future__ import annotations

import pytest

from benchmarks import scale_report, scale_stages
from benchmarks.scale_stages import StageInput


def record(exponent: float) -> dict:
    out = {}
    for size, n in zip(scale_stages.SHAPED, (1_000_000, 3_000_000, 10_000_000, 30_000_000), strict=True):
        out[size] = {
            "read": {"seconds": 3e-6 * n, "cpu_seconds": 1e-6 * n, "users": n // 50, "items": n // 30, "interactions": n, "peak_rss_gb": 1.0, "load": 2.0},
            "eval": {"seconds": 5.0, "peak_rss_gb": 2.0, "load": 3.0, "cpu_seconds": 2e-5 * n**exponent},
        }
    out["30m"]["epoch-bpr"] = {"seconds": 900.0, "estimated": True, "peak_rss_gb": 3.0, "load": 4.0, "note": "extrapolated"}
    out["10m"]["ppr-push"] = {"failed": "did not finish in 1020 s", "load": 1.0}
    return out


@pytest.mark.parametrize("exponent", [0.8, 1.0, 1.3])
def test_exponent_of_a_power_law_is_recovered_from_cpu_seconds(exponent: float):
    fitted = scale_report.exponents(record(exponent))
    assert fitted["eval"] == pytest.approx(exponent, abs=1e-9)
    assert fitted["read"] == pytest.approx(1.0, abs=1e-9)
    assert "epoch-bpr" not in fitted  # one point only


def test_table_marks_estimates_failures_and_missing_stages():
    text = scale_report.markdown(record(1.0), scale_report.exponents(record(1.0)))
    row = next(line for line in text.splitlines() if line.startswith("| 30m |"))
    assert "~900.0 s, 3.00 GB" in row and "not run" in row and "| 30,000,000 | 4.0 |" in row
    assert "failed (did not finish in 1020 s)" in next(line for line in text.splitlines() if line.startswith("| 10m |"))
    assert "- eval: 1.00" in text


def test_epoch_is_also_fitted_per_batch():
    """An epoch of users / 1,024 batches, each costing ∝ interactions: the epoch's exponent is 2
    (users ∝ interactions here), one batch's is 1, from the recorded per-batch fields or, for
    entries without them, from the epoch over its ceil(users / 1,024) batches."""
    out = record(1.0)
    for size in scale_stages.SHAPED:
        read = out[size]["read"]
        batches = -(-read["users"] // 1_024)
        per_batch = 1e-6 * read["interactions"]
        out[size]["epoch-bpr"] = {"seconds": 1.0, "cpu_seconds": per_batch * batches, "peak_rss_gb": 1.0, "load": 1.0}
        out[size]["epoch-supap"] = {"seconds": 1.0, "cpu_seconds": per_batch * batches, "per_batch_cpu_seconds": per_batch,
                                    "batches": batches, "peak_rss_gb": 1.0, "load": 1.0}
    fitted = scale_report.exponents(out)
    assert fitted["epoch-bpr per batch"] == pytest.approx(1.0, abs=1e-9)
    assert fitted["epoch-supap per batch"] == pytest.approx(1.0, abs=1e-9)
    assert fitted["epoch-bpr"] == pytest.approx(2.0, abs=0.02)
    assert "1.0 CPU s/batch" in scale_report.markdown(out, fitted)


def test_ppr_table_runs_in_full_only_when_the_estimate_is_at_most_half_the_limit(tmp_path):
    """The walks stage on a small generated graph: a huge limit runs the table for all users and
    says so; a limit below twice the estimate records the (positive) extrapolation instead."""
    shape = (600, 900, 12_000)
    scale_stages.stage_generate(StageInput("tiny", tmp_path, shape, 1.0))
    scale_stages.stage_read(StageInput("tiny", tmp_path, shape, 1.0))
    walks = scale_stages.stage_ppr("walks")
    full = walks(StageInput("tiny", tmp_path, shape, 1e6))
    assert not full.get("estimated") and full["note"].startswith("all 600 users") and full["cpu_seconds"] > 0
    estimate = float(full["note"].split("estimated ")[1].split(" s")[0])
    assert estimate >= 0
    sampled = walks(StageInput("tiny", tmp_path, shape, 0.0))
    assert sampled["estimated"] and sampled["seconds"] > 0 and sampled["cpu_seconds"] > 0
    assert "not run in full" in sampled["note"]
