"""Epoch time of recommendation training under torchrun with 1 and 2 processes on ml-1m.

    python -m benchmarks.distributed                 # written to benchmarks/RESULTS.md
    python -m benchmarks.distributed --repeats 1 --epochs 2 --no-write

Runs the README's command, `torchrun --standalone --nproc-per-node N -m itemrec train CONFIG`, on
`configs/recsys/ml1m_lightgcn_supap.yaml` (LightGCN 64-d, 3 layers, SupAP, batch 1024 users) with
uniform negatives (the PPR table is built before the first epoch and is not what is compared),
for a few epochs, interleaved: 1 process with all cores as threads, 1 process with one thread, and
2 processes of one thread each (OMP_NUM_THREADS), all on the same cores.
Seconds per epoch come from the run's history (median over its epochs after the first); the
load average is printed with each run, since other processes may share the machine.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.harness import ROOT, command, machine, markdown_table, parser, write_section, writes

CONFIG = ROOT / "configs/recsys/ml1m_lightgcn_supap.yaml"
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
SETTINGS = ((1, 0), (1, 1), (2, 1))
"""(processes, threads per process; 0 = all cores)."""


def one_run(processes: int, threads: int, epochs: int, folder: Path) -> tuple[list[float], float]:
    """Seconds of each epoch of one torchrun launch, and the 1-minute load average after it."""
    runs = folder / f"runs-{processes}-{time.monotonic_ns()}"
    cmd = [TORCHRUN, "--standalone", "--nproc-per-node", str(processes), "-m", "itemrec", "train", str(CONFIG),
           "sampling.negatives=uniform", f"train.epochs={epochs}", f"train.eval_every={epochs}", f"train.run_dir={runs}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
    out = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    last = next(runs.rglob("last.pt"))
    history = torch.load(last, weights_only=True)["history"]
    return [row["epoch_seconds"] for row in history], os.getloadavg()[0]


def table(seconds: dict[tuple[int, int], list[float]], settings: list[tuple[int, int]]) -> str:
    """Median seconds per epoch of each setting, relative to the first."""
    median = {setting: statistics.median(s) for setting, s in seconds.items()}
    rows = [[n, t, f"{median[n, t]:.1f}", len(seconds[n, t]), f"{median[n, t] / median[settings[0]]:.2f}x"] for n, t in settings]
    return markdown_table(["processes", "threads each", "seconds per epoch (median)", "epochs timed", "relative to the first row"], rows, "rrrrr")


def busy_note(loads: list[float], cores: int) -> str:
    """A warning when the load exceeded the cores during the runs (empty otherwise)."""
    if max(loads) <= cores:
        return ""
    return (
        f"\nThe load ({max(loads):.0f} at most) exceeded the {cores} cores: each runnable thread then gets a share of\n"
        "the CPU, so two processes get about twice the share of one, and a process whose threads wait on\n"
        "each other loses most. These ratios say more about that load than about the code; a quiet\n"
        "machine was not available for this run."
    )


def report(text: str, log: list[str], loads: list[float], cores: int, epochs: int, repeats: int) -> str:
    return f"""## Recommendation training under torchrun: 1 and 2 processes on ml-1m

`{command("distributed", "--epochs", epochs, "--repeats", repeats)}`: `torchrun --standalone --nproc-per-node N -m itemrec train
configs/recsys/ml1m_lightgcn_supap.yaml sampling.negatives=uniform`, interleaved: 1 process with {cores} threads, 1 process
with 1 thread, 2 processes with 1 thread each (`OMP_NUM_THREADS`), gloo on CPU; the first epoch of each run is left out.
{machine()}. Load average (1 min) during the runs: {min(loads):.1f} to {max(loads):.1f} on {cores} cores (the machine was
shared with other work, so absolute times are inflated; the settings ran interleaved).

{text}

Each run, in order:
{chr(10).join("- " + line for line in log)}

Every rank propagates the whole graph (forward and backward) and draws the whole batch's rows; it
scores and ranks only its share of the rows, and the gradients are all-reduced. All settings share
the same cores, so the table compares the distributed path with threads on one CPU under this
load, not what more devices bring: that gain comes from ranks on separate GPUs or machines, each
with its own compute, and was not measured here (no GPU on this machine).{busy_note(loads, cores)}
"""


def main() -> None:
    arguments = parser(__doc__, repeats=2)
    arguments.add_argument("--epochs", type=int, default=3, help="epochs per run (default: %(default)s)")
    args = arguments.parse_args()
    cores = len(os.sched_getaffinity(0))
    settings = [(n, t or cores) for n, t in SETTINGS]
    seconds: dict[tuple[int, int], list[float]] = {s: [] for s in settings}
    loads: list[float] = [os.getloadavg()[0]]
    log: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for processes, threads in settings:
                epochs, load = one_run(processes, threads, args.epochs, Path(tmp))
                seconds[processes, threads] += epochs[1:] if len(epochs) > 1 else epochs
                loads.append(load)
                log.append(f"repeat {repeat + 1}, {processes} process(es) x {threads} thread(s): epochs {', '.join(f'{s:.1f}' for s in epochs)} s; load {load:.1f}")
                print(log[-1], flush=True)
    text = table(seconds, settings)
    print(text)
    if writes(args):
        write_section("distributed", report(text, log, loads, cores, args.epochs, args.repeats), args.results)


if __name__ == "__main__":
    main()
