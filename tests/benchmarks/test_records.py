"""benchmarks/records.py: a study's finished runs saved from one real MLflow store and restored into
a fresh one, with their tags, parameters, final metrics, histories and per-user test metrics."""

from __future__ import annotations

import json

import polars as pl
import pytest

from benchmarks import records
from benchmarks.study import finished_runs, history
from tests.stores import mlflow_store

STUDY = "demo"
DONE = "test/ndcg_at_20"


def log_run(uri: str, experiment: str, seed: int, folder, *, status: str = "FINISHED", test: float = 0.25) -> str:
    """A run as a study logs it: study tags, params, a validation history, test metrics, per-user table."""
    from itemrec.experiment import tracking

    mlflow = tracking.connect(uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run(tags={"study.name": STUDY, "study.seed": str(seed), "study.row": "a b/c"}) as run:
        mlflow.log_params({"loss.tau": "0.2", "train.lr": "0.01", "model.name": "lightgcn"})
        for step, value in ((5, 0.10 + seed), (10, 0.12 + seed), (15, 0.11 + seed)):
            mlflow.log_metric("val/ndcg_at_20", value, step=step)
            mlflow.log_metric("epoch_seconds", 1.5 * step, step=step)
        mlflow.log_metrics({DONE: test + seed, "test/recall_at_20": 0.3})
        frame = pl.DataFrame({"user": [0, 3, 7], "ndcg@20": [0.5, 0.25, 0.1 * seed], "recall@20": [1.0, 0.5, 0.0],
                              "novelty@20": [9.0, 9.0, 9.0]})
        path = folder / f"per_user_test_transductive_{seed}.parquet"
        frame.write_parquet(path)
        renamed = folder / "per_user_test_transductive.parquet"
        path.rename(renamed)
        mlflow.log_artifact(str(renamed), artifact_path="per_user")
        if status != "FINISHED":
            mlflow.end_run(status)
    return run.info.run_id


@pytest.fixture
def two_stores(tmp_path, monkeypatch):
    monkeypatch.setenv("ITEMREC_DATA", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # the artifacts of experiments made by `set_experiment` go under ./mlruns
    return mlflow_store(tmp_path / "a" / "mlflow.db"), mlflow_store(tmp_path / "b" / "mlflow.db")


def test_records_restore_into_a_fresh_store_what_the_report_and_the_paired_test_read(tmp_path, two_stores):
    first, fresh = two_stores
    folder = tmp_path / "records"
    (tmp_path / "logged").mkdir()
    ids = [log_run(first, "exp_x", seed, tmp_path / "logged") for seed in (0, 1)]
    log_run(first, "exp_x", 2, tmp_path / "logged", status="FAILED")  # not finished: not a record

    path = records.save(STUDY, ["exp_x"], first, DONE, per_user=["ndcg@20", "recall@20"], folder=folder)
    saved = records.load(path)
    assert [r["tags"]["study.seed"] for r in saved] == ["0", "1"]
    assert saved[1]["history"]["val/ndcg_at_20"] == [[5, 1.1], [10, 1.12], [15, 1.11]]
    assert saved[1]["metrics"][DONE] == pytest.approx(1.25) and saved[1]["params"]["loss.tau"] == "0.2"
    kept = pl.read_parquet(folder / saved[0]["per_user"])
    assert kept.columns == ["user", "ndcg@20", "recall@20"] and kept["ndcg@20"].to_list() == [0.5, 0.25, 0.0]

    assert records.restore(STUDY, fresh, DONE, folder=folder) == 2
    assert records.restore(STUDY, fresh, DONE, folder=folder) == 0  # already there: nothing twice
    old, new = finished_runs(["exp_x"], STUDY, first, DONE), finished_runs(["exp_x"], STUDY, fresh, DONE)
    assert set(old) == set(new) and len(new) == 2
    for key in old:
        assert new[key]["run_id"] != old[key]["run_id"]
        assert new[key][f"metrics.{DONE}"] == old[key][f"metrics.{DONE}"]
        assert new[key]["metrics.val/ndcg_at_20"] == pytest.approx(old[key]["metrics.val/ndcg_at_20"])  # the last step
        assert new[key]["params.train.lr"] == "0.01" and new[key]["tags.itemrec.restored_from"].endswith("demo.jsonl")
        assert history(new[key]["run_id"], "epoch_seconds", fresh) == history(old[key]["run_id"], "epoch_seconds", first)

    from itemrec.experiment.compare import paired_test

    restored = {dict(k)["study.seed"]: r["run_id"] for k, r in new.items()}
    test = paired_test(restored["1"], ids[0], "ndcg@20", "test", fresh)
    assert test.users == 3 and test.diff == pytest.approx(0.1 / 3, rel=1e-6)

    before = path.read_text()
    records.save(STUDY, ["exp_x"], fresh, DONE, per_user=["ndcg@20", "recall@20"], folder=folder)
    assert path.read_text() == before  # a restored store saves back to the same records


def test_save_keeps_the_records_a_store_lacks_and_replaces_those_it_ran_again(tmp_path, two_stores):
    first, other = two_stores
    folder = tmp_path / "records"
    (tmp_path / "logged").mkdir()
    log_run(first, "exp_x", 0, tmp_path / "logged", test=0.25)
    log_run(first, "exp_x", 2, tmp_path / "logged")
    records.save(STUDY, ["exp_x"], first, DONE, folder=folder)
    log_run(other, "exp_x", 0, tmp_path / "logged", test=0.5)  # the same cell, run again elsewhere
    log_run(other, "exp_y", 1, tmp_path / "logged")
    path = records.save(STUDY, ["exp_x", "exp_y", "exp_never"], other, DONE, folder=folder)
    saved = {(r["experiment"], r["tags"]["study.seed"]): r["metrics"][DONE] for r in records.load(path)}
    assert saved == {("exp_x", "0"): 0.5, ("exp_x", "2"): 2.25, ("exp_y", "1"): 1.25}
    assert "per_user" not in records.load(path)[0]


def test_write_atomically_replaces_the_file_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "study.jsonl"
    path.write_text("old\n")
    records.write_atomically(path, '{"a": 1}\n{"b": 2}\n')
    assert path.read_text() == '{"a": 1}\n{"b": 2}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["study.jsonl"]


def test_merge_brings_records_saved_elsewhere_with_their_per_user_tables(tmp_path, two_stores):
    first, other = two_stores
    (tmp_path / "logged").mkdir()
    log_run(first, "exp_x", 0, tmp_path / "logged", test=0.25)
    log_run(first, "exp_x", 1, tmp_path / "logged")
    home = records.save(STUDY, ["exp_x"], first, DONE, folder=tmp_path / "home")
    log_run(other, "exp_x", 1, tmp_path / "logged", test=0.5)  # seed 1 run again elsewhere
    log_run(other, "exp_x", 2, tmp_path / "logged")
    away = records.save(STUDY, ["exp_x"], other, DONE, per_user=["ndcg@20"], folder=tmp_path / "away")

    assert records.merge(away.parent, home.parent) == {STUDY: 2}
    merged = {r["tags"]["study.seed"]: r for r in records.load(home)}
    assert {s: r["metrics"][DONE] for s, r in merged.items()} == {"0": 0.25, "1": 1.5, "2": 2.25}
    table = pl.read_parquet(home.parent / merged["2"]["per_user"])
    assert table["ndcg@20"].to_list() == pytest.approx([0.5, 0.25, 0.2])
    assert "per_user" not in merged["0"]
    before = home.read_text()
    assert records.merge(away.parent, home.parent) == {STUDY: 0} and home.read_text() == before


def test_merge_from_the_command_line_and_its_error_for_a_folder_without_records(tmp_path, capsys):
    source = tmp_path / "away"
    source.mkdir()
    with pytest.raises(SystemExit, match="no \\*.jsonl records in"):
        records.main(["merge", str(source)])
    record = {"experiment": "e", "tags": {"study.seed": "0"}, "metrics": {DONE: 0.3}, "params": {}, "history": {}}
    (source / "demo.jsonl").write_text(json.dumps(record) + "\n")
    assert records.main(["merge", str(source), "--into", str(tmp_path / "home")]) == 0
    assert "demo: 1 records added or changed" in capsys.readouterr().out
    assert records.load(tmp_path / "home" / "demo.jsonl") == [record]
