"""benchmarks/diagnose_ranking.py: every ablation's config, resuming from a real MLflow store with a
stand-in training function, and the report from given numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import diagnose_ranking as dr
from benchmarks import harness
from tests.stores import mlflow_store


def test_each_ablation_changes_what_it_says_from_the_base():
    configs = {name: dr.job_config(job, "runs") for name, job in zip(dr.ABLATIONS, dr.jobs(list(dr.ABLATIONS), [3]))}
    base = configs["base"]
    assert (base.loss.name, base.loss.params["tau"], base.loss.params["rho"], base.train.lr) == ("sup_ndcg", 0.05, 1.0, 0.01)
    assert (base.seed, base.name, base.sampling.unit, base.train.batch_size, base.train.score) == (3, "diagnose_ranking", "user", 64, "cosine")
    assert configs["defaults"].loss.params["tau"] == 0.01 and configs["defaults"].loss.params["rho"] == 100
    assert configs["lr_0.1"].train.lr == 0.1 and configs["dot"].train.score == "dot"
    assert configs["interaction"].loss.params["weighting"] == "interaction"
    assert configs["positives_16"].sampling.positives_per_row == 16
    assert configs["roadmap"].loss.name == "roadmap" and configs["roadmap"].loss.params["rho"] == 1.0
    assert configs["sl"].loss.name == "sampled_softmax" and configs["slk20"].loss.name == "sl_at_k"
    assert configs["slk20_detached"].loss.params["detach_weights"] is True
    assert configs["log_dcg_k20_centered"].loss.params["centered"] is True and configs["log_dcg_k20"].loss.params["k"] == 20
    for name, config in configs.items():  # one change: the data and the model stay the base's
        assert config.data == base.data and config.model == base.model, name
        assert config.eval.exclude_val_at_test is False and (config.train.epochs, config.train.patience) == (200, 8), name


def fake_train(calls: list, fail: str | None = None):
    """Logs a FINISHED run with a validation curve whose best value is 0.05 + 0.01 · its index in
    ABLATIONS; the ablation `fail` fails half-way."""
    names = list(dr.ABLATIONS)

    def train(config, *, tracking_uri, quiet, tags, resume=None):
        from itemrec.experiment import tracking
        from itemrec.experiment.config import flatten

        mlflow = tracking.connect(tracking_uri)
        mlflow.set_experiment(config.name)
        name = tags["study.ablation"]
        calls.append(name)
        with mlflow.start_run(tags=tags) as run:
            mlflow.log_params({k: "" if v is None else str(v) for k, v in flatten(config).items()})
            best = 0.05 + 0.01 * names.index(name)
            for step, value in ((5, best - 0.01), (10, best), (15, best - 0.02)):
                mlflow.log_metrics({"val/ndcg_at_20": value}, step=step)
            if name == fail:
                raise RuntimeError("interrupted")
            mlflow.log_metrics({"test/recall_at_20": 2 * best, "test/ndcg_at_20": best})
        return run.info.run_id

    return train


def test_the_diagnosis_resumes_and_reports_each_ablation_against_the_base(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(dr, "PNG", tmp_path / "diagnose.png")
    argv = ["--ablations", "base", "lr_0.1", "sl", "--seeds", "0", "--quiet", "--tracking-uri", mlflow_store(tmp_path / "m.db"),
            "--run-dir", str(tmp_path / "runs"), "--results", str(tmp_path / "RESULTS.md")]
    calls = []
    with pytest.raises(RuntimeError, match="interrupted"):
        dr.main(argv, train=fake_train(calls, fail="lr_0.1"))
    assert dr.main(argv, train=fake_train(calls)) == 0
    assert calls == ["base", "lr_0.1", "lr_0.1", "sl"]  # the failed run again, the finished one not
    section = harness.read_section((tmp_path / "RESULTS.md").read_text(), dr.SECTION)
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| ablation")}
    assert rows["base"][2:] == ["1", "0.0500", "10", "0.1000", "0.0500", "—"]
    best = {name: 0.05 + 0.01 * i for i, name in enumerate(dr.ABLATIONS)}  # what fake_train logs
    assert rows["lr_0.1"][3] == f"{best['lr_0.1']:.4f}" and rows["lr_0.1"][7] == f"{100 * (best['lr_0.1'] / 0.05 - 1):+.0f} %"
    assert rows["sl"][7] == f"{100 * (best['sl'] / 0.05 - 1):+.0f} %" and rows["tau_0.2"][2:4] == ["0", "not run"]
    assert (tmp_path / "diagnose.png").stat().st_size > 0
