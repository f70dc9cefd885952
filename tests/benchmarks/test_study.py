"""What the studies share: a job whose run stopped continues from its checkpoint, one process at a
time trains a job. Real training on generated data, a local MLflow store."""

from pathlib import Path

import pytest

from benchmarks.study import TAG, WALL, CellBusy, Job, cell_lock, run_jobs, stopped_run, train_timed
from itemrec.experiment.config import load_config
from itemrec.recsys.frontend import train
from tests.recsys.test_train import write_config, write_interactions

EPOCHS = 4


class Killed(Exception):
    """Stands in for the process dying after an epoch's checkpoint was written."""


def setup(tmp_path: Path) -> tuple[Job, str, Path]:
    write_interactions(tmp_path / "inter.csv")
    job = Job("study_resume", {TAG + "name": "resume", TAG + "seed": "0"})
    path = write_config(tmp_path, name="cell", model={"name": "mf", "dim": 8}, sampling={"negatives": "uniform"},
                        train={"epochs": EPOCHS, "eval_every": 1, "patience": 100})
    return job, f"sqlite:///{tmp_path / 'mlflow.db'}", path


def dies_after(epoch: int):
    def run(config, **options):
        def on_epoch(done: int, metrics: dict) -> None:
            if done == epoch:
                raise Killed(f"after epoch {done}")

        return train(config, on_epoch=on_epoch, **options)

    return run


def steps(uri: str, run_id: str, key: str) -> list[int]:
    from mlflow.tracking import MlflowClient

    return sorted(m.step for m in MlflowClient(uri).get_metric_history(run_id, key))


def test_a_stopped_job_continues_its_run_from_the_last_checkpoint(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    job, uri, path = setup(tmp_path)
    config = load_config(path, [f"name={job.experiment}"])
    with pytest.raises(Killed):
        train_timed(dies_after(2), config, job, uri, quiet=True)
    [stopped] = MlflowClient(uri).search_runs([MlflowClient(uri).get_experiment_by_name(job.experiment).experiment_id])
    assert stopped.info.status == "FAILED" and steps(uri, stopped.info.run_id, "loss") == [1, 2]
    assert stopped_run(config, job, uri) == stopped.info.run_id
    assert stopped_run(load_config(path, [f"name={job.experiment}", "train.lr=0.02"]), job, uri) is None  # another config
    other = Job(job.experiment, {**job.tags, TAG + "seed": "1"})
    assert stopped_run(config, other, uri) is None  # another job

    run_id = train_timed(train, config, job, uri, quiet=True)
    assert run_id == stopped.info.run_id  # the same run, every epoch once
    run = MlflowClient(uri).get_run(run_id)
    assert run.info.status == "FINISHED" and steps(uri, run_id, "loss") == list(range(1, EPOCHS + 1))
    assert "test/ndcg_at_10" in run.data.metrics and WALL not in run.data.metrics
    assert stopped_run(config, job, uri) is None  # finished: nothing to continue

    fresh = train_timed(train, config, other, uri, quiet=True)  # nothing stopped: a run of its own
    assert fresh != run_id and WALL in MlflowClient(uri).get_run(fresh).data.metrics


def test_a_job_another_process_trains_or_finished_is_skipped_and_the_study_goes_on(tmp_path: Path):
    import subprocess
    import sys
    import textwrap

    job, other = Job("study_lock", {TAG + "name": "lock", TAG + "seed": "0"}), Job("study_lock", {TAG + "name": "lock", TAG + "seed": "1"})
    folder = tmp_path / "runs"
    with cell_lock(folder, job) as lock:
        holder = textwrap.dedent(f"""
            import fcntl, sys
            handle = open({str(lock)!r}, "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                sys.exit(3)
        """)
        assert subprocess.run([sys.executable, "-c", holder]).returncode == 3  # held against another process
        with pytest.raises(CellBusy, match="another process is training it"):
            with cell_lock(folder, job):  # flock: per open file, so this process too
                pass
        with cell_lock(folder, other):  # another job: its own lock
            pass
    assert subprocess.run([sys.executable, "-c", holder]).returncode == 0  # released with the block

    said, ran = [], []
    with cell_lock(folder, job):  # another process trains `job`
        run_jobs([job, other], {}, ran.append, dry_run=False, say=said.append, lock_dir=folder, finished=dict)
    assert ran == [other]
    assert any(line.startswith("skipped: study_lock seed=0: another process is training it") for line in said)

    said, ran = [], []  # `other` finished by another process after this one listed it as pending
    run_jobs([job, other], {}, ran.append, dry_run=False, say=said.append, lock_dir=folder, finished=lambda: {other.key: "run"})
    assert ran == [job]
    assert "skipped: study_lock seed=1: another process finished it meanwhile" in said
