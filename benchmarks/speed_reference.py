"""Training speed against the SL@K paper's reference code: LightGCN + SL on IR-Benchmark, same CPU.

The reference is the public benchmark code of the SL@K paper (`Tiny-Snow/IR-Benchmark-SLatK`,
GPL-3.0), checked out by hand somewhere outside this repository and named with `--reference`;
none of its code is in this repository. It runs in its own process (its package is also named
`itemrec`): a small driver, written by this script into a temporary folder at run time, puts the
checkout first on the path, drops this project's editable-install finder, checks that `itemrec`
is the checkout's, and drives the reference's own objects: `IRDataset` (its 10 % validation
split), `IRDataLoader` (shuffled, `num_workers=0`, its C++ negative sampler built by cppimport),
`LightGCNModel(norm=True)` and `SoftmaxOptimizer.step`, exactly as its training loop calls them.
The data it reads (`<name>/proc/train.tsv`, `test.tsv`) is extracted from the IR-Benchmark
mirror zip (`--mirror`, default `$ITEMREC_MIRROR` or `../shared/datasets/ir-benchmark`).

itemrec runs in this process, through the code `itemrec train` runs: the session the front end
builds from `configs/recsys/irb/<dataset>_lightgcn_sl.yaml` (`RecsysSession`) and its
`train_epoch`, with the epoch's batch list cut to the first warm-up + timed batches. The protocol
of both sides comes from that config: LightGCN, 64-d, 2 layers, cosine scores, SL (negatives
only in the normaliser) with its τ, 1,000 uniform negatives, Adam lr 0.1; both use `--threads`
torch threads (default: the cores). The batches are the reference's, 1,024 (user, positive) pairs
each with its own negatives (`PAIR_BATCHES` overrides the configs' batches of 64 users, whose
rows share negatives among a user's positives: a like-for-like step, not the configs' cheaper one).

A full Gowalla epoch takes far longer than a few minutes here, so each side times `--batches`
training steps (negative sampling + forward + backward + optimizer step; no evaluation) after
`--warmup` untimed ones, per round; the rounds alternate (the reference, then itemrec's SL,
BSL, PSL and SL@20, each round starting one loss later) and the median over rounds of each
side's mean seconds per batch is scaled to that side's batches per epoch, on wall or CPU time
(`--clock`: CPU time, at one thread, is what to compare on a machine other jobs share). The
second table is itemrec alone: SL, BSL, PSL and SL@20 (`<dataset>_lightgcn_{sl,bsl,psl,slk20}.yaml`),
with SL@K's β refresh (timed once per round) amortised over its refresh period T_β and added to
its epoch, and each loss's ratio to SL against the 1.3× bound.

Both sides' torch thread counts are read back after the timed rounds and printed. One untimed
batch of each itemrec session runs first and torch's count is set again after it (`prime`):
before `itemrec.recsys.parallel`, numba's first OpenMP launch raised the count to the cores.

The script prints `timing: start` and `timing: end` around the timed rounds (setup before them
can take a minute), so a wrapper can quiet the machine for exactly that span.

    python -m benchmarks.speed_reference --reference /path/to/IR-Benchmark-SLatK
    python -m benchmarks.speed_reference --reference /path/to/IR-Benchmark-SLatK --batches 8 --rounds 3
    python -m benchmarks.speed_reference --reference /path/to/IR-Benchmark-SLatK --threads 1 --clock cpu
    python -m benchmarks.speed_reference --reference /path/to/IR-Benchmark-SLatK --dataset health --quick
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from benchmarks.harness import (
    ROOT,
    command,
    load_average,
    machine,
    markdown_table,
    parser,
    publish,
)
from benchmarks.reference_driver import (  # noqa: F401  (re-exported for the tests)
    DRIVER_SOURCE,
    MARK,
    REFERENCE_COMMIT,
    REFERENCE_REPO,
    ReferenceDriver,
    Segment,
    check_reference,
    extract_split,
    mirror_folder,
    reference_commit,
)

SECTION = "speed-reference"
DATASETS = {"gowalla": "gowalla", "health": "amazon2014-health", "electronic": "amazon2014-electronic"}
"""Config prefix -> IR-Benchmark folder (the mirror's `<folder>.zip`)."""
TITLES = {"gowalla": "Gowalla", "health": "Amazon2014-Health", "electronic": "Amazon2014-Electronic"}
"""Config prefix -> the dataset's name in the reports."""
LOSSES = {"sl": "SL", "bsl": "BSL", "psl": "PSL", "slk20": "SL@20"}
"""Config suffix -> name in the tables; `sl` first, the others' ratios are to it."""
LOSS_NAMES = {**LOSSES, "best_ranking": "Log-DCG@20 + SL@20"}
"""Every loss the itemrec tables may hold: `LOSSES` (timed by both scripts) and the best ranking
loss's config (`<dataset>_lightgcn_best_ranking.yaml`, timed by `loss_epochs`)."""
BOUND = 1.3
"""A loss's epoch may cost at most this many SL epochs."""


# --------------------------------------------------------------------------- helpers


def median_per_batch(segments: Sequence[Segment], cpu: bool = False) -> float:
    """The median over rounds of each round's mean seconds per batch (wall, or CPU with `cpu`)."""
    if not segments:
        raise ValueError("no timed rounds")
    return statistics.median(s.cpu_per_batch if cpu else s.per_batch for s in segments)


def epoch_estimate(per_batch: float, batches_per_epoch: int, per_epoch: float = 0.0) -> float:
    """Seconds of one epoch's training steps: `per_batch` × its batches, plus `per_epoch` (work
    done once an epoch, already amortised: SL@K's β refresh divided by T_β)."""
    return per_batch * batches_per_epoch + per_epoch


def ratio_row(name: str, epoch: float, base: float, bound: float = BOUND) -> tuple[str, str, str]:
    """`(name, "1.07×", "yes")`: the epoch's ratio to the base (SL) epoch and whether it is within `bound`."""
    ratio = epoch / base
    return name, f"{ratio:.2f}×", "yes" if ratio <= bound else "**no**"


class StampBar:
    """Stands in for the training loop's progress display: `train_epoch` calls `update` once after
    each optimizer step, so the time between calls is one batch (sampling + forward + backward +
    step). `add_task` starts the clock."""

    def __init__(self, wall=time.perf_counter, cpu=time.process_time) -> None:
        self._wall, self._cpu = wall, cpu
        self.stamps: list[tuple[float, float]] = []

    def add_task(self, *args, **kwargs) -> int:
        self.stamps = [(self._wall(), self._cpu())]
        return 0

    def update(self, *args, **kwargs) -> None:
        self.stamps.append((self._wall(), self._cpu()))

    def remove_task(self, *args, **kwargs) -> None:
        pass

    def segment(self, warmup: int, loss: float = math.nan) -> Segment:
        """The batches after the first `warmup` as a `Segment`."""
        steps = list(zip(self.stamps, self.stamps[1:]))[warmup:]
        if not steps:
            raise ValueError(f"no batch after {warmup} warm-up batches ({len(self.stamps) - 1} in all)")
        return Segment(tuple(b[0] - a[0] for a, b in steps), tuple(b[1] - a[1] for a, b in steps), loss)


def rotated(items: list, r: int) -> list:
    """`items` starting at position `r` (mod its length), wrapping around."""
    k = r % len(items) if items else 0
    return items[k:] + items[:k]


@contextlib.contextmanager
def first_batches(n: int) -> Iterator[None]:
    """Within the block, `itemrec.recsys.train.train_epoch` runs over the first `n` batches of its
    epoch's (shuffled) batch list only; everything else in the epoch is the unchanged code."""
    from itemrec.recsys import train as train_module

    original = train_module.epoch_batches

    def first(*args, **kwargs):
        return original(*args, **kwargs)[:n]

    train_module.epoch_batches = first
    try:
        yield
    finally:
        train_module.epoch_batches = original


# --------------------------------------------------------------------------- itemrec side


def config_path(dataset: str, loss: str) -> Path:
    return ROOT / "configs" / "recsys" / "irb" / f"{dataset}_lightgcn_{loss}.yaml"


def build_session(path: Path, overrides: Sequence[str]):
    """The session `itemrec train` builds for `path` with `overrides` (seeded the same way), on the
    config's device."""
    import itemrec.frontends  # noqa: F401  (registers the front ends that configs are validated by)
    from itemrec.experiment import distributed
    from itemrec.experiment.config import load_config
    from itemrec.experiment.runtime import resolve_device, seed_everything
    from itemrec.recsys.frontend import FRONT_END

    config = load_config(path, list(overrides))
    FRONT_END.check(config)
    generator = seed_everything(config.seed)
    return FRONT_END.build(config, resolve_device(config.device), distributed.SINGLE, generator, True)


def batches_per_epoch(session) -> int:
    """How many batches one epoch of `session` passes over."""
    import torch

    from itemrec.recsys import train as train_module

    return len(train_module.epoch_batches(session.data, session.positives, session.config, torch.Generator().manual_seed(0)))


TIMED_EPOCH = 2
"""The epoch number the timed batches run as: not a β-refresh epoch of SL@K (epochs 1, 1 + T_β, ...)."""


def time_ours(session, warmup: int, batches: int) -> Segment:
    bar = StampBar()
    with first_batches(warmup + batches):
        loss = session.train_epoch(TIMED_EPOCH, bar)
    return bar.segment(warmup, loss)


def time_refresh(session) -> tuple[float, float]:
    """Wall and CPU seconds of one SL@K β refresh (propagation + every user's threshold), as the
    start of a refresh epoch runs it."""
    wall, cpu = time.perf_counter(), time.process_time()
    session.quantiles.maybe_refresh(1, session._vectors, session.generator)
    return time.perf_counter() - wall, time.process_time() - cpu


def time_round(sessions: dict, ours: dict, r: int, warmup: int, batches: int) -> list[str]:
    """Round `r` of the itemrec sessions (each round starting one loss later: drift in load hits
    them alike): SL@K's β refresh timed once, then `batches` steps after `warmup`, appended to
    `ours[key]`; one `"<loss> <wall> (<cpu> CPU)"` per loss for the progress line."""
    line = []
    for key in rotated(list(sessions), r):
        if "refresh" in ours[key]:
            ours[key]["refresh"].append(time_refresh(sessions[key]))
        ours[key]["segments"].append(time_ours(sessions[key], warmup, batches))
        last = ours[key]["segments"][-1]
        line.append(f"{LOSS_NAMES[key]} {last.per_batch:.3f} ({last.cpu_per_batch:.3f} CPU)")
    return line


def timing_arguments(arguments, batches: int, rounds: int, side: str):
    """The flags `speed_reference` and `loss_epochs` share (`side`: what each timed part is, in the help)."""
    arguments.add_argument("--dataset", default="gowalla", choices=list(DATASETS), help="IR-Benchmark dataset (default: %(default)s)")
    arguments.add_argument("--batches", type=int, default=batches, help=f"timed training steps per {side} and round (default: %(default)s)")
    arguments.add_argument("--warmup", type=int, default=2, help="untimed steps before them (default: %(default)s)")
    arguments.add_argument("--rounds", type=int, default=rounds, help="alternated rounds (default: %(default)s)")
    arguments.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads (default: the cores, %(default)s)")
    arguments.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                           help="clock of the estimates, ratios and the bound check (default: %(default)s; cpu: for one thread "
                                "on a machine that other jobs share)")
    arguments.add_argument("--note", default="", help="a sentence appended to the load line (e.g. what else ran)")
    arguments.add_argument("--mirror", help="folder of the IR-Benchmark archives (default: $ITEMREC_MIRROR, else ../shared/datasets/ir-benchmark)")
    return arguments


def prime(sessions: dict, threads: int) -> None:
    """One untimed batch of each session, then torch's thread count set again: numba's OpenMP
    layer, on the first launch of the propagation kernel in a process, sets the process's OpenMP
    thread count to `NUMBA_NUM_THREADS` (the cores), which torch then reports and uses; set again
    after that launch, it stays."""
    import torch

    for session in sessions.values():
        time_ours(session, 0, 1)
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- report


def fmt(x: float, digits: int = 3) -> str:
    return f"{x:,.{digits}f}"


def significant(x: float) -> str:
    """Whole numbers from 100 on (`1,234`), three significant digits below (`65.4`, `0.0112`)."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def plural(n: int, noun: str) -> str:
    """`1 round`, `3 rounds`."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def loss_rows(run: dict) -> list[list[str]]:
    """The second table's rows: each loss's seconds per batch (wall, CPU), its amortised β refresh,
    epoch estimate on the run's clock, and its ratio to SL on both clocks."""
    ours, cpu = run["ours"], run["clock"] == "cpu"

    def epoch(entry: dict, on_cpu: bool) -> tuple[float, float]:
        refresh = statistics.median(r[1 if on_cpu else 0] for r in entry["refresh"]) if entry.get("refresh") else 0.0
        amortised = refresh / entry["refresh_every"] if entry.get("refresh") else 0.0
        return epoch_estimate(median_per_batch(entry["segments"], cpu=on_cpu), entry["batches_per_epoch"], amortised), refresh

    base, base_other = epoch(ours["sl"], cpu)[0], epoch(ours["sl"], not cpu)[0]
    rows = []
    for key, name in LOSS_NAMES.items():
        if key not in ours:
            continue
        entry = ours[key]
        (seconds, refresh), other = epoch(entry, cpu), epoch(entry, not cpu)[0]
        _, ratio, within = ratio_row(name, seconds, base)
        amortised = f"{fmt(refresh, 2)} s / {entry['refresh_every']} = {fmt(refresh / entry['refresh_every'], 2)}" if entry.get("refresh") else ""
        rows.append([
            name, f"`{config_path(run['dataset'], key).name}`", fmt(median_per_batch(entry["segments"])),
            fmt(median_per_batch(entry["segments"], cpu=True)), amortised, significant(seconds), ratio, within,
            f"{other / base_other:.2f}×", ", ".join(significant(s.cpu_per_batch if cpu else s.per_batch) for s in entry["segments"]),
        ])
    return rows


def loss_table(run: dict) -> list[str]:
    """The losses' table (`loss_rows`) and the load line under it, as report lines."""
    clock, other = ("CPU", "wall") if run["clock"] == "cpu" else ("wall", "CPU")
    return [
        markdown_table(
            ["loss", "config", "wall s per batch (median)", "CPU s per batch", f"β refresh, {clock} s / T_β",
             "epoch estimate, s", "ratio to SL", f"≤ {BOUND}×", f"ratio to SL, {other}", f"each round, {clock} s per batch"],
            loss_rows(run),
        ),
        "",
        f"Load average (1 / 5 / 15 min): {run['load_start']} at the start of the timed rounds, {run['load_end']} at the end; "
        f"timed rounds {run['timed_seconds']:.0f} s in all{run['note']}.",
    ]


def report(run: dict) -> str:
    ref, ours, cpu = run["reference"], run["ours"], run["clock"] == "cpu"
    sl = ours["sl"]
    clock, other = ("CPU", "wall") if cpu else ("wall", "CPU")
    ref_batch, our_batch = median_per_batch(ref["segments"], cpu=cpu), median_per_batch(sl["segments"], cpu=cpu)
    ref_other, our_other = median_per_batch(ref["segments"], cpu=not cpu), median_per_batch(sl["segments"], cpu=not cpu)
    ref_epoch = epoch_estimate(ref_batch, ref["batches_per_epoch"])
    our_epoch = epoch_estimate(our_batch, sl["batches_per_epoch"])
    rounds, n = run["rounds"], run["batches"]

    def per_round(segments: list[Segment]) -> str:
        return ", ".join(f"{s.cpu_per_batch if cpu else s.per_batch:.2f}" for s in segments)

    lines = [
        f"## Speed: itemrec against the benchmark's reference code (LightGCN + SL, {run['dataset_title']})",
        "",
        f"Command: `{run['command']}`",
        "",
        f"Machine: {run['machine']}",
        "",
        f"Reference: `{REFERENCE_REPO}` at commit `{run['commit']}` (GPL-3.0), a separate checkout run unmodified in its own "
        "process; this repository holds none of its code. Driven through its own `IRDataset` (its 10 % validation split, "
        f"seed {run['seed']}), `IRDataLoader` (shuffled, `num_workers=0`, negatives from its C++ sampler built by cppimport: "
        f"{'yes' if ref['cpp_sampling'] else 'no'}), `LightGCNModel(norm=True)` and `SoftmaxOptimizer.step`; NNI, which its "
        "experiment helpers import, is stubbed where it is not installed (the training steps never call it).",
        "",
        f"Protocol (both sides, from `configs/recsys/irb/{run['dataset']}_lightgcn_sl.yaml`): LightGCN {run['dim']}-d, "
        f"{run['layers']} layers, cosine scores, SL with τ {run['tau']} (negatives only in the normaliser), batches of "
        f"{run['batch_size']:,} (user, positive) pairs each with {run['negatives']:,} uniform negatives, Adam lr {run['lr']}, "
        f"weight decay {run['weight_decay']}; CPU, **{run['threads']} torch thread{'' if run['threads'] == 1 else 's'} on "
        f"each side** (read back after the timed rounds: reference {run['reference_threads']}, itemrec {run['our_threads']}).",
        "",
        f"Data: reference {ref['users']:,} users, {ref['items']:,} items, {ref['train_pairs']:,} training pairs "
        f"({ref['batches_per_epoch']} batches per epoch; its setup took {ref['setup_seconds']:.0f} s); itemrec "
        f"{sl['users']:,} users, {sl['items']:,} items, {sl['train_pairs']:,} training pairs ({sl['batches_per_epoch']} "
        "batches per epoch). The two validation splits are drawn differently (each side's own), of the same size.",
        "",
        f"**Extrapolated, not a full epoch**: each round times {plural(n, 'consecutive training step')} per side (negative "
        f"sampling + forward + backward + optimizer step; no evaluation) after {plural(run['warmup'], 'untimed warm-up step')}; "
        f"{plural(rounds, 'round')} alternate the reference, then itemrec's SL, BSL, PSL and SL@20 (each round starting one loss later), in one run; "
        f"the median over rounds of each side's mean {clock} seconds per batch is multiplied by that side's batches per "
        f"epoch. Clock of the estimates and ratios: **{clock} time** (`--clock {run['clock']}`)"
        + (
            "; at one thread a process's CPU time is the work it did, whatever share of the cores other jobs took "
            "meanwhile, which wall time is not." if cpu else "."
        ),
        "",
        markdown_table(
            ["system", f"{clock} s per batch (median)", f"{other} s per batch", "epoch estimate, s",
             "mean loss of the timed batches", f"each round, {clock} s per batch"],
            [
                ["reference (IR-Benchmark-SLatK)", fmt(ref_batch), fmt(ref_other), fmt(ref_epoch, 0),
                 f"{statistics.fmean(s.loss for s in ref['segments']):.3f}", per_round(ref["segments"])],
                ["itemrec", fmt(our_batch), fmt(our_other), fmt(our_epoch, 0),
                 f"{statistics.fmean(s.loss for s in sl['segments']):.3f}", per_round(sl["segments"])],
            ],
        ),
        "",
        f"Ratio itemrec / reference: **{our_batch / ref_batch:.3f}× per batch, {our_epoch / ref_epoch:.3f}× per epoch** "
        f"({clock} time; the reference {ref_batch / our_batch:.1f}× slower per batch; {other} time {our_other / ref_other:.3f}×). "
        f"Of the reference's {fmt(median_per_batch(ref['segments']))} wall s per batch, "
        f"{fmt(statistics.median(run['reference_sampling']))} s is its negative sampling and batch assembly (median over rounds).",
        "",
        f"itemrec alone, LightGCN on {run['dataset_title']}, the same rounds: each loss's epoch against SL's on {clock} time "
        f"(bound {BOUND}×; the {other}-time ratio beside it).",
        "",
        *loss_table(run),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    arguments = parser(__doc__, quick="1 round of 2 timed batches after 1 warm-up; printed, nothing written")
    arguments.add_argument("--reference", type=Path, required=True, help="checkout of Tiny-Snow/IR-Benchmark-SLatK (outside this repository)")
    timing_arguments(arguments, batches=8, rounds=3, side="side")
    args = arguments.parse_args(argv)
    if args.quick:
        args.batches, args.warmup, args.rounds = 2, 1, 1
    reference = args.reference.resolve()
    if not (reference / "itemrec" / "optimizer" / "optim_Softmax.py").is_file():
        raise SystemExit(f"{reference} is not a checkout of {REFERENCE_REPO}")
    if ROOT in (reference, *reference.parents):
        raise SystemExit(f"{reference} is inside this repository: keep the reference checkout outside it")
    mirror = mirror_folder(args.mirror)
    os.environ.setdefault("ITEMREC_MIRROR", str(mirror))  # itemrec reads the same archives offline

    import torch

    from benchmarks.study_losses import (
        PAIR_BATCHES,  # the benchmark's batches of (user, positive) pairs
    )

    torch.set_num_threads(args.threads)

    folder_name = DATASETS[args.dataset]
    sessions = {}
    for key in LOSSES:
        print(f"building itemrec session: {config_path(args.dataset, key).name}", file=sys.stderr, flush=True)
        sessions[key] = build_session(config_path(args.dataset, key), ["device=cpu", *PAIR_BATCHES])
    prime(sessions, args.threads)
    config = sessions["sl"].config
    spec = {
        "threads": args.threads, "seed": config.seed, "batch_size": config.train.batch_size,
        "negatives": config.sampling.negatives_per_row, "dim": config.model.dim, "layers": config.model.layers,
        "lr": config.train.lr, "weight_decay": config.train.weight_decay, "tau": config.loss.temperature,
    }
    ours: dict[str, dict] = {}
    for key, session in sessions.items():
        ours[key] = {
            "segments": [], "batches_per_epoch": batches_per_epoch(session), "users": session.data.n_users,
            "items": session.data.n_items, "train_pairs": int(session.positives.counts(torch.as_tensor(session.data.train_users)).sum()),
        }
        if session.quantiles is not None:
            ours[key].update(refresh=[], refresh_every=session.quantiles.refresh_every)

    with tempfile.TemporaryDirectory(prefix="speed-reference-") as tmp:
        data = extract_split(mirror / f"{folder_name}.zip", Path(tmp), folder_name)
        print("starting the reference driver (its setup builds its graph in Python)", file=sys.stderr, flush=True)
        driver = ReferenceDriver(reference, {**spec, "data": str(data)}, Path(tmp))
        try:
            ready = driver.ready
            if not ready["cpp_sampling"]:
                raise SystemExit("the reference fell back to its Python sampler: its C++ sampler did not build (cppimport, pybind11, g++)")
            print(f"reference: itemrec from {ready['itemrec']}, {ready['batches_per_epoch']} batches per epoch, "
                  f"setup {ready['setup_seconds']:.0f} s", file=sys.stderr, flush=True)
            ref = {**ready, "segments": []}
            sampling: list[float] = []
            print("timing: start", flush=True)
            load_start, started = load_average(), time.perf_counter()
            for r in range(args.rounds):
                segment, sampled, reference_threads = driver.time(args.warmup, args.batches)
                ref["segments"].append(segment)
                sampling.append(sampled)
                line = [f"round {r + 1}: reference {segment.per_batch:.3f} ({segment.cpu_per_batch:.3f} CPU)"]
                line += time_round(sessions, ours, r, args.warmup, args.batches)
                print(", ".join(line) + " s per batch", flush=True)
            timed, load_end = time.perf_counter() - started, load_average()
            print("timing: end", flush=True)
        finally:
            driver.close()
    our_threads = torch.get_num_threads()
    if our_threads != args.threads or reference_threads != args.threads:
        print(f"warning: torch threads after timing: itemrec {our_threads}, reference {reference_threads} "
              f"(asked {args.threads})", file=sys.stderr, flush=True)

    run = {
        "dataset": args.dataset, "dataset_title": TITLES[args.dataset],
        "command": command("speed_reference", "--reference", "PATH", "--dataset", args.dataset, "--batches", args.batches,
                           "--warmup", args.warmup, "--rounds", args.rounds, "--threads", args.threads, "--clock", args.clock),
        "machine": machine(), "commit": reference_commit(reference), "threads": args.threads, "rounds": args.rounds,
        "batches": args.batches, "warmup": args.warmup, "reference": ref, "ours": ours, "reference_sampling": sampling,
        "load_start": load_start, "load_end": load_end, "timed_seconds": timed, "clock": args.clock,
        "reference_threads": reference_threads, "our_threads": our_threads,
        "note": f"; {args.note.rstrip('.')}" if args.note else "", **spec,
    }
    publish(SECTION, report(run), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
