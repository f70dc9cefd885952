"""benchmarks/study_retrieval.py on a tiny generated Fashion-MNIST: early-stopped runs, resume
(a second invocation runs nothing), the dry-run listing, the table and the orderings."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks import study_retrieval
from tests.retrieval.conftest import write_fashion
from tests.stores import mlflow_store

CONFIG = """\
task: retrieval
seed: 0
device: cpu
data: {dataset: fashion_mnist, protocol: unseen_classes, test_classes: [3, 6, 7, 8], val_fraction: 0.2}
sampler: {name: m_per_class, m: 8, steps_per_epoch: 2}
model: {backbone: small_cnn, dim: 16}
loss: {name: roadmap}
optim: {lr: 0.003, backbone_lr: 0.003}
train: {epochs: 2, batch_size: 32, eval_batch_size: 64, eval_chunk: 16}
"""


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_fashion(tmp_path / "fashion")
    (tmp_path / "tiny.yaml").write_text(CONFIG)
    monkeypatch.setattr(study_retrieval, "CONFIG", tmp_path / "tiny.yaml")
    monkeypatch.setattr(study_retrieval, "PNG", tmp_path / "study.png")
    return tmp_path


def args(folder: Path, *extra: str) -> list[str]:
    return ["--losses", "roadmap", "contrastive", "--cap", "3", "--min-epochs", "2", "--patience", "1",
            "--data-root", str(folder / "fashion"), "--tracking-uri", mlflow_store(folder / "mlflow.db"),
            "--run-dir", str(folder / "runs"), "--results", str(folder / "RESULTS.md"), "--quiet", *extra]


def test_study_runs_resumes_lists_and_reports(tiny: Path, capsys, monkeypatch):
    assert study_retrieval.main(args(tiny, "--seeds", "0", "1", "--dry-run")) == 0
    listing = capsys.readouterr().out
    assert "4 runs in the study: 0 finished, 4 to run" in listing and listing.count("would run") == 4
    assert listing.index("loss=contrastive seed=0") < listing.index("loss=roadmap seed=1")  # seed-major
    assert not (tiny / "runs").exists()

    assert study_retrieval.main(args(tiny, "--seeds", "0", "1")) == 0
    capsys.readouterr()
    executed = []
    monkeypatch.setattr(study_retrieval, "execute", lambda job, a: executed.append(job))
    assert study_retrieval.main(args(tiny, "--seeds", "0", "1")) == 0
    assert executed == [] and "4 runs in the study: 4 finished, 0 to run" in capsys.readouterr().out

    results = study_retrieval.collect(
        study_retrieval.finished_runs([study_retrieval.EXPERIMENT], "retrieval", f"sqlite:///{tiny / 'mlflow.db'}", "test/map_at_r"),
        f"sqlite:///{tiny / 'mlflow.db'}",
    )
    assert set(results) == {("roadmap", 0), ("roadmap", 1), ("contrastive", 0), ("contrastive", 1)}
    for run in results.values():
        assert 2 <= run["epochs"] <= 3 and 1 <= run["best_epoch"] <= run["epochs"]
        assert 0 < run["metrics"]["map@r"] <= 1 and set(run["metrics"]) == set(study_retrieval.METRICS)
    section = (tiny / "RESULTS.md").read_text()
    assert "<!-- study-retrieval:start -->" in section and "| **roadmap** | 2 |" in section
    assert "| contrastive | 2 |" in section and "| roadmap > contrastive (map@r) |" in section
    assert (tiny / "study.png").stat().st_size > 0


def test_orderings_need_a_difference_beyond_the_seeds_noise():
    def runs(loss, maps):
        return {(loss, s): {"metrics": {"map@r": m}} for s, m in enumerate(maps)}

    clear = {**runs("roadmap", [0.60, 0.61, 0.62]), **runs("sup_ap", [0.50, 0.51, 0.50])}
    assert "**holds**" in study_retrieval.ordering(clear, "roadmap", "sup_ap")
    assert "**reversed**" in study_retrieval.ordering(clear, "sup_ap", "roadmap")
    noisy = {**runs("roadmap", [0.60, 0.50, 0.55]), **runs("sup_ap", [0.56, 0.52, 0.54])}
    assert "not beyond noise" in study_retrieval.ordering(noisy, "roadmap", "sup_ap")
    assert study_retrieval.ordering(runs("roadmap", [0.6]), "roadmap", "sup_ap") is None


def test_welch_test_on_hand_computed_numbers():
    from scipy import stats

    # x̄ = 0.61, s_x² = 1e-4; ȳ = 0.50333…, s_y² = 1/30000: s_x²/3 + s_y²/3 = 4/90000, so
    # t = (32/300) / (2/300) = 16 and df = (4/90000)² / ((1/30000)²/2 + (1/90000)²/2) = 16/5
    t, df, p = study_retrieval.welch([0.60, 0.61, 0.62], [0.50, 0.51, 0.50])
    assert t == pytest.approx(16.0) and df == pytest.approx(3.2)
    assert p == pytest.approx(2 * stats.t.sf(16.0, 3.2)) and p < 1e-3
    assert p == pytest.approx(stats.ttest_ind([0.60, 0.61, 0.62], [0.50, 0.51, 0.50], equal_var=False).pvalue)
    assert study_retrieval.welch([0.5, 0.5], [0.4, 0.4]) == (math.inf, pytest.approx(math.nan, nan_ok=True), 0.0)
    assert study_retrieval.welch([0.5, 0.5], [0.5, 0.5])[2] == 1.0


def test_happier_claims_are_judged_on_the_hierarchical_metrics():
    def runs(loss, h_aps):
        return {(loss, s): {"metrics": {"h_ap": v, "asi": v, "map@r": 0.5}} for s, v in enumerate(h_aps)}

    results = {**runs("happier", [0.80, 0.81, 0.80]), **runs("roadmap", [0.76, 0.75, 0.76])}
    assert "**holds**" in study_retrieval.ordering(results, "happier", "roadmap", "h_ap")
    assert ("happier", "roadmap", "h_ap") in study_retrieval.CLAIMS and ("happier", "roadmap", "asi") in study_retrieval.CLAIMS
