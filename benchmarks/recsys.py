"""Recommendation benchmark on ml-1m: quality of each model and loss, and speed against peers.

    python -m benchmarks.recsys                         # all rows, written to benchmarks/RESULTS.md
    python -m benchmarks.recsys --quick                 # ml-100k, 1 epoch, printed only (smoke test)
    python -m benchmarks.recsys --only speed,lgcn_supap,ease --budget-epochs 6
    python -m benchmarks.recsys --long-epochs 22        # then: one longer LightGCN run with a ranking
                                                        # loss, added to the written section

Protocol: ml-1m, ratings >= 3, per-user random 0.8/0.1/0.1 split, seed 0, 64-d, 3 layers, full
ranking of every item (seen items masked). Each learned run gets the same fixed budget of epochs
(`--budget-epochs`) through `itemrec.recsys.train.train` (early stopping on val ndcg@20 may stop it
earlier); the best validation checkpoint is evaluated on test. Inductive rows use
`data.split=inductive` (10% + 10% of users held out, embedded from their fold-in history).

Speed: our seconds per epoch come from the training runs' histories (median over epochs); the
full-ranking evaluation of all test users is timed on its own (median of repeats). The peer is
torch_geometric's `LightGCN` trained with its `recommendation_loss` (BPR) as in PyG's example:
batches of training edges, one uniform negative per positive, one full-graph propagation
`model(edge_index, edge_label_index)` per batch; a fixed number of batches is timed and scaled to
an epoch (`benchmarks.recsys_speed`). Every result is written after each row, so an interrupted
run keeps what it finished.

Reference numbers of other systems (published, or measured earlier) are data, read from
`benchmarks/reference_results.yaml`; the report (`benchmarks.recsys_report`) sets the results
beside them, with differences and ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import itemrec.frontends  # noqa: F401  (registers the front ends that configs are validated by)
from benchmarks.harness import (
    ROOT,
    Stopwatch,
    command,
    load_average,
    parser,
    read_section,
    write_section,
    writes,
)
from benchmarks.recsys_report import LONG_MARKERS, load_references, long_block, markdown, print_row
from benchmarks.recsys_speed import ours_eval_seconds, pyg_peer
from itemrec.experiment.checkpoint import load_checkpoint
from itemrec.experiment.config import load_config
from itemrec.experiment.loop import run_dir
from itemrec.recsys.frontend import train

CONFIGS = ROOT / "configs" / "recsys"
PPR = ["sampling.ppr_skip=100", "sampling.ppr_topk=500", "sampling.hard_ratio=0.3"]
ROWS: list[tuple[str, str, str, list[str]]] = [
    ("lgcn_supap", "LightGCN, sup_ap, uniform", "lightgcn_supap_uniform", []),
    ("lgcn_bpr", "LightGCN, BPR, uniform", "lightgcn_bpr", []),
    ("ease", "EASE", "ease", []),
    ("pop", "Pop", "pop", []),
    ("lgcn_supndcg", "LightGCN, sup_ndcg, uniform", "lightgcn_supndcg_uniform", []),
    ("lgcn_roadmap", "LightGCN, roadmap (ρ 1, τ 0.05), uniform", "lightgcn_roadmap_uniform", []),
    ("lgcn_supap_ppr", "LightGCN, sup_ap, PPR (skip 100, top 500, hard 0.3)", "lightgcn_supap", PPR),
    ("mf_bpr", "MF, BPR, uniform", "mf_bpr", []),
    ("ngcf_bpr", "NGCF, BPR, uniform", "ngcf_bpr", []),
    ("lgcn_supap_ind", "LightGCN, sup_ap, uniform — inductive split", "lightgcn_supap_uniform", ["data.split=inductive"]),
    ("mf_bpr_ind", "MF, BPR, uniform — inductive split", "mf_bpr", ["data.split=inductive"]),
]
"""key, label, config (after the ml1m_ / ml100k_ prefix), overrides; in priority order."""
RANKING_ROWS = ("lgcn_supap", "lgcn_supndcg", "lgcn_roadmap", "lgcn_supap_ppr")


def config_path(name: str, quick: bool) -> str:
    return str(CONFIGS / f"{'ml100k' if quick else 'ml1m'}_{name}.yaml")


def history_fields(history: list[dict]) -> dict:
    """Epochs run, median seconds per epoch, the best validation epoch and the time up to it."""
    val = [h.get("val/ndcg@20", -math.inf) for h in history]
    best = int(np.argmax(val))
    return {
        "epochs": len(history),
        "epoch_s": statistics.median(h["epoch_seconds"] for h in history),
        "best_epoch": history[best]["epoch"],
        "best_val": val[best],
        "to_best": sum(h["epoch_seconds"] + h.get("eval_seconds", 0.0) for h in history[: best + 1]),
        "val_eval_s": statistics.median(h["eval_seconds"] for h in history if "eval_seconds" in h),
    }


def run_row(key: str, name: str, overrides: list[str], args, tmp: Path) -> dict:
    """Train (or fit) one config through `itemrec.recsys.train.train`; its test metrics and timings."""
    base = [f"train.run_dir={tmp / 'runs'}"]
    config = load_config(config_path(name, args.quick), base + overrides + [f"train.epochs={args.budget_epochs}"])
    load_before = load_average()
    with Stopwatch() as watch, contextlib.redirect_stdout(io.StringIO()):  # train prints its result table
        run_id = train(config, tracking_uri=f"sqlite:///{tmp}/mlflow.db", quiet=True)
    folder = run_dir(config, run_id)
    metrics = json.loads((folder / "metrics.json").read_text())
    row = {"key": key, "metrics": metrics, "wall": watch.wall, "load": load_before, "overrides": overrides}
    last = folder / "last.pt"
    if last.exists():
        row |= history_fields(load_checkpoint(last).history)
    return row


def long_run(args, references: dict) -> None:
    """One longer LightGCN run with a ranking loss (`--long-config`), added to the `recsys` section."""
    line = command("recsys", *sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="itemrec-recsys-") as tmp:
        budget, args.budget_epochs = args.budget_epochs, args.long_epochs
        r = run_row("lgcn_long", args.long_config, [], args, Path(tmp))
        args.budget_epochs = budget
    print_row("lgcn_long", r)
    body = long_block(r, args.long_config, args.long_epochs, line, references)
    print(body)
    if not writes(args):
        return
    if not args.results.exists() or read_section(args.results.read_text(), "recsys") is None:
        raise SystemExit(f"no recsys section in {args.results}: run the main benchmark first")
    write_section("recsys-long", body, args.results, markers=LONG_MARKERS, within="recsys")


def speed(args, measured: dict, notes: list[str]) -> None:
    """Our evaluation and the torch_geometric peer, into `measured` (`eval`, `pyg`)."""
    ev = ours_eval_seconds(config_path("lightgcn_supap_uniform", args.quick), args.quick)
    data = ev.pop("data")
    measured["eval"] = ev
    print(f"ours: evaluate {ev['users']} test users: dot {ev['dot']:.3f} s, cosine {ev['cosine']:.3f} s (load {load_average()})", flush=True)
    try:
        peer = pyg_peer(data, args.pyg_batch, args.pyg_batches, args.quick)
    except ImportError as error:
        notes.append(f"torch_geometric peer not run: {error}.")
        return
    measured["pyg"] = peer
    print(f"torch_geometric LightGCN: {peer['per_batch']:.2f} s/batch × {peer['batches_per_epoch']} = {peer['epoch_s']:.0f} s/epoch; "
          f"evaluation {peer['eval_s']:.3f} s (load {load_average()})", flush=True)


def arguments() -> argparse.ArgumentParser:
    """The shared flags (`--quick` runs on ml-100k; `--write` writes even then) and the rows,
    budget, peer batches and the longer run."""
    keys = [k for k, *_ in ROWS]
    out = parser(__doc__, quick="ml-100k, 1 epoch, few peer batches; printed, nothing written")
    out.add_argument("--write", action="store_true", help="write the results file even with --quick")
    out.add_argument("--only", default="", help="comma-separated rows: speed," + ",".join(keys))
    out.add_argument("--budget-epochs", type=int, default=None, help="epochs per learned run (default 6; 1 with --quick)")
    out.add_argument("--pyg-batches", type=int, default=None, help="torch_geometric batches to time (default 6; 2 with --quick)")
    out.add_argument("--pyg-batch", type=int, default=4096, help="edges per torch_geometric batch")
    out.add_argument("--max-minutes", type=float, default=None, help="start no new row after this many minutes")
    out.add_argument("--long-epochs", type=int, default=None,
                     help="instead: one longer run of --long-config for this many epochs, added to the section")
    out.add_argument("--long-config", default="lightgcn_roadmap_uniform", help="config of the longer run (configs/recsys/ml1m_NAME.yaml)")
    return out


def main() -> None:
    flags = arguments()
    args = flags.parse_args()
    args.budget_epochs = args.budget_epochs or (1 if args.quick else 6)
    args.pyg_batches = args.pyg_batches or (2 if args.quick else 6)
    references = load_references()
    if args.long_epochs is not None:
        long_run(args, references)
        return
    keys = [k for k, *_ in ROWS]
    wanted = [k.strip() for k in args.only.split(",") if k.strip()] or ["speed", *keys]
    unknown = set(wanted) - {"speed", *keys}
    if unknown:
        flags.error(f"--only: unknown rows {sorted(unknown)}")
    started, t0 = time.strftime("%Y-%m-%d %H:%M"), time.perf_counter()
    results: dict[str, dict] = {}
    measured: dict = {"load_start": load_average(), "wanted": wanted}
    notes: list[str] = []

    def report() -> str:
        return markdown(results, measured, notes, rows=[(k, label) for k, label, *_ in ROWS], ranking=RANKING_ROWS,
                        args=args, command=command("recsys", *sys.argv[1:]), started=started, references=references)

    def flush() -> None:
        if writes(args):
            write_section("recsys", report(), args.results)

    with tempfile.TemporaryDirectory(prefix="itemrec-recsys-") as tmp:
        if "speed" in wanted:
            speed(args, measured, notes)
            flush()
        for key, _, name, overrides in ROWS:
            if key not in wanted:
                continue
            elapsed = (time.perf_counter() - t0) / 60
            if args.max_minutes is not None and elapsed > args.max_minutes:
                print(f"{key}: skipped, {elapsed:.1f} min elapsed > --max-minutes {args.max_minutes}", flush=True)
                continue
            try:
                results[key] = run_row(key, name, overrides, args, Path(tmp))
            except Exception as error:  # keep the other rows
                notes.append(f"{key} failed: {type(error).__name__}: {error}")
                print(f"{key}: FAILED {type(error).__name__}: {error}", flush=True)
                continue
            print_row(key, results[key])
            flush()
    flush()
    print()
    print(report())
    print(f"\ntotal {(time.perf_counter() - t0) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
