"""What the multi-seed studies share: confidence intervals over seeds, finding finished runs in
MLflow by their study tags (so a study resumes where it stopped), table cells and bar charts
(the tables themselves are `benchmarks.harness.markdown_table`).

A study is a list of `Job`s, each identified by its tags (`study.name`, `study.dataset`,
`study.row`, `study.seed`, ...). A job whose run is FINISHED in the study's MLflow store, with its
final test metrics, is done and never run again. A job whose run stopped before finishing (its
process killed, or failed) continues from that run's last checkpoint (`stopped_run`), and one
process at a time trains a job (`cell_lock`, held by `run_jobs`): studies started side by side on one
store and run folder split the grid between them.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TAG = "study."
"""Prefix of the MLflow tags that identify a study's run."""
WALL = "study/wall_seconds"
"""MLflow metric: the whole training call's wall time, logged by the study after the run."""


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of its `level` confidence interval (Student t over the values, e.g.
    one value per seed): `t_{(1+level)/2, n-1} · s / √n`, `s` the sample standard deviation.
    One value: half-width NaN (no interval); none: both NaN."""
    from scipy import stats

    x = np.asarray(list(values), dtype=float)
    if not len(x):
        return math.nan, math.nan
    if len(x) == 1:
        return float(x[0]), math.nan
    half = stats.t.ppf((1 + level) / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(half)


def cell(values: Sequence[float], scale: float = 1.0, digits: int = 4) -> str:
    """`0.2452 ± 0.0031` (mean ± 95 % CI half-width), `0.2452` for one value, `—` for none."""
    mean, half = mean_ci(values)
    if math.isnan(mean):
        return "—"
    if math.isnan(half):
        return f"{scale * mean:.{digits}f}"
    return f"{scale * mean:.{digits}f} ± {scale * half:.{digits}f}"


@dataclass(frozen=True)
class Job:
    """One training run of a study, identified by its tags."""

    experiment: str
    tags: dict[str, str] = field(hash=False)

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(self.tags.items()))

    def describe(self) -> str:
        return " ".join(f"{k.removeprefix(TAG)}={v}" for k, v in self.tags.items() if k != TAG + "name")


def finished_runs(experiments: Iterable[str], study: str, tracking_uri: str, done_metric: str) -> dict:
    """`{job key: MLflow run (a pandas row)}` of the study's FINISHED runs that logged `done_metric`
    (the latest such run per key)."""
    from itemrec.experiment import tracking

    mlflow = tracking.connect(tracking_uri)
    names = [e for e in dict.fromkeys(experiments) if mlflow.get_experiment_by_name(e) is not None]
    if not names:
        return {}
    runs = mlflow.search_runs(
        experiment_names=names, filter_string=f"tags.`{TAG}name` = '{study}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"],
    )
    column = f"metrics.{done_metric}"
    if not len(runs) or column not in runs.columns:
        return {}
    return {run_key(run): run for _, run in runs[runs[column].notna()].iterrows()}


def run_key(run) -> tuple[tuple[str, str], ...]:
    """The `Job.key` of a study's run (a pandas row of `search_runs`): its `study.*` tags."""
    tags = {c.removeprefix("tags."): str(v) for c, v in run.items() if c.startswith(f"tags.{TAG}") and isinstance(v, str)}
    return tuple(sorted(tags.items()))


TRAINING = ("model.", "loss.", "sampling.", "train.")
"""The config sections that decide what is trained (a change there makes a finished run outdated)."""
PLACE = {"train.run_dir"}
"""Keys under `TRAINING` that say where, not what."""


GIVEN = ("model.", "loss.")
"""Sections whose keys are the ones a config gives (the model's and loss's own parameters)."""


def outdated(run, job_config) -> list[str]:
    """The training keys whose value in the finished `run`'s logged parameters differs from its
    cell's config now (`[]`: the run still stands for its cell). A model or loss key the config
    gives now and the run did not log was left at its default then: changed. A schema key of
    `sampling` or `train` the run did not log was added to the schema after it ran, and its
    default is what the run used: not counted."""
    from itemrec.experiment.config import flatten

    unused = {"sampling.positives_per_row"} if job_config.sampling.unit == "interaction" else set()  # one per pair row
    changed = []
    for key, value in flatten(job_config).items():
        if key.startswith(TRAINING) and key not in PLACE | unused:
            logged = run.get(f"params.{key}")
            if not isinstance(logged, str):
                logged = None
            if (logged is None and key.startswith(GIVEN)) or (
                    logged is not None and logged != ("" if value is None else str(value))):
                changed.append(key)
    return changed


class CellBusy(Exception):
    """Another process holds the job's lock (`cell_lock`): it is training that job now."""


@contextmanager
def cell_lock(folder: str | Path, job: Job) -> Iterator[Path]:
    """Hold `job`'s lock file, `<folder>/.locks/<digest of the job's key>.lock` (`folder`: the
    study's run folder), while it trains, so that two study processes never train, or resume, one
    job at once; raises `CellBusy` when another process holds it. The lock is the OS's (`flock`):
    it goes with its process, however that process ends, and a lock file left behind holds nothing."""
    locks = Path(folder).expanduser().resolve() / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    path = locks / f"{hashlib.sha256(repr((job.experiment, job.key)).encode()).hexdigest()[:16]}.lock"
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CellBusy(f"{job.experiment} {job.describe()}: another process is training it ({path})") from None
        yield path


def pending(jobs: Sequence[Job], done: dict) -> list[Job]:
    """The jobs without a finished run."""
    return [job for job in jobs if job.key not in done]


def run_jobs(jobs: Sequence[Job], done: dict, execute: Callable[[Job], None], dry_run: bool, say=print,
             lock_dir: str | Path | None = None, finished: Callable[[], dict] | None = None) -> list[Job]:
    """Run every pending job in order (`execute(job)`), or with `dry_run` only list them; returns
    the pending jobs. With `lock_dir`, each job runs holding its lock there (`cell_lock`): a job
    another process is training now is skipped, and, with `finished`, one that another process
    finished since the list was made (`job.key in finished()`, asked under the lock) too."""
    todo = pending(jobs, done)
    say(f"{len(jobs)} runs in the study: {len(jobs) - len(todo)} finished, {len(todo)} to run")
    for i, job in enumerate(todo, 1):
        say(f"[{i}/{len(todo)}] {'would run' if dry_run else 'running'}: {job.experiment} {job.describe()}")
        if dry_run:
            continue
        if lock_dir is None:
            execute(job)
            continue
        try:
            with cell_lock(lock_dir, job):
                if finished is not None and job.key in finished():
                    say(f"skipped: {job.experiment} {job.describe()}: another process finished it meanwhile")
                    continue
                execute(job)
        except CellBusy as busy:
            say(f"skipped: {busy}")
    return todo


def run_study(grid: Sequence[Job], args, finished: Callable[[], dict], execute: Callable[[Job], None],
              check: Callable[[Job], object] | None = None, say=print) -> dict | None:
    """The loop every study shares. The finished runs (`finished()`), then, unless
    `args.report_only`: every pending job of `grid` passed to `check` first (a missing or invalid
    config fails there, before anything trains), then run in order (`execute(job)`), or with
    `args.dry_run` only listed, the finished ones too. Returns the finished runs afterwards, or
    None after a dry run (nothing to report)."""
    done = finished()
    if args.report_only:
        return done
    for job in pending(grid, done):
        if check is not None:
            check(job)
    if args.dry_run:
        for job in grid:
            if job.key in done:
                say(f"done: {job.experiment} {job.describe()}")
    run_jobs(grid, done, execute, args.dry_run, say, getattr(args, "run_dir", None), finished)
    return None if args.dry_run else finished()


def stopped_run(config, job: Job, tracking_uri: str | None) -> str | None:
    """The run `job` continues from, or None to start afresh: its latest run (same `study.*`
    tags) that stopped before finishing — left RUNNING by a process that died, FAILED or KILLED —
    whose training keys are `config`'s now (`outdated`) and whose `last.pt` is on disk."""
    from itemrec.experiment import tracking
    from itemrec.experiment.loop import run_dir

    mlflow = tracking.connect(tracking_uri)
    if mlflow.get_experiment_by_name(job.experiment) is None:
        return None
    runs = mlflow.search_runs(
        experiment_names=[job.experiment], order_by=["attributes.start_time DESC"],
        filter_string=f"tags.`{TAG}name` = '{job.tags[TAG + 'name']}' and attributes.status != 'FINISHED'",
    )
    for _, run in runs.iterrows():
        if run_key(run) == job.key and not outdated(run, config) and (run_dir(config, run["run_id"]) / "last.pt").is_file():
            return str(run["run_id"])
    return None


def train_timed(train: Callable, config, job: Job, tracking_uri: str | None, quiet: bool) -> str:
    """Train `config` (`train`: a front end's `train`) as the run of `job`, with its tags; its run
    id. A run of the job that stopped before finishing continues from its last checkpoint
    (`stopped_run`), the same run, rather than starting over (`run_jobs` holds the job's lock
    meanwhile). The whole call's wall time (`WALL`) is logged to a run trained in one call; a
    resumed run logs none, since the time of the calls before went with their processes."""
    from mlflow.tracking import MlflowClient

    from benchmarks.harness import Stopwatch
    from itemrec.experiment import tracking

    resume = stopped_run(config, job, tracking_uri)
    if resume is not None:
        print(f"continuing run {resume} from its last checkpoint")
    with Stopwatch() as watch:
        run_id = train(config, tracking_uri=tracking_uri, quiet=quiet, tags=job.tags, resume=resume)
    if resume is None:
        MlflowClient(tracking.connect(tracking_uri).get_tracking_uri()).log_metric(run_id, WALL, watch.wall)
    return run_id


def history(run_id: str, key: str, tracking_uri: str) -> dict[int, float]:
    """`{step: value}` of one logged metric of a run."""
    from mlflow.tracking import MlflowClient

    from itemrec.experiment import tracking

    client = MlflowClient(tracking.connect(tracking_uri).get_tracking_uri())
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


def seconds_to_best(run_id: str, select: str, tracking_uri: str) -> tuple[int | None, int, float]:
    """`(best epoch, epochs run, training + validation seconds up to the best epoch)` from a run's
    per-epoch history (`epoch_seconds`, `eval_seconds`, and the validation metric `select`)."""
    val = history(run_id, select, tracking_uri)
    if not val:
        return None, 0, math.nan
    best = max(val, key=lambda step: (val[step], -step))
    train = history(run_id, "epoch_seconds", tracking_uri)
    evals = history(run_id, "eval_seconds", tracking_uri)
    seconds = sum(v for s, v in train.items() if s <= best) + sum(v for s, v in evals.items() if s <= best)
    return best, max(train or val), seconds


def bar_chart(panels: Sequence[tuple[str, list[tuple[str, list[float], str]]]], ylabel: str, path, title: str) -> None:
    """One panel per `(title, bars)`, each bar `(label, values over seeds, colour)`: the mean with
    a 95 % t-interval whisker (no whisker for a single value)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in panels if p[1]]
    if not panels:
        return
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(max(6.0, 0.55 * max(len(b) for _, b in panels) + 2), 3.6 * len(panels)), squeeze=False
    )
    for ax, (name, bars) in zip(axes[:, 0], panels):
        stats = [mean_ci(values) for _, values, _ in bars]
        means = [m for m, _ in stats]
        errors = [0.0 if math.isnan(h) else h for _, h in stats]
        ax.bar(range(len(bars)), means, yerr=errors, capsize=3, color=[c for _, _, c in bars], alpha=0.85)
        ax.set_xticks(range(len(bars)), [label for label, _, _ in bars], rotation=35, ha="right", fontsize=8)
        low = min(m - e for m, e in zip(means, errors))
        high = max(m + e for m, e in zip(means, errors))
        ax.set_ylim(max(0.0, low - 0.15 * (high - low + 1e-9)), high + 0.08 * (high - low + 1e-9))
        ax.set_title(name, fontsize=9)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
