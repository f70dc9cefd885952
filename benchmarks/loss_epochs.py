"""Each loss's training epoch against SL's, in the configs' own batches (IR-Benchmark, LightGCN).

`benchmarks.speed_reference` compares the losses in the reference code's batches of (user,
positive) pairs, each pair with its own negatives, to run like for like with that code. The
configs train on batches of 64 users instead (`sampling.unit: user`), each row holding every
positive of its user (up to 1,024) and negatives shared by them, and there the losses cost
differently: SL and BSL factor over a row's shared negatives, while PSL builds one `[N]` row per
(user, positive) pair. This script times `configs/recsys/irb/<dataset>_lightgcn_{sl,bsl,psl,slk20,best_ranking}.yaml`
as `itemrec train` runs them (the session the front end builds, its `train_epoch` cut to the first
warm-up + timed batches of an epoch), in alternated rounds (each round starting one loss later),
and reports each loss's epoch estimate against SL's with the 1.3× bound, SL@K's β refresh amortised
over its T_β as in `speed_reference` (SL@20's and the best ranking loss's, Log-DCG@20 + SL@20).

    python -m benchmarks.loss_epochs --dataset gowalla --threads 1 --clock cpu
    python -m benchmarks.loss_epochs --dataset health --quick
"""

from __future__ import annotations

import os
import sys
import time

from benchmarks.harness import command, load_average, machine, parser, publish
from benchmarks.reference_driver import mirror_folder
from benchmarks.speed_reference import (
    LOSS_NAMES,
    TITLES,
    batches_per_epoch,
    build_session,
    config_path,
    loss_table,
    prime,
    time_round,
    timing_arguments,
)


def report(run: dict) -> str:
    clock = "CPU" if run["clock"] == "cpu" else "wall"
    sl = run["ours"]["sl"]
    wider = [f"{o['negatives']:,} in `{run['dataset']}_lightgcn_{key}.yaml`" for key, o in run["ours"].items()
             if o["negatives"] != run["negatives"]]
    return "\n".join([
        f"## Each loss's epoch against SL's, in the configs' batches of users (LightGCN, {TITLES[run['dataset']]})",
        "",
        f"Command: `{run['command']}`",
        "",
        f"Machine: {run['machine']}",
        "",
        f"The configs `configs/recsys/irb/{run['dataset']}_lightgcn_<loss>.yaml` as `itemrec train` runs them on the CPU "
        f"(batches of {run['batch_size']} users, each row the user's positives, up to {run['positives']:,}, and "
        f"{run['negatives']:,} shared negatives{''.join(', ' + w for w in wider)}; {sl['batches_per_epoch']} batches per epoch), {run['threads']} torch "
        f"thread{'' if run['threads'] == 1 else 's'}. Each round times {run['batches']} consecutive training steps per loss "
        f"(sampling + forward + backward + optimizer step) after {run['warmup']} untimed ones; {run['rounds']} rounds "
        "alternate the losses (each round starting one loss later); the median over rounds of each loss's mean seconds per "
        f"batch is scaled to its batches per epoch, SL@K's β refresh amortised over T_β. Clock: **{clock} time** "
        f"(`--clock {run['clock']}`).",
        "",
        *loss_table(run),
    ])


def main(argv: list[str] | None = None) -> int:
    arguments = parser(__doc__, quick="1 round of 2 timed batches after 1 warm-up; printed, nothing written")
    timing_arguments(arguments, batches=20, rounds=5, side="loss")
    args = arguments.parse_args(argv)
    if args.quick:
        args.batches, args.warmup, args.rounds = 2, 1, 1
    os.environ.setdefault("ITEMREC_MIRROR", str(mirror_folder(args.mirror)))

    import torch

    torch.set_num_threads(args.threads)
    sessions = {}
    for key in LOSS_NAMES:
        print(f"building the session of {config_path(args.dataset, key).name}", file=sys.stderr, flush=True)
        sessions[key] = build_session(config_path(args.dataset, key), ["device=cpu"])
    prime(sessions, args.threads)
    ours: dict[str, dict] = {}
    for key, session in sessions.items():
        ours[key] = {"segments": [], "batches_per_epoch": batches_per_epoch(session),
                     "negatives": session.config.sampling.negatives_per_row}
        if session.quantiles is not None:
            ours[key].update(refresh=[], refresh_every=session.quantiles.refresh_every)

    load_start, started = load_average(), time.perf_counter()
    for r in range(args.rounds):
        line = time_round(sessions, ours, r, args.warmup, args.batches)
        print(f"round {r + 1}: " + ", ".join(line) + " s per batch", flush=True)
    timed, load_end = time.perf_counter() - started, load_average()

    config = sessions["sl"].config
    run = {
        "dataset": args.dataset, "clock": args.clock, "ours": ours, "threads": torch.get_num_threads(),
        "command": command("loss_epochs", "--dataset", args.dataset, "--batches", args.batches, "--warmup", args.warmup,
                           "--rounds", args.rounds, "--threads", args.threads, "--clock", args.clock),
        "machine": machine(), "batches": args.batches, "warmup": args.warmup, "rounds": args.rounds,
        "batch_size": config.train.batch_size, "positives": config.sampling.positives_per_row,
        "negatives": config.sampling.negatives_per_row, "load_start": load_start, "load_end": load_end,
        "timed_seconds": timed, "note": f"; {args.note.rstrip('.')}" if args.note else "",
    }
    publish(f"loss-epochs-{args.dataset}", report(run), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
