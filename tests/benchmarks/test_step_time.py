"""benchmarks.step_time on a tiny generated config: the report's rows and estimates, and the
training loop left as it was."""

from __future__ import annotations

import re

from benchmarks import step_time
from itemrec.recsys import train as train_module
from tests.recsys.test_train import write_config, write_interactions


def test_the_report_times_each_way_and_estimates_an_epoch_from_the_median(tmp_path, capsys, monkeypatch):
    write_interactions(tmp_path / "inter.csv")
    sessions = []
    build = step_time.build_session
    monkeypatch.setattr(step_time, "build_session", lambda *a: sessions.append(build(*a)) or sessions[-1])
    config = write_config(tmp_path, sampling={"negatives": "uniform"}, train={"batch_size": 8, "eval_every": 2})
    original = train_module.rows_ahead
    assert step_time.main(["--config", str(config), "--batches", "3", "--rounds", "3", "--warmup", "1",
                           "--profile", "2", "--no-write"]) == 0
    assert train_module.rows_ahead is original  # the loop is left choosing as before
    out = capsys.readouterr().out
    assert "## One training batch on the CPU: rows made ahead or in line (tiny)" in out
    assert "on `cpu`: 10 batches per epoch, 4 epochs, validation every 2; 3 timed batches per round." in out
    ways = r"made ahead|in line \(training's way here\)|in line, every row propagated"
    rows = {m[0]: m[1:] for m in re.findall(rf"^\| ({ways}) \| ([\d.]+) \| ([\d., ]+) \| ([\d.]+) \|", out, re.M)}
    assert set(rows) == {"made ahead", "in line (training's way here)", "in line, every row propagated"}
    for median, rounds, epoch in rows.values():
        values = sorted(float(v) for v in rounds.split(", "))
        assert len(values) == 3 and float(median) == values[1]
        assert float(epoch) >= 10 * float(median) / 1e3 - 0.05  # 10 batches plus half a validation
    assert re.search(r"Seconds per batch in line over made ahead: \*\*[\d.]+×\*\* \(above 1", out)
    assert re.search(r"Every row propagated over the batch's rows: \*\*[\d.]+×\*\* \(the same numbers", out)
    assert "forward" not in vars(sessions[0].model)  # the model's own forward is back after the every-row rounds
    assert "kernel launches —" in out  # no CUDA here
