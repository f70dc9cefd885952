"""What one training batch of a recommendation config costs on this machine's device, with the
batch's sampled rows made ahead in a background thread and in line (the sampling and the
training step one after the other), and what that makes an epoch and a run. Training makes them
ahead on an accelerator and in line on the CPU (`itemrec.recsys.train.rows_ahead`); the report
marks the way training takes here. A third way times training's way with the model asked for
every row (`model()`) instead of the batch's rows (`model(users, items)`: LightGCN then
propagates its last layer for those rows alone), the same numbers at the cost before that change.

    python -m benchmarks.step_time                   # Gowalla, LightGCN + SL; writes its section
    python -m benchmarks.step_time --config configs/recsys/irb/gowalla_lightgcn_slk20.yaml --no-write
    python -m benchmarks.step_time --quick           # 20 batches a round, prints only

The session is the one `itemrec train` builds from the config (its data, model, sampler, loss and
optimizer, seeded the same way) on `--device` (default: the config's). Each of `--rounds` rounds
times the first `--batches` batches of an epoch once with the rows made ahead and once in line,
the two in alternating order, after `--warmup` untimed batches; the medians over rounds are
reported, with the validation pass (full ranking of the validation users) and the estimates
`epoch = batches per epoch × seconds per batch + validation / eval_every` and `run = epochs ×
epoch` (the run's checkpoints not counted). Last, torch's profiler over `--profile` batches gives
the device time, the host (CPU) time and the kernel launches per batch: when the host time per
batch exceeds the device time, the step is bound by launching work, not by doing it.

The section is per device kind (`step-time-cpu`, `step-time-cuda`), so a GPU run and a CPU run
each keep theirs; a config other than the default adds its name (`step-time-cpu-gowalla_lightgcn_bpr`).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

import itemrec.frontends  # noqa: F401  (registers the front ends that configs are validated by)
from benchmarks.harness import ROOT, command, machine, markdown_table, parser, publish, shown
from benchmarks.speed_reference import TIMED_EPOCH, build_session, first_batches
from itemrec.experiment.runtime import progress
from itemrec.recsys import train as train_module

CONFIG = ROOT / "configs" / "recsys" / "irb" / "gowalla_lightgcn_sl.yaml"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def per_batch(session, device: torch.device, ahead: bool, batches: int, every_row: bool = False) -> float:
    """Seconds per batch over the first `batches` of an epoch, the rows made ahead or in line;
    with `every_row`, the model computes every row of its representations (`model()`)."""
    original = train_module.rows_ahead
    train_module.rows_ahead = lambda _: ahead
    model = session.model
    if every_row:  # an instance attribute: the class's forward stays as it is
        model.forward = lambda users=None, items=None: type(model).forward(model)
    try:
        with first_batches(batches):
            synchronize(device)
            start = time.perf_counter()
            session.train_epoch(TIMED_EPOCH, progress())
            synchronize(device)
    finally:
        train_module.rows_ahead = original
        model.__dict__.pop("forward", None)
    return (time.perf_counter() - start) / batches


def profile(session, device: torch.device, batches: int) -> dict[str, float]:
    """Device seconds, host seconds and kernel launches per batch, from torch's profiler."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profiler(activities=activities) as prof, first_batches(batches):
        session.train_epoch(TIMED_EPOCH, progress())
        synchronize(device)
    events = prof.key_averages()
    host = sum(e.self_cpu_time_total for e in events) / 1e6
    on_device = sum(getattr(e, "self_device_time_total", 0.0) for e in events) / 1e6
    launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cudaLaunchKernelExC"))
    return {"host": host / batches, "device": on_device / batches, "launches": launches / batches}


def measure(args) -> dict:
    session = build_session(args.config, [f"device={args.device}"] if args.device else [])
    device = next(session.model.parameters()).device
    config = session.config
    total = len(train_module.epoch_batches(session.data, session.positives, config, torch.Generator().manual_seed(0)))
    n = 20 if args.quick else args.batches
    per_batch(session, device, True, args.warmup)
    training = train_module.rows_ahead(device)
    ways = {"ahead": (True, False), "line": (False, False), "every_row": (training, True)}
    times: dict[str, list[float]] = {way: [] for way in ways}
    for r in range(args.rounds):
        names = list(ways)[r % 3:] + list(ways)[:r % 3]  # each round starts one way later
        for name in names:
            ahead, every_row = ways[name]
            times[name].append(per_batch(session, device, ahead, n, every_row))
    validation = []
    for _ in range(3):
        synchronize(device)
        start = time.perf_counter()
        session.validate(TIMED_EPOCH, progress())
        synchronize(device)
        validation.append(time.perf_counter() - start)
    return {
        "config": shown(Path(args.config)), "device": str(device), "batches_per_epoch": total, "batches": n,
        **times, "validation": statistics.median(validation), "training_ahead": training,
        "eval_every": config.train.eval_every, "epochs": config.train.epochs,
        "profile": profile(session, device, 10 if args.quick else args.profile),
    }


def report(m: dict, argv: list[str]) -> str:
    per_epoch_validation = m["validation"] / m["eval_every"]
    rows = []
    training = "made ahead" if m["training_ahead"] else "in line"
    ways = (("made ahead", m["ahead"], True), ("in line", m["line"], False),
            (f"{training}, every row propagated", m["every_row"], None))
    for name, values, ahead in ways:
        name += " (training's way here)" if ahead == m["training_ahead"] else ""
        batch = statistics.median(values)
        epoch = m["batches_per_epoch"] * batch + per_epoch_validation
        rows.append([name, f"{batch * 1e3:.2f}", ", ".join(f"{v * 1e3:.2f}" for v in values), f"{epoch:.1f}",
                     f"{m['epochs'] * epoch / 60:.1f}"])
    speedup = statistics.median(m["line"]) / statistics.median(m["ahead"])
    own = statistics.median(m["ahead"] if m["training_ahead"] else m["line"])
    rows_speedup = statistics.median(m["every_row"]) / own
    p = m["profile"]
    launches = f"{p['launches']:.0f}" if m["device"].startswith("cuda") else "—"
    return "\n".join([
        f"## One training batch on the {m['device'].split(':')[0].upper()}: rows made ahead or in line"
        + ("" if m["config"] == shown(CONFIG) else f" ({Path(m['config']).stem})"),
        "",
        f"Command: `{command('step_time', *argv)}`",
        "",
        f"Machine: {machine()}",
        "",
        f"Config `{m['config']}` on `{m['device']}`: {m['batches_per_epoch']:,} batches per epoch, "
        f"{m['epochs']} epochs, validation every {m['eval_every']}; {m['batches']} timed batches per round.",
        "",
        markdown_table(["rows of a batch", "ms per batch (median)", "each round, ms", "epoch estimate, s",
                        "run estimate, min"], rows, "lrrrr"),
        "",
        f"Seconds per batch in line over made ahead: **{speedup:.2f}×** (above 1, making the rows ahead is "
        f"faster). Every row propagated over the batch's rows: **{rows_speedup:.2f}×** (the same numbers; "
        f"above 1, asking the model for the batch's rows alone is faster). Validation (full ranking of the "
        f"validation users): {m['validation']:.2f} s. Profiler, per batch: host {p['host'] * 1e3:.2f} ms, "
        f"device {p['device'] * 1e3:.2f} ms, kernel launches {launches}.",
    ])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = parser(__doc__, quick="20 timed batches a round, 10 profiled; prints only")
    out.add_argument("--config", type=Path, default=CONFIG, help="a recommendation config (default: %(default)s)")
    out.add_argument("--device", default=None, help="cpu, cuda, ... (default: the config's)")
    out.add_argument("--batches", type=int, default=100, help="timed batches per round (default: %(default)s)")
    out.add_argument("--rounds", type=int, default=2, help="rounds (default: %(default)s)")
    out.add_argument("--warmup", type=int, default=10, help="untimed batches first (default: %(default)s)")
    out.add_argument("--profile", type=int, default=20, help="batches under the profiler (default: %(default)s)")
    args = out.parse_args(argv)
    m = measure(args)
    section = f"step-time-{m['device'].split(':')[0]}"
    if Path(args.config).resolve() != CONFIG:  # another config keeps its own section
        section += f"-{Path(args.config).stem}"
    publish(section, report(m, argv), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
