"""One study's cells trained side by side on one machine, one process per cell, within a time budget.

A study (`benchmarks.study_losses`, `benchmarks.study_ranking`, ...) trains its cells one after
another in one process. On a machine with a GPU and many cores, cells that each leave the
device mostly idle (LightGCN on Gowalla with batches of 64 users) finish sooner side by side.
This script splits the study's grid into its cells and runs each as its own study process:

    python -m benchmarks.side_by_side --out runs/side_by_side --processes 5 --budget 540 \\
        study_losses --datasets gowalla --models lightgcn --losses bpr sl psl slk20 --seeds 0
    python -m benchmarks.records merge runs/side_by_side/records     # then, where the records live

Every value of a grid option given after the study's name becomes one cell (`--datasets`,
`--models`, `--losses`, `--seeds`, or the study's own `CELL_OPTIONS`: `study_tuning` tunes a
loss once for all its seeds, so its seeds stay together); the study's other options are passed to
every cell unchanged. Cell `<name>` runs `python -m benchmarks.<study> <options> --quiet
--no-write` with its own MLflow store `OUT/<name>/mlflow.db` (no two processes write one SQLite
file), its own Optuna storage `OUT/<name>/optuna.db` where the study takes `--storage`, its
records beside `OUT/<name>/RESULTS.md` and the checkpoints under `OUT/runs`. At most `--processes` cells run at
once, in the grid's order; each one's output goes to `OUT/<name>/log.txt`.

At `--budget` seconds every cell still training is stopped (SIGTERM, then SIGKILL after
`--grace` seconds). Its run stays in its store with its `last.pt`, so the same command again on
the same machine continues it from its last checkpoint as the same run (`benchmarks.study`), and a
cell that finished is not trained again. Last, the records of every cell are merged into
`OUT/records` (`benchmarks.records.merge`), which is what to bring home: merged into
`benchmarks/records`, a study's next run restores them into its store and reports them.

Interrupted itself (Ctrl-C, SIGTERM), the script stops every cell it started before it exits.
Exit status: 0 when every cell finished, 1 when one failed, 3 when the budget stopped one.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import harness, records
from benchmarks.harness import ROOT, module_env

GRID = ("--datasets", "--models", "--losses", "--seeds")
"""The options whose values a study's grid is the product of; each cell gets one value of each
(unless the study names its own, `CELL_OPTIONS`)."""
OWN = ("--tracking-uri", "--storage", "--results", "--run-dir", "--no-write", "--quiet", "--dry-run", "--report-only")
"""Options this script sets for every cell; given after the study's name, they are refused."""


@dataclass
class Cell:
    name: str
    argv: list[str]


def split_grid(options: list[str], grid_options: tuple[str, ...] = GRID) -> tuple[dict[str, list[str]], list[str]]:
    """The grid options' values (in order) and the other options, from a study's argument list."""
    grid: dict[str, list[str]] = {}
    rest: list[str] = []
    current: list[str] | None = None
    for token in options:
        if token.startswith("--"):
            name, _, value = token.partition("=")
            if name in OWN:
                raise SystemExit(f"side_by_side: {name} is set by this script for each cell; leave it out")
            current = grid.setdefault(name, []) if name in grid_options else None
            if current is None:
                rest.append(token)
            elif value:
                current.append(value)
        elif current is not None:
            current.append(token)
        else:
            rest.append(token)
    for name, values in grid.items():
        if not values:
            raise SystemExit(f"side_by_side: {name} needs at least one value")
    return grid, rest


def cells(study: str, options: list[str], out: Path) -> list[Cell]:
    """One `Cell` per combination of the grid options' values, in the grid's order."""
    module = importlib.import_module(f"benchmarks.{study}")
    grid, rest = split_grid(options, getattr(module, "CELL_OPTIONS", GRID))
    takes_storage = "--storage" in module.arguments()._option_string_actions
    names = list(grid)
    out_cells = []
    for values in itertools.product(*(grid[n] for n in names)):
        name = "_".join(re.sub(r"[^A-Za-z0-9.=-]+", "-", v) for v in values) or "all"
        folder = out / name
        argv = [sys.executable, "-m", f"benchmarks.{study}", *rest]
        for option, value in zip(names, values):
            argv += [option, value]
        argv += ["--tracking-uri", f"sqlite:///{(folder / 'mlflow.db').resolve()}",
                 "--results", str((folder / "RESULTS.md").resolve()),
                 "--run-dir", str((out / "runs").resolve()), "--no-write", "--quiet"]
        if takes_storage:
            argv += ["--storage", f"sqlite:///{(folder / 'optuna.db').resolve()}"]
        out_cells.append(Cell(name, argv))
    return out_cells


def run(jobs: list[Cell], out: Path, processes: int, budget: float, grace: float = 30.0, say=print) -> dict[str, str]:
    """Run `jobs` at most `processes` at a time, each in its own process group with its output in
    `out/<name>/log.txt`; stop those still running at `budget` seconds. Each cell's outcome:
    "finished", "failed (exit N)", "stopped at the budget" or "not started"."""
    start = time.monotonic()
    waiting = list(jobs)
    running: dict[str, tuple[subprocess.Popen, object]] = {}
    outcome: dict[str, str] = {}
    try:
        _loop(waiting, running, outcome, out, processes, budget, grace, say, start)
    except BaseException:  # interrupted (Ctrl-C, SIGTERM): no cell is left running on its own
        _stop_all(running, grace)
        raise
    return {job.name: outcome[job.name] for job in jobs}


def _loop(waiting: list[Cell], running: dict, outcome: dict, out: Path, processes: int, budget: float,
          grace: float, say, start: float) -> None:
    while waiting or running:
        while waiting and len(running) < processes and time.monotonic() - start < budget:
            job = waiting.pop(0)
            (out / job.name).mkdir(parents=True, exist_ok=True)
            log = open(out / job.name / "log.txt", "ab")
            running[job.name] = (subprocess.Popen(job.argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                                  env=module_env(), start_new_session=True), log)
            say(f"started {job.name} ({time.monotonic() - start:.0f} s)")
        for name, (proc, log) in list(running.items()):
            if proc.poll() is not None:
                log.close()
                del running[name]
                outcome[name] = "finished" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
                say(f"{outcome[name]}: {name} ({time.monotonic() - start:.0f} s)")
        if running and time.monotonic() - start >= budget:
            for name in _stop_all(running, grace):
                outcome[name] = "stopped at the budget"
                say(f"stopped at the budget: {name}")
        if waiting and time.monotonic() - start >= budget:
            for job in waiting:
                outcome[job.name] = "not started"
            waiting.clear()
        time.sleep(0.2)


def _stop_all(running: dict, grace: float) -> list[str]:
    """Stop every running cell (`_stop`), close its log, forget it; their names."""
    _stop([proc for proc, _ in running.values()], grace)
    for _, log in running.values():
        log.close()
    names = list(running)
    running.clear()
    return names


def _stop(procs: list[subprocess.Popen], grace: float) -> None:
    for proc in procs:
        _signal(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL)
            proc.wait()


def _signal(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def arguments() -> argparse.ArgumentParser:
    out = harness.parser(__doc__, results=False)
    out.add_argument("--out", type=Path, default=ROOT / "runs" / "side_by_side",
                     help="the folder of the cells' stores, logs, records and checkpoints (default: %(default)s)")
    out.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="cells at once (default: %(default)s)")
    out.add_argument("--budget", type=float, default=float("inf"), help="seconds before the cells still training are stopped")
    out.add_argument("--grace", type=float, default=30.0, help="seconds between SIGTERM and SIGKILL (default: %(default)s)")
    out.add_argument("study", help="the study module under benchmarks/, e.g. study_losses")
    out.add_argument("options", nargs=argparse.REMAINDER, help="the study's options; its grid options are split into cells")
    return out


def _terminated(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through `run`, which stops the cells


def main(argv: list[str] | None = None) -> int:
    args = arguments().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    if not (ROOT / "benchmarks" / f"{args.study}.py").is_file():
        raise SystemExit(f"side_by_side: no study benchmarks/{args.study}.py")
    if args.processes < 1 or args.budget <= 0:
        raise SystemExit("side_by_side: --processes must be >= 1 and --budget > 0")
    jobs = cells(args.study, args.options, args.out)
    print(f"{len(jobs)} cells, {min(args.processes, len(jobs))} at once, under {args.out}")
    outcome = run(jobs, args.out, args.processes, args.budget, args.grace)
    merged = {}
    for job in jobs:
        for study, count in records.merge(args.out / job.name / "records", args.out / "records").items():
            merged[study] = merged.get(study, 0) + count
    for name, result in outcome.items():
        print(f"{name}: {result}")
    print(f"records in {args.out / 'records'}: " + (", ".join(f"{s} {n}" for s, n in merged.items()) or "none"))
    if any(r.startswith("failed") for r in outcome.values()):
        return 1
    return 3 if any(r != "finished" for r in outcome.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
