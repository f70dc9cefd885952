"""benchmarks/speed_reference.py: per-batch stamps, medians and epoch estimates, the ratio rows,
the batch limit, the split extraction, and the driver's import isolation (on a stand-in checkout)."""

from __future__ import annotations

import itertools
import zipfile

import pytest

from benchmarks import speed_reference as sr


def test_stamp_bar_turns_update_calls_into_per_batch_times_after_the_warmup():
    wall = iter([10.0, 11.5, 12.0, 12.75, 13.25])  # add_task, then one update per batch
    cpu = iter([1.0, 2.0, 2.5, 3.0, 3.25])
    bar = sr.StampBar(wall=lambda: next(wall), cpu=lambda: next(cpu))
    task = bar.add_task("epoch 2", total=4, info="")
    for _ in range(4):
        bar.update(task, advance=1, info="loss 1.0")
    bar.remove_task(task)
    segment = bar.segment(warmup=1, loss=6.5)
    assert segment.seconds == pytest.approx((0.5, 0.75, 0.5))
    assert segment.cpu_seconds == pytest.approx((0.5, 0.5, 0.25))
    assert segment.per_batch == pytest.approx(1.75 / 3)
    assert segment.loss == 6.5
    with pytest.raises(ValueError, match="no batch after 4 warm-up"):
        bar.segment(warmup=4)


def test_median_over_rounds_of_each_rounds_mean_and_the_epoch_estimate():
    rounds = [sr.Segment((1.0, 3.0), (0.5, 0.5)), sr.Segment((5.0, 5.0), (1.0, 1.0)), sr.Segment((1.0, 1.0), (2.0, 4.0))]
    assert sr.median_per_batch(rounds) == 2.0  # round means 2, 5, 1
    assert sr.median_per_batch(rounds, cpu=True) == 1.0  # 0.5, 1, 3
    with pytest.raises(ValueError):
        sr.median_per_batch([])
    assert sr.epoch_estimate(2.0, 712) == 1424.0
    assert sr.epoch_estimate(0.5, 720, per_epoch=30.0 / 5) == pytest.approx(366.0)  # SL@K: a 30 s refresh every 5 epochs


def test_ratio_rows_say_whether_a_loss_is_within_the_bound():
    assert sr.ratio_row("BSL", 107.0, 100.0) == ("BSL", "1.07×", "yes")
    assert sr.ratio_row("SL@20", 130.0, 100.0) == ("SL@20", "1.30×", "yes")
    assert sr.ratio_row("SL@20", 131.0, 100.0) == ("SL@20", "1.31×", "**no**")
    assert sr.ratio_row("PSL", 90.0, 100.0, bound=0.8) == ("PSL", "0.90×", "**no**")


def test_rotated_starts_each_round_one_item_later():
    losses = ["sl", "bsl", "psl", "slk20"]
    assert [sr.rotated(losses, r)[0] for r in range(5)] == ["sl", "bsl", "psl", "slk20", "sl"]
    assert sr.rotated(losses, 2) == ["psl", "slk20", "sl", "bsl"]
    assert sr.rotated([], 3) == []


def test_first_batches_cuts_the_epochs_batch_list_and_restores_it(monkeypatch):
    from itemrec.recsys import train as train_module

    monkeypatch.setattr(train_module, "epoch_batches", lambda *args, **kwargs: list(range(10)))
    original = train_module.epoch_batches
    with sr.first_batches(3):
        assert train_module.epoch_batches("data", "positives", config="config") == [0, 1, 2]
    assert train_module.epoch_batches is original
    with pytest.raises(RuntimeError), sr.first_batches(1):
        raise RuntimeError("restored on errors too")
    assert train_module.epoch_batches is original


def test_extract_split_copies_train_and_test_where_the_reference_reads_them(tmp_path):
    archive = tmp_path / "gowalla.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("proc/train.tsv", "user_procid\titem_procid\n0\t1\n")
        zf.writestr("proc/test.tsv", "user_procid\titem_procid\n0\t2\n")
        zf.writestr("proc/summary.txt", "not needed")
    out = sr.extract_split(archive, tmp_path / "data", "gowalla")
    assert out == tmp_path / "data" / "gowalla" / "proc"
    assert sorted(p.name for p in out.iterdir()) == ["test.tsv", "train.tsv"]
    assert (out / "test.tsv").read_text().endswith("0\t2\n")
    with zipfile.ZipFile(tmp_path / "broken.zip", "w") as zf:
        zf.writestr("train.tsv", "")
    with pytest.raises(SystemExit, match="no test.tsv"):
        sr.extract_split(tmp_path / "broken.zip", tmp_path / "other", "x")


def test_driver_imports_the_checkouts_itemrec_not_this_project(tmp_path):
    # A stand-in checkout: only a package named `itemrec`. The driver must import it, although this
    # project (also `itemrec`) is installed in editable mode in the same interpreter.
    (tmp_path / "itemrec").mkdir()
    (tmp_path / "itemrec" / "__init__.py").write_text("STAND_IN = True\n")
    assert sr.check_reference(tmp_path) == str((tmp_path / "itemrec" / "__init__.py").resolve())


def test_driver_source_is_valid_python_and_keeps_its_results_apart_from_the_references_prints():
    compile(sr.DRIVER_SOURCE, "reference_driver.py", "exec")
    assert f'MARK = "{sr.MARK}"' in sr.DRIVER_SOURCE
    assert "sys.stdout = sys.stderr" in sr.DRIVER_SOURCE


def test_reference_commit_falls_back_to_a_commit_file_then_the_known_commit(tmp_path):
    assert sr.reference_commit(tmp_path) == sr.REFERENCE_COMMIT
    (tmp_path / "COMMIT").write_text("0123abcd\n")
    assert sr.reference_commit(tmp_path) == "0123abcd"


def test_plural():
    assert sr.plural(1, "round") == "1 round"
    assert sr.plural(3, "untimed warm-up step") == "3 untimed warm-up steps"


def test_significant_keeps_small_epochs_readable():
    assert [sr.significant(x) for x in (2102.4, 130.0, 65.38, 0.344, 0.01123)] == ["2,102", "130", "65.4", "0.344", "0.0112"]


def test_every_loss_has_its_config_for_every_dataset():
    for dataset, loss in itertools.product(sr.DATASETS, sr.LOSSES):
        assert sr.config_path(dataset, loss).is_file(), (dataset, loss)


def _run(clock: str) -> dict:
    def segments(wall: float, cpu: float) -> list[sr.Segment]:
        return [sr.Segment((wall,) * 2, (cpu,) * 2, 5.0) for _ in range(3)]

    ours = {key: {"segments": segments(1.0, 0.5), "batches_per_epoch": 100, "users": 3, "items": 4, "train_pairs": 5}
            for key in sr.LOSSES}
    ours["slk20"].update(segments=segments(1.2, 0.6), refresh=[(50.0, 25.0)] * 3, refresh_every=5)
    reference = {"segments": segments(4.0, 2.0), "batches_per_epoch": 110, "users": 3, "items": 4, "train_pairs": 5,
                 "setup_seconds": 20.0, "cpp_sampling": True}
    return {
        "dataset": "gowalla", "dataset_title": "Gowalla", "command": "python -m benchmarks.speed_reference", "machine": "m",
        "commit": "abc", "threads": 1, "rounds": 3, "batches": 2, "warmup": 1, "reference": reference, "ours": ours,
        "reference_sampling": [0.25] * 3, "load_start": "1", "load_end": "1", "timed_seconds": 60.0, "clock": clock,
        "reference_threads": 1, "our_threads": 1, "note": "", "seed": 2024, "batch_size": 1024, "negatives": 1000,
        "dim": 64, "layers": 2, "lr": 0.1, "weight_decay": 0.0, "tau": 0.1,
    }


def test_report_compares_on_the_chosen_clock_and_amortises_the_refresh():
    wall = sr.report(_run("wall"))
    # SL epoch 1.0 x 100 = 100 s; the reference 4.0 x 110 = 440 s
    assert "**0.250× per batch, 0.227× per epoch** (wall time" in wall
    # SL@20: 1.2 x 100 + 50 / 5 = 130 s -> 1.30×, within the bound; on CPU 0.6 x 100 + 25 / 5 = 65 against 50
    assert "| SL@20 | `gowalla_lightgcn_slk20.yaml` | 1.200 | 0.600 | 50.00 s / 5 = 10.00 | 130 | 1.30× | yes | 1.30× |" in wall
    cpu = sr.report(_run("cpu"))
    assert "**0.250× per batch, 0.227× per epoch** (CPU time" in cpu
    assert "| SL@20 | `gowalla_lightgcn_slk20.yaml` | 1.200 | 0.600 | 25.00 s / 5 = 5.00 | 65 | 1.30× | yes | 1.30× |" in cpu
    assert "3 rounds alternate" in cpu and "2 consecutive training steps" in cpu and "1 untimed warm-up step;" in cpu


def test_itemrec_side_steps_on_the_references_pair_batches_not_the_configs_user_rows():
    from benchmarks.study_losses import PAIR_BATCHES
    from itemrec.experiment.config import load_config

    config = load_config(sr.config_path("gowalla", "sl"))
    assert (config.sampling.unit, config.train.batch_size) == ("user", 64)  # the configs' cheaper batches
    paired = load_config(sr.config_path("gowalla", "sl"), PAIR_BATCHES)
    assert (paired.sampling.unit, paired.train.batch_size, paired.sampling.negatives_per_row) == ("interaction", 1024, 1000)
