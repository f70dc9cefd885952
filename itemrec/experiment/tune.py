"""`itemrec tune`: Optuna search over a config's `tune.space`, every trial a nested MLflow run.

The study lives in an Optuna storage (sqlite under `mlflow/` by default, any RDB URL for many
workers on many machines); running the same command again resumes it up to `n_trials` trials in
total. Each trial is a full training run with the sampled values applied as dotted overrides; it
reports the validation metric every epoch, so the pruner can stop it early. One parent MLflow run
per study holds the best value and parameters and the study's plots.

Workers that die. On RDB storages every running trial writes a heartbeat (`tune.heartbeat_interval`);
a trial silent for `tune.grace_period` is failed by the next worker that looks and retried with the
same parameters, resuming from the dead trial's last checkpoint when there is one (its MLflow run id
travels with the trial's user attributes). A worker finishes when the study holds `n_trials`
trials, not counting the failed-and-retried ones, and none of them is still running or waiting.

Repeated values. On a grid of choices the sampler may draw values a finished trial already ran.
Training is deterministic given the config's seed, so such a trial trains nothing: it takes the
finished trial's value and names it in its `same_as` attribute (no MLflow run of its own).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from itemrec.experiment import tracking
from itemrec.experiment.config import ExperimentConfig, TuneSpec, load_config
from itemrec.experiment.errors import UserError
from itemrec.experiment.frontend import front_end
from itemrec.experiment.loop import run_dir
from itemrec.experiment.loop import train as train_loop

DEFAULT_STORAGE = tracking.DEFAULT_DIR / "optuna.db"
PARENT_ATTR = "mlflow_parent_run_id"
SPACE_ATTR = "search_space"
RUN_ATTR = "mlflow_run_id"
BEST_ATTR = "best_value"
WORKER_ATTR = "worker"
SAME_AS_ATTR = "same_as"
STORAGE_ATTEMPTS = 4
PARENT_WAIT = 60.0
"""Seconds a worker waits for the study's creator to record the parent run before creating one."""


def default_storage() -> str:
    DEFAULT_STORAGE.parent.mkdir(exist_ok=True)
    return f"sqlite:///{DEFAULT_STORAGE.resolve()}"


def _quiet_optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def open_storage(url: str, spec: TuneSpec):
    """The RDB storage at `url` with heartbeats, stale trials retried (with their intermediate values)."""
    optuna = _quiet_optuna()
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    for attempt in range(STORAGE_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=spec.heartbeat_interval,
                grace_period=spec.grace_period,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(spec.max_retry, inherit_intermediate_values=True),
            )
        except ImportError:
            hint = " (install the driver: pip install 'itemrec[postgres]')" if url.startswith("postgres") else ""
            raise UserError(f"--storage {url}: no database driver for this URL{hint}") from None
        except Exception as err:
            # Workers started together on a fresh database race to create the tables: the
            # losers see a unique violation and find the tables there on the next attempt.
            error = err
            time.sleep(0.5 * (attempt + 1))
    raise UserError(f"--storage {url}: cannot open the Optuna storage ({str(error).splitlines()[0]})")


def retried_numbers(trials) -> set[int]:
    """Numbers of the trials failed for a lost heartbeat and retried under a new number."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def counted(trials) -> int:
    """Trials that count towards `n_trials`: all but the failed-and-retried ones."""
    return len(trials) - len(retried_numbers(trials))


def full(study, total: int) -> bool:
    """Whether the study counts `total` trials and none waits for a retry (a dead worker's)."""
    trials = study.get_trials(deepcopy=False)
    return counted(trials) >= total and not any(t.state.name == "WAITING" for t in trials)


class StopWhenFull:
    """Stop the optimization loop once the study counts `total` trials (running ones included)."""

    def __init__(self, total: int) -> None:
        self.total = total

    def __call__(self, study, trial) -> None:
        if counted(study.get_trials(deepcopy=False)) >= self.total:
            study.stop()


def representative(param) -> Any:
    """A value of the parameter's range, used to check that its key is a real config field."""
    if param.type == "categorical":
        return param.choices[0]
    return int(param.low) if param.type == "int" else float(param.low)


def check_space(config_path: Path, overrides: list[str], spec: TuneSpec, front) -> None:
    """Fail before any trial on a key that is not a config field, an empty range, or an unknown metric."""
    if not spec.space:
        raise UserError(f"{config_path}: tune.space is empty; nothing to search")
    for key, param in spec.space.items():
        where = f"{config_path}: tune.space.{key}"
        if param.type == "categorical":
            if not param.choices:
                raise UserError(f"{where}: categorical needs a non-empty choices list")
        else:
            if param.low is None or param.high is None:
                raise UserError(f"{where}: {param.type} needs low and high")
            if not param.low < param.high:
                raise UserError(f"{where}: empty range (low {param.low} must be below high {param.high})")
            if param.log and param.low <= 0:
                raise UserError(f"{where}: a log scale needs low > 0")
        try:
            config = load_config(config_path, [*overrides, f"{key}={json.dumps(representative(param))}"])
            front.check(config)
        except UserError as err:
            raise UserError(f"{where}: not a valid config field ({err})") from None
        if key.split(".")[0] in ("task", "tune"):
            raise UserError(f"{where}: cannot search over {key.split('.')[0]}")
    known = front.validation_metrics(load_config(config_path, overrides))
    if spec.metric not in known:
        raise UserError(f"{config_path}: tune.metric: {spec.metric!r} is not a validation metric (known: {', '.join(sorted(known))})")


def suggest(trial, spec: TuneSpec) -> dict[str, Any]:
    """One value per searched key."""
    values = {}
    for key, p in spec.space.items():
        if p.type == "float":
            values[key] = trial.suggest_float(key, p.low, p.high, log=p.log, step=p.step)
        elif p.type == "int":
            values[key] = trial.suggest_int(key, int(p.low), int(p.high), log=p.log, step=int(p.step or 1))
        else:
            values[key] = trial.suggest_categorical(key, p.choices)
    return values


def open_study(storage: str, name: str, spec: TuneSpec, seed: int):
    """Create or load the study; a stored study with another search space is an error. The
    sampler is seeded with `seed` plus the number of trials the study already holds, so a resumed
    study goes on drawing new values, deterministically.

    Returns `(study, created)`: `created` is True in the one worker that created it.
    """
    optuna = _quiet_optuna()
    sampler = optuna.samplers.TPESampler(seed=seed) if spec.sampler == "tpe" else optuna.samplers.RandomSampler(seed=seed)
    pruner = {
        "median": optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=spec.warmup_epochs),
        "hyperband": optuna.pruners.HyperbandPruner(),
        "none": optuna.pruners.NopPruner(),
    }[spec.pruner]
    rdb = open_storage(storage, spec)
    created = True
    try:
        try:
            study = optuna.create_study(study_name=name, storage=rdb, sampler=sampler, pruner=pruner, direction=spec.direction)
        except optuna.exceptions.DuplicatedStudyError:
            created = False
            study = optuna.load_study(study_name=name, storage=rdb, sampler=sampler, pruner=pruner)
    except Exception as err:
        raise UserError(f"--storage {storage}: cannot open the Optuna storage ({str(err).splitlines()[0]})") from None
    space = json.dumps({k: v.model_dump() for k, v in spec.space.items()}, sort_keys=True)
    stored = study.user_attrs.get(SPACE_ATTR)
    if stored is None:
        study.set_user_attr(SPACE_ATTR, space)
    elif stored != space:
        raise UserError(
            f"study {name!r} in {storage} was created with another search space; use --study NEW_NAME "
            "or the original tune.space"
        )
    if study.trials or not created:  # resumed: seeded past the trials held, not to draw them again;
        # a worker joining others (none done yet, or some running) adds its own, not to draw theirs
        resumed = seed + len(study.trials)
        if not created and (not study.trials or any(t.state.name == "RUNNING" for t in study.trials)):
            resumed += int.from_bytes(hashlib.sha256(f"{socket.gethostname()}:{os.getpid()}".encode()).digest()[:4], "big")
        study.sampler = (optuna.samplers.TPESampler(seed=resumed) if spec.sampler == "tpe"
                         else optuna.samplers.RandomSampler(seed=resumed))
    if study.direction.name.lower() != spec.direction:
        raise UserError(f"study {name!r} optimizes {study.direction.name.lower()}, the config says {spec.direction}")
    return study, created


def parent_run(study, experiment: str, tracking_uri: str | None, created: bool = True) -> str:
    """The study's parent MLflow run, created on first use and remembered in the study.

    Only the worker that created the study creates it, so workers started together share one;
    the others wait for it while the study is new (no trial yet; up to `PARENT_WAIT` seconds),
    then create it themselves.
    """
    young = not created and not study.get_trials(deepcopy=False)
    deadline = time.monotonic() + (PARENT_WAIT if young else 0)
    while True:
        run_id = study.user_attrs.get(PARENT_ATTR)
        if run_id:
            return run_id
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    with tracking.run(experiment, uri=tracking_uri, run_name=f"study {study.study_name}", tags={"optuna.study": study.study_name}) as active:
        run_id = active.info.run_id
    study.set_user_attr(PARENT_ATTR, run_id)
    return run_id


def _retried_trial(trial) -> int | None:
    """Number of the dead worker's trial that `trial` retries, or None."""
    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    return frozen.system_attrs.get("failed_trial")


def completed_twin(trial):
    """The first complete trial of the study with exactly `trial`'s parameters, or None."""
    from optuna.trial import TrialState

    for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if other.number != trial.number and other.params == trial.params:
            return other
    return None


def make_objective(config_path: Path, overrides: list[str], spec: TuneSpec, study_name: str, parent: str, tracking_uri: str | None, front):
    optuna = _quiet_optuna()
    from mlflow.tracking import MlflowClient

    maximize = spec.direction == "maximize"

    def objective(trial) -> float:
        trial.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
        values = suggest(trial, spec)
        twin = completed_twin(trial)
        if twin is not None:  # these values ran already: the same seed would train the same model
            trial.set_user_attr(SAME_AS_ATTR, twin.number)
            return twin.value
        config = load_config(config_path, [*overrides, *(f"{k}={json.dumps(v)}" for k, v in values.items())])
        best = trial.user_attrs.get(BEST_ATTR, -math.inf if maximize else math.inf)
        tags = {"mlflow.parentRunId": parent, "optuna.study": study_name, "optuna.trial": str(trial.number)}
        resume = None
        retry_of = _retried_trial(trial)
        if retry_of is not None:  # a dead worker's trial: continue its run from its last checkpoint
            tags["optuna.retry_of"] = str(retry_of)
            run = trial.user_attrs.get(RUN_ATTR)
            if run and (run_dir(config, run) / "last.pt").exists():
                resume = run

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            nonlocal best
            import mlflow

            value = metrics[spec.metric]
            best = max(best, value) if maximize else min(best, value)
            trial.set_user_attr(RUN_ATTR, mlflow.active_run().info.run_id)  # its checkpoint is written
            trial.set_user_attr(BEST_ATTR, best)
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch} ({spec.metric} {value:.4f})")

        client = MlflowClient(tracking.connect(tracking_uri).get_tracking_uri())

        def mark(state: str, error: str | None = None) -> None:
            """Tag the trial's run (found by its tags: it may have failed before any epoch)."""
            found = client.search_runs(
                [tracking.experiment_id(config.name, tracking_uri)],
                filter_string=f"tags.`mlflow.parentRunId` = '{parent}' and tags.`optuna.trial` = '{trial.number}'",
            )
            for run in found:
                client.set_tag(run.info.run_id, "optuna.state", state)
                if error:
                    client.set_tag(run.info.run_id, "error", error[:5000])

        try:
            train_loop(front, config, tracking_uri=tracking_uri, resume=resume, tags=tags, on_epoch=on_epoch, quiet=True)
        except optuna.TrialPruned:
            mark("PRUNED")
            raise
        except Exception as err:
            mark("FAIL", str(err))
            trial.set_user_attr("error", str(err)[:1000])
            raise
        mark("COMPLETE")
        if not math.isfinite(best):
            raise RuntimeError(f"no validation {spec.metric} was reported")
        return best

    return objective


def summarize(study, parent: str, tracking_uri: str | None, spec: TuneSpec) -> dict[str, Any]:
    """Log the best trial and the study's plots on the parent run; return the summary."""
    optuna = _quiet_optuna()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import mlflow

    states = {s.name: sum(t.state == s for t in study.trials) for s in optuna.trial.TrialState}
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    summary: dict[str, Any] = {"study": study.study_name, "trials": len(study.trials), "states": states}
    if complete:
        summary.update(best_value=study.best_value, best_params=study.best_params, best_trial=study.best_trial.number)
    with tracking.run("", uri=tracking_uri, run_id=parent):
        mlflow.log_dict(summary, "study.json")
        if complete:
            mlflow.log_metric(tracking.metric_key(f"best/{spec.metric}"), study.best_value, step=len(study.trials))
        from optuna.visualization import matplotlib as oplot

        plots = {"optimization_history.png": oplot.plot_optimization_history}
        if len(complete) >= 2:
            plots["parallel_coordinates.png"] = oplot.plot_parallel_coordinate
            if len(spec.space) >= 2:
                plots["param_importances.png"] = oplot.plot_param_importances
        for name, plot in plots.items():
            try:
                ax = plot(study)
                fig = (ax[0] if hasattr(ax, "__len__") else ax).figure
                fig.set_size_inches(9, 5)
                fig.tight_layout()
                mlflow.log_figure(fig, name)
                plt.close(fig)
            except (ValueError, RuntimeError):  # e.g. importances need varied completed trials
                continue
    return summary


def tune(
    config_path: Path,
    overrides: list[str] | None = None,
    *,
    storage: str | None = None,
    study_name: str | None = None,
    n_trials: int | None = None,
    workers: int = 1,
    tracking_uri: str | None = None,
    summary: bool = True,
) -> dict[str, Any]:
    """Run (or resume) the study until it holds `n_trials` trials; returns the summary."""
    _quiet_optuna()
    overrides = list(overrides or [])
    config: ExperimentConfig = load_config(config_path, overrides)
    if config.tune is None:
        raise UserError(f"{config_path}: no tune: section (search space, metric, n_trials)")
    spec = config.tune
    front = front_end(config.task, str(config_path))
    check_space(Path(config_path), overrides, spec, front)
    storage = storage or default_storage()
    name = study_name or config.name
    study, created = open_study(storage, name, spec, config.seed)
    parent = parent_run(study, config.name, tracking_uri, created)
    total = n_trials or spec.n_trials
    helpers = [_spawn_worker(config_path, overrides, storage, name, total, tracking_uri) for _ in range(max(workers, 1) - 1)]
    objective = make_objective(Path(config_path), overrides, spec, name, parent, tracking_uri, front)
    deadline = None if spec.timeout is None else time.monotonic() + spec.timeout
    lost: list[str] = []
    while True:
        if not full(study, total):  # the stop callback fires only after a trial: a full study runs none
            optimize(study, objective, total, deadline)
        lost += _reap(helpers)
        if deadline is not None and time.monotonic() >= deadline:
            break
        if not _wait_for_unfinished(study, spec, helpers, lost):
            break
    for proc in helpers:
        proc.wait()
    lost += _reap(helpers)
    result = summarize(study, parent, tracking_uri, spec) if summary else {"study": name}
    if lost:
        result["lost_workers"] = lost
    return result


def optimize(study, objective, total: int, deadline: float | None = None) -> None:
    """Run trials until the study holds `total` (or `time.monotonic()` passes `deadline`), surviving a
    trial failed under this worker.

    On a loaded machine a live worker's heartbeat can miss the grace period; another worker then
    fails its trial as stale and queues a retry. When this worker finishes that trial, Optuna refuses
    to record the result and raises from its loop (a ValueError in Optuna 4; Optuna 5 raises an
    AssertionError from its cleanup). That case is recognised by the storage, not by the error's
    text: the trial this worker last started is FAIL there although its objective never failed
    (a failing objective is caught and recorded by Optuna's loop, which then does not raise). The
    result is dropped with a warning, the retry counts in its place, and the loop goes on instead of
    the worker dying.
    """
    started: list[int] = []

    def tracked(trial):
        started.append(trial.number)
        return objective(trial)

    while True:
        timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        try:
            study.optimize(tracked, callbacks=[StopWhenFull(total)], timeout=timeout, catch=(Exception,), gc_after_trial=True)
            return
        except Exception as err:
            if not _failed_under_us(study, started):
                raise
            print(f"warning: trial {started[-1]} of this worker was failed as stale while it ran ({type(err).__name__}: "
                  f"{err}); its result is dropped and its retry counts instead; raise tune.grace_period if workers "
                  "are this busy", file=sys.stderr)
            if counted(study.get_trials(deepcopy=False)) >= total:
                return


def _failed_under_us(study, started: list[int]) -> bool:
    """Whether the trial this worker started last is FAIL in the storage (failed by another worker)."""
    if not started:
        return False
    from optuna.trial import TrialState

    mine = [t for t in study.get_trials(deepcopy=False) if t.number == started[-1]]
    return bool(mine) and mine[0].state == TrialState.FAIL


def _reap(helpers: list[subprocess.Popen]) -> list[str]:
    """Report each local worker that died (once); the study goes on without it."""
    lost = []
    for proc in helpers:
        if proc.poll() not in (None, 0) and not getattr(proc, "reported", False):
            proc.reported = True  # type: ignore[attr-defined]
            lost.append(f"worker {proc.pid} exited with status {proc.returncode}")
            print(f"warning: tuning worker {proc.pid} exited with status {proc.returncode}; "
                  "its running trial is failed and retried once its heartbeat is stale", file=sys.stderr)
    return lost


def _wait_for_unfinished(study, spec: TuneSpec, helpers, lost: list[str]) -> bool:
    """Once this worker's loop has ended: wait while trials still run; True when one is queued.

    A running trial of a dead worker stops beating: once it is stale, it is failed here and its
    retry queued (WAITING) for this worker to run. False when no trial runs or waits any more.
    """
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    while True:
        fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):
            return True
        # Only trials started with heartbeats (they name their worker) can be judged stale; one
        # left RUNNING by a worker without them is not waited for.
        if not any(t.state == TrialState.RUNNING and WORKER_ATTR in t.user_attrs for t in trials):
            return False
        lost += _reap(helpers)
        time.sleep(min(spec.heartbeat_interval, 5))


def _spawn_worker(config_path, overrides, storage, name, total, tracking_uri) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "itemrec.cli", "tune", str(config_path), *overrides,
           "--storage", storage, "--study", name, "--n-trials", str(total), "--workers", "1", "--no-summary"]
    if tracking_uri:
        cmd += ["--tracking-uri", tracking_uri]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL)


def best_overrides(config_path: Path, study_name: str, storage: str | None = None) -> list[str]:
    """The best trial's values of a study as dotted overrides (for `train --from-study`)."""
    optuna = _quiet_optuna()
    storage = storage or default_storage()
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        raise UserError(f"study {study_name!r}: not found in {storage}") from None
    except Exception as err:
        raise UserError(f"--storage {storage}: cannot open the Optuna storage ({str(err).splitlines()[0]})") from None
    try:
        params = study.best_params
    except ValueError:
        raise UserError(f"study {study_name!r} has no completed trial yet") from None
    return [f"{key}={json.dumps(value)}" for key, value in params.items()]
