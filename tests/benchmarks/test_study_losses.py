"""benchmarks/study_losses.py: the cells and their configs, resuming from a real MLflow store with a
stand-in training function, and the section it writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import harness, study_losses, study_losses_report
from benchmarks.study import outdated
from tests.stores import mlflow_store


def test_every_cell_has_its_config_and_the_seeds_run_one_after_the_other():
    grid = study_losses.jobs(list(study_losses.DATASETS), list(study_losses.MODELS), list(study_losses.LOSSES), [0, 1, 2])
    assert len(grid) == 3 * 2 * 6 * 3 and len({job.key for job in grid}) == len(grid)
    assert [study_losses.unpack(job) for job in grid[:2]] == [("health", "mf", "bpr", 0), ("health", "mf", "llpauc", 0)]
    assert study_losses.unpack(grid[36]) == ("health", "mf", "bpr", 1)  # every cell of seed 0 first
    first = grid[0]
    assert first.experiment == "study_losses_health"
    assert first.tags == {"study.name": "losses", "study.dataset": "health", "study.model": "mf", "study.loss": "bpr",
                          "study.seed": "0"}
    assert study_losses.config_path("gowalla", "lightgcn", "slk20") == harness.ROOT / "configs/recsys/irb/gowalla_lightgcn_slk20.yaml"
    paths = {study_losses.config_path(*study_losses.unpack(job)[:3]) for job in grid}
    assert len(paths) == 36 and all(path.is_file() for path in paths)


def test_a_cell_config_is_its_file_with_the_seed_and_the_study_experiment():
    job = study_losses.jobs(["electronic"], ["lightgcn"], ["slk20"], [2])[0]
    config = study_losses.cell_config(job, "somewhere")
    assert (config.seed, config.name, config.train.run_dir) == (2, "study_losses_electronic", "somewhere")
    assert (config.data.source, config.model.name, config.loss.name, config.loss.params["k"]) == (
        "irb/amazon2014-electronic", "lightgcn", "sl_at_k", 20)


def params(config, **changes: str) -> dict[str, str]:
    """The parameters a training run logs for `config` (as `itemrec.experiment.loop` does), some changed."""
    from itemrec.experiment.config import flatten

    out = {k: "" if v is None else str(v) for k, v in flatten(config).items()}
    return {**out, **changes}


def fake_train(calls: list, fail: tuple | None = None):
    """Stands in for `itemrec.recsys.frontend.train`: logs a FINISHED run with the given tags, the
    per-epoch history and the test metrics; on the cell `fail` the run fails half-way."""

    def train(config, *, tracking_uri, quiet, tags, resume=None):
        from itemrec.experiment import tracking

        mlflow = tracking.connect(tracking_uri)
        mlflow.set_experiment(config.name)
        cell = (tags["study.dataset"], tags["study.model"], tags["study.loss"], config.seed)
        calls.append(cell)
        with mlflow.start_run(tags=tags) as run:
            mlflow.log_params(params(config))
            for step, ndcg in ((5, 0.10), (10, 0.12), (15, 0.11)):
                mlflow.log_metrics({"epoch_seconds": 2.0, "val/ndcg_at_20": ndcg}, step=step)
            if cell == fail:
                raise RuntimeError("interrupted")
            mlflow.log_metrics({"test/recall_at_20": 0.17 + 0.01 * config.seed, "test/ndcg_at_20": 0.12 + 0.01 * config.seed})
        return run.info.run_id

    return train


def test_the_study_resumes_after_an_interruption_and_runs_nothing_twice(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(study_losses, "PNG", tmp_path / "study_losses.png")
    argv = ["--datasets", "health", "--models", "mf", "--losses", "bpr", "slk20", "--seeds", "0", "1", "--quiet",
            "--tracking-uri", mlflow_store(tmp_path / "mlflow.db"), "--run-dir", str(tmp_path / "runs"),
            "--results", str(tmp_path / "RESULTS.md")]
    calls = []
    with pytest.raises(RuntimeError, match="interrupted"):
        study_losses.main(argv, train=fake_train(calls, fail=("health", "mf", "bpr", 1)))
    assert calls == [("health", "mf", "bpr", 0), ("health", "mf", "slk20", 0), ("health", "mf", "bpr", 1)]
    capsys.readouterr()

    assert study_losses.main([*argv, "--dry-run"], train=fake_train(calls)) == 0
    listing = capsys.readouterr().out
    assert "4 runs in the study: 2 finished, 2 to run" in listing
    assert "done: study_losses_health dataset=health model=mf loss=slk20 seed=0" in listing
    assert "would run: study_losses_health dataset=health model=mf loss=bpr seed=1" in listing  # the failed run
    assert len(calls) == 3 and not (tmp_path / "RESULTS.md").exists()

    calls.clear()
    assert study_losses.main(argv, train=fake_train(calls)) == 0
    assert calls == [("health", "mf", "bpr", 1), ("health", "mf", "slk20", 1)]
    assert study_losses.main([*argv, "--no-write"], train=fake_train(calls)) == 0
    assert len(calls) == 2 and "4 runs in the study: 4 finished, 0 to run" in capsys.readouterr().out

    section = harness.read_section((tmp_path / "RESULTS.md").read_text(), study_losses.SECTION)
    assert f"## {study_losses_report.TITLE}" in section and "### Gowalla, LightGCN" in section
    # seeds 0 and 1: 0.17, 0.18 and 0.12, 0.13 (sd 0.01 / √2, t(0.975, 1 dof) 12.7062: ± 0.0635); best epoch 10
    assert "| BPR | 0.1627 | 0.1234 | 2 | 0.1750 ± 0.0635 | 0.1250 ± 0.0635 | +7.6 % | +1.3 % | 10, 10 | 2.0 |" in section
    assert "| LLPAUC | 0.1644 | 0.1209 | 0 | not run | not run | — | — | — | — |" in section
    assert ("- Health, MF: BPR (seed 2); LLPAUC (seeds 0, 1, 2); SL (seeds 0, 1, 2); BSL (seeds 0, 1, 2); "
            "PSL (seeds 0, 1, 2); SL@20 (seed 2)") in section.splitlines()
    assert (tmp_path / "study_losses.png").stat().st_size > 0


def test_pair_batch_cells_are_their_own_runs_with_the_benchmarks_batches():
    grid = study_losses.jobs(["health"], ["mf", "lightgcn"], list(study_losses.LOSSES), [0], rows="pairs")
    assert len(grid) == 2 * 5 and all(study_losses.unpack(job)[2] != "bpr" for job in grid)  # BPR trains on pairs anyway
    assert all(job.tags[study_losses.ROWS] == "pairs" and study_losses.rows_of(job) == "pairs" for job in grid)
    users = study_losses.jobs(["health"], ["mf"], ["sl"], [0])[0]
    assert study_losses.ROWS not in users.tags and study_losses.rows_of(users) == "users"
    pairs = next(job for job in grid if study_losses.unpack(job) == ("health", "mf", "sl", 0))
    assert pairs.key != users.key
    on_users, on_pairs = study_losses.cell_config(users, "runs"), study_losses.cell_config(pairs, "runs")
    assert (on_users.sampling.unit, on_users.train.batch_size) == ("user", 64)
    assert (on_pairs.sampling.unit, on_pairs.train.batch_size, on_pairs.sampling.negatives_per_row) == ("interaction", 1024, 1000)
    assert on_pairs.model_dump(exclude={"sampling", "train"}) == on_users.model_dump(exclude={"sampling", "train"})


def test_a_pairs_study_runs_apart_and_the_report_compares(tmp_path: Path, monkeypatch):
    uri = mlflow_store(tmp_path / "mlflow.db")
    base = ["--datasets", "health", "--models", "mf", "--losses", "bpr", "sl", "--seeds", "0", "--quiet",
            "--tracking-uri", uri, "--run-dir", str(tmp_path / "runs"), "--results", str(tmp_path / "RESULTS.md")]
    monkeypatch.setattr(study_losses, "PNG", tmp_path / "study_losses.png")
    calls = []
    assert study_losses.main(base, train=fake_train(calls)) == 0
    assert study_losses.main([*base, "--rows", "pairs"], train=fake_train(calls)) == 0
    assert calls == [("health", "mf", "bpr", 0), ("health", "mf", "sl", 0), ("health", "mf", "sl", 0)]
    text = (tmp_path / "RESULTS.md").read_text()
    assert "### Batches of users against the benchmark's batches of pairs" in text
    assert "| Health, MF | SL | 1 | 0.1200 | 1 | 0.1200 | +0.0 % | +0.0 % |" in text
    assert study_losses.main([*base, "--rows", "pairs"], train=fake_train(calls)) == 0
    assert len(calls) == 3  # both kinds done: nothing runs again


def test_finished_runs_tested_with_another_exclusion_are_re_evaluated(tmp_path: Path, monkeypatch):
    uri = mlflow_store(tmp_path / "mlflow.db")
    argv = ["--datasets", "health", "--models", "mf", "--losses", "bpr", "sl", "--seeds", "0", "--quiet",
            "--tracking-uri", uri, "--run-dir", str(tmp_path / "runs"), "--results", str(tmp_path / "RESULTS.md")]
    monkeypatch.setattr(study_losses, "PNG", tmp_path / "study_losses.png")
    calls, again = [], []
    monkeypatch.setattr(study_losses, "reevaluate", lambda run_id, uri, exclude_val: again.append((run_id, exclude_val)) or {"ndcg@20": 0.1})
    assert study_losses.main(argv, train=fake_train(calls)) == 0
    assert len(calls) == 2 and again == []  # fresh runs logged their exclusion: nothing to redo
    # an older run logged no such parameter: it alone is tested again, with its config's value
    from itemrec.experiment import tracking

    mlflow = tracking.connect(uri)
    mlflow.set_experiment("study_losses_health")
    job = study_losses.jobs(["health"], ["mf"], ["bpr"], [0])[0]
    with mlflow.start_run(tags=job.tags) as old:
        logged = params(study_losses.cell_config(job, str(tmp_path / "runs")))
        mlflow.log_params({k: v for k, v in logged.items() if k != study_losses.EVAL_PARAM})
        mlflow.log_metrics({"test/recall_at_20": 0.2, "test/ndcg_at_20": 0.15, "val/ndcg_at_20": 0.1}, step=5)
    assert study_losses.main([*argv, "--report-only"]) == 0
    assert again == [(old.info.run_id, False)]


def test_a_run_whose_config_changed_what_is_trained_is_trained_again(tmp_path: Path, monkeypatch):
    uri = mlflow_store(tmp_path / "mlflow.db")
    argv = ["--datasets", "health", "--models", "mf", "--losses", "sl", "--seeds", "0", "--quiet",
            "--tracking-uri", uri, "--run-dir", str(tmp_path / "runs"), "--results", str(tmp_path / "RESULTS.md")]
    monkeypatch.setattr(study_losses, "PNG", tmp_path / "study_losses.png")
    job = study_losses.jobs(["health"], ["mf"], ["sl"], [0])[0]
    config = study_losses.cell_config(job, "runs")
    from itemrec.experiment import tracking

    mlflow = tracking.connect(uri)
    mlflow.set_experiment("study_losses_health")
    for unit in ("interaction", config.sampling.unit):
        with mlflow.start_run(tags=job.tags):
            logged = params(config, **{"sampling.unit": unit, "train.run_dir": "elsewhere"})
            mlflow.log_params({k: v for k, v in logged.items() if k != "train.lr_decay"})  # a key added since
            mlflow.log_metrics({"test/recall_at_20": 0.2, "test/ndcg_at_20": 0.15, "val/ndcg_at_20": 0.1}, step=5)
    runs = study_losses.finished_runs(["study_losses_health"], study_losses.STUDY, uri, study_losses.DONE)
    old = runs[job.key]  # the latest: same training keys, another folder, a schema key it did not log
    assert outdated(old, config) == []
    old = old.copy()
    old["params.sampling.unit"], old["params.train.batch_size"] = "interaction", "1024"
    assert outdated(old, config) == ["sampling.unit", "train.batch_size"]
    assert list(study_losses.current({job.key: old}, "runs")) == []
    # a model or loss key the config gives and the run did not log: the run used its default
    from itemrec.experiment.config import load_config

    changed = load_config(study_losses.config_path("health", "mf", "sl"), ["model.init_std=0.01", "seed=0"])
    assert outdated(runs[job.key], changed) == ["model.init_std"]
    # on pair batches the positives per row do not matter (one positive per row)
    pairs = load_config(study_losses.config_path("health", "mf", "sl"), study_losses.PAIR_BATCHES)
    mixed = runs[job.key].copy()
    mixed["params.sampling.unit"], mixed["params.sampling.positives_per_row"] = "interaction", "64"
    mixed["params.train.batch_size"] = "1024"
    assert outdated(mixed, pairs) == []
    calls = []
    assert study_losses.main(argv, train=fake_train(calls)) == 0
    assert calls == []  # the latest run still stands
    with mlflow.start_run(tags=job.tags):  # a newer run trained with pair batches: the cell runs again
        mlflow.log_params(params(config, **{"sampling.unit": "interaction"}))
        mlflow.log_metrics({"test/recall_at_20": 0.2, "test/ndcg_at_20": 0.15, "val/ndcg_at_20": 0.1}, step=5)
    assert study_losses.main(argv, train=fake_train(calls)) == 0
    assert calls == [("health", "mf", "sl", 0)]


def test_re_evaluation_ranks_the_validation_rows_at_test(tmp_path: Path, monkeypatch):
    from itemrec.experiment.checkpoint import resolve_checkpoint
    from itemrec.experiment.config import load_config
    from itemrec.experiment.tracking import connect
    from itemrec.recsys.evaluate import cosine_scores, evaluate
    from itemrec.recsys.frontend import train
    from itemrec.recsys.pipeline import restore
    from tests.recsys.test_train import write_config, write_interactions

    monkeypatch.chdir(tmp_path)
    uri = mlflow_store(tmp_path / "mlflow.db")
    write_interactions(tmp_path / "inter.csv")
    config = load_config(write_config(tmp_path, loss={"name": "bpr"}, sampling={"negatives": "uniform"},
                                      model={"name": "mf", "dim": 8}, train={"epochs": 2},
                                      eval={"ks": [10, 20], "metric": "ndcg@20"}), ["name=study_losses_health"])
    job = study_losses.jobs(["health"], ["mf"], ["bpr"], [0])[0]
    run_id = train(config, tracking_uri=uri, quiet=True, tags=job.tags)
    before = connect(uri).get_run(run_id).data.metrics["test/ndcg_at_10"]
    metrics = study_losses.reevaluate(run_id, uri, exclude_val=False)
    saved, data, model = restore(resolve_checkpoint(run_id, uri)[0], run_id)
    expected = evaluate(model, data, "test", "transductive", (10, 20), cosine_scores(saved, model), exclude_val=False).metrics
    assert metrics["ndcg@10"] == pytest.approx(expected["ndcg@10"]) and metrics["ndcg@10"] < before
    run = connect(uri).get_run(run_id)
    assert run.data.metrics["test/ndcg_at_10"] == pytest.approx(expected["ndcg@10"])
    assert run.data.params[study_losses.EVAL_PARAM] == "True"  # what training logged, immutable
    assert run.data.tags[study_losses.EVAL_TAG] == "False" and run.info.status == "FINISHED"
    # still the study's finished run of its cell, now fresh for the config's exclusion
    done = study_losses.finished_runs(["study_losses_health"], study_losses.STUDY, uri, study_losses.DONE)
    assert list(done) == [job.key] and not study_losses.stale(done[job.key], study_losses.cell_config(job, "runs"))


def test_a_fresh_store_resumes_from_the_records_beside_the_results(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(study_losses, "PNG", tmp_path / "study_losses.png")
    argv = ["--datasets", "health", "--models", "mf", "--losses", "bpr", "--seeds", "0", "1", "--quiet",
            "--run-dir", str(tmp_path / "runs"), "--results", str(tmp_path / "out" / "RESULTS.md")]
    calls = []
    assert study_losses.main([*argv, "--tracking-uri", mlflow_store(tmp_path / "first.db")], train=fake_train(calls)) == 0
    assert len(calls) == 2 and len((tmp_path / "out" / "records" / "losses.jsonl").read_text().splitlines()) == 2
    capsys.readouterr()
    fresh = [*argv, "--tracking-uri", mlflow_store(tmp_path / "fresh.db")]
    assert study_losses.main([*fresh, "--seeds", "0", "1", "2"], train=fake_train(calls)) == 0
    out = capsys.readouterr().out
    assert "2 finished runs restored from" in out and "3 runs in the study: 2 finished, 1 to run" in out
    assert calls[2:] == [("health", "mf", "bpr", 2)]
    section = harness.read_section((tmp_path / "out" / "RESULTS.md").read_text(), study_losses.SECTION)
    assert "| BPR | 0.1627 | 0.1234 | 3 |" in section  # the restored seeds count in the report
