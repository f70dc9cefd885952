"""benchmarks/side_by_side.py: a study's grid split into one process per cell, run at most N at
once, stopped at the budget, and the cells' records merged."""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

from benchmarks import side_by_side as sbs


def test_cells_are_the_product_of_the_grid_options_each_with_its_own_store(tmp_path):
    jobs = sbs.cells("study_losses", ["--datasets", "gowalla", "--models", "lightgcn", "--rows", "pairs",
                                      "--losses", "bpr", "slk20", "--seeds=0", "--seeds", "1"], tmp_path)
    assert [j.name for j in jobs] == ["gowalla_lightgcn_bpr_0", "gowalla_lightgcn_bpr_1",
                                      "gowalla_lightgcn_slk20_0", "gowalla_lightgcn_slk20_1"]
    argv = jobs[1].argv
    assert argv[:5] == [sys.executable, "-m", "benchmarks.study_losses", "--rows", "pairs"]
    assert argv[5:13] == ["--datasets", "gowalla", "--models", "lightgcn", "--losses", "bpr", "--seeds", "1"]
    store = argv[argv.index("--tracking-uri") + 1]
    assert store == f"sqlite:///{tmp_path.resolve()}/gowalla_lightgcn_bpr_1/mlflow.db"
    assert argv[argv.index("--results") + 1] == str(tmp_path.resolve() / "gowalla_lightgcn_bpr_1" / "RESULTS.md")
    assert argv[argv.index("--run-dir") + 1] == str(tmp_path.resolve() / "runs")  # shared: one checkpoint per cell
    assert {"--no-write", "--quiet"} <= set(argv)


@pytest.mark.parametrize("options, message", [
    (["--tracking-uri", "sqlite:///x.db"], "--tracking-uri is set by this script"),
    (["--results=x.md"], "--results is set by this script"),
    (["--seeds", "--losses", "sl"], "--seeds needs at least one value"),
])
def test_options_the_script_sets_or_an_empty_grid_option_are_refused(tmp_path, options, message):
    with pytest.raises(SystemExit, match=message):
        sbs.cells("study_losses", options, tmp_path)


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def test_run_keeps_to_the_process_count_and_stops_what_outlasts_the_budget(tmp_path):
    stamp = "import sys, time; open(sys.argv[1], 'a').write(f'{{time.time()}}\\n'); {}"
    jobs = [
        sbs.Cell("quick", python(stamp.format("time.sleep(0.5)"), str(tmp_path / "quick.t"))),
        sbs.Cell("fails", python(stamp.format("sys.exit(4)"), str(tmp_path / "fails.t"))),
        sbs.Cell("long", python(stamp.format("time.sleep(60)"), str(tmp_path / "long.t"))),
        sbs.Cell("late", python(stamp.format("time.sleep(60)"), str(tmp_path / "late.t"))),
    ]
    said = []
    start = time.monotonic()
    outcome = sbs.run(jobs, tmp_path, processes=2, budget=3.0, grace=5.0, say=said.append)
    assert time.monotonic() - start < 15  # the 60 s sleeps were stopped at the budget
    assert outcome == {"quick": "finished", "fails": "failed (exit 4)", "long": "stopped at the budget",
                       "late": "stopped at the budget"}
    started = {j.name: float((tmp_path / f"{j.name}.t").read_text()) for j in jobs}
    assert started["late"] >= started["quick"] + 0.4  # two at once: "late" waited for a free slot
    assert (tmp_path / "long" / "log.txt").is_file() and any("stopped at the budget: long" in s for s in said)


def test_a_cell_past_the_budget_is_not_started_and_a_term_ignoring_one_is_killed(tmp_path):
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    jobs = [sbs.Cell("stubborn", python(stubborn)), sbs.Cell("never", python("pass"))]
    start = time.monotonic()
    outcome = sbs.run(jobs, tmp_path, processes=1, budget=1.0, grace=1.0, say=lambda _: None)
    assert time.monotonic() - start < 10
    assert outcome == {"stubborn": "stopped at the budget", "never": "not started"}
    assert not (tmp_path / "never").exists()


def test_main_merges_every_cells_records_and_says_which_cells_did_not_finish(tmp_path, monkeypatch, capsys):
    def fake_run(jobs, out, processes, budget, grace):
        for i, job in enumerate(jobs):  # what each cell's study saved
            folder = out / job.name / "records"
            folder.mkdir(parents=True)
            record = {"experiment": "e", "tags": {"study.seed": str(i)}, "metrics": {}, "params": {}, "history": {}}
            (folder / "losses.jsonl").write_text(json.dumps(record) + "\n")
        return {jobs[0].name: "finished", jobs[1].name: "stopped at the budget"}

    monkeypatch.setattr(sbs, "run", fake_run)
    code = sbs.main(["--out", str(tmp_path), "--processes", "2", "study_losses", "--datasets", "health",
                     "--models", "mf", "--losses", "sl", "--seeds", "0", "1"])
    assert code == 3
    text = capsys.readouterr().out
    assert "health_mf_sl_1: stopped at the budget" in text and "losses 2" in text
    assert [json.loads(line)["tags"]["study.seed"] for line in (tmp_path / "records" / "losses.jsonl").read_text().splitlines()] == ["0", "1"]
    with pytest.raises(SystemExit, match="no study benchmarks/study_nothing.py"):
        sbs.main(["study_nothing"])


def test_a_tuning_study_keeps_its_seeds_together_and_gets_its_own_storage_per_cell(tmp_path):
    jobs = sbs.cells("study_tuning", ["--datasets", "health", "--models", "mf", "lightgcn", "--losses", "sl",
                                      "--seeds", "0", "1", "--trials", "4"], tmp_path)
    assert [j.name for j in jobs] == ["health_mf_sl", "health_lightgcn_sl"]
    argv = jobs[1].argv
    assert argv[3:8] == ["--seeds", "0", "1", "--trials", "4"]
    assert argv[argv.index("--storage") + 1] == f"sqlite:///{tmp_path.resolve()}/health_lightgcn_sl/optuna.db"
    assert "--storage" not in sbs.cells("study_losses", ["--seeds", "0"], tmp_path)[0].argv


def test_an_interrupted_run_stops_the_cells_it_started(tmp_path):
    record_pid = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"
    jobs = [sbs.Cell("a", python(record_pid, str(tmp_path / "a.pid"))), sbs.Cell("b", python("pass"))]

    def say(message: str) -> None:
        if message.startswith("started b"):
            deadline = time.monotonic() + 10
            pid_file = tmp_path / "a.pid"  # created by open() before the pid is written: wait for the text
            while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
                time.sleep(0.05)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sbs.run(jobs, tmp_path, processes=2, budget=100.0, grace=5.0, say=say)
    pid = int((tmp_path / "a.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped, not left sleeping
