"""Scaling: every stage of a recommendation run on generated graphs from 1 M to 30 M interactions.

    python -m benchmarks.scale                          # all sizes and stages, written to RESULTS.md
    python -m benchmarks.scale --sizes 1m,3m            # a subset (results of other sizes are kept)
    python -m benchmarks.scale --sizes 30m --stages ppr-walks,eval
    python -m benchmarks.scale --quick                  # a 50 k-interaction graph, printed only

Graphs come from `itemrec data synth` (seed 0, 50 communities, defaults otherwise): four shaped
like LightGCN's amazon-book (1m, 3m = amazon-book's 52,643 users × 91,597 items × 2.93 M, 10m,
30m, users and items scaled with the interactions) and one of 2 M users × 2 M items × 15 M.
Random 0.8 / 0.1 / 0.1 split. Stages, each in its own process so that its peak RSS
(`getrusage`, which includes loading the split data) is its own:

- `generate`: write the Parquet file (`itemrec data synth`), cached under `--data-dir`.
- `read`: read + clean + split (`load_dataset`), then saved in prepared form for the later stages.
- `ppr-exact`, `ppr-walks`, `ppr-push`: the PPR top-600 table of all users (the hard-negative pool
  `skip 100 + topk 500`); each is first timed on a fixed sample of users (walks 16,384, push 256,
  exact two of its batches, whose size shrinks with the catalogue to bound memory; the graph's
  setup timed apart on one user, after a warm-up call) and run in full only when the extrapolation is at most
  half of `--limit` seconds (`FULL_SHARE`), else the extrapolated time is reported.
- `epoch-bpr`, `epoch-supap`: one training epoch, LightGCN 64-d, 3 layers, rows of 64 positives +
  256 uniform negatives, batches of 1,024 users (BPR: dot scores; SupAP: cosine, τ 0.05, ρ 1).
  The first 8 batches are timed; the epoch runs in full when the extrapolation is under `--limit`.
- `eval`: full-ranking evaluation (top-50 over all items, train items masked) of a fixed sample
  of 10,000 test users (all when fewer), with the time per user; then of all test users when
  that stays under `--limit`, else extrapolated from the sample (in the notes). Ranking one user
  costs ∝ items, so the sample's time is the one whose growth is fitted; all users cost
  users × items, which on the amazon-book-shaped series grows as interactions².

Every stage records wall seconds and the CPU seconds of its process (all threads); the fitted
exponents and the plot use CPU seconds, which the load of other work on a shared machine
changes far less than wall time. Results accumulate in `benchmarks/scale.json` (a rerun of a
stage replaces its entry), and the section and `benchmarks/scale.png` (log-log CPU time against
interactions, with the fitted exponents of the amazon-book-shaped series) are rewritten from all
recorded entries. The stages are `benchmarks.scale_stages`, the report `benchmarks.scale_report`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

from benchmarks.harness import ROOT, parser, run_module, write_section, writes
from benchmarks.scale_report import cell, exponents, markdown, plot
from benchmarks.scale_stages import (
    EVAL_SAMPLE,
    PROBE_BATCHES,
    QUICK,
    SIZES,
    STAGES,
    StageInput,
    child,
    data_file,
)

RECORD = ROOT / "benchmarks" / "scale.json"
PLOT = ROOT / "benchmarks" / "scale.png"


def cache_dir() -> Path:
    from itemrec.recsys.data.fetch import cache_root

    return cache_root()


def run_stage(stage: str, job: StageInput) -> dict:
    """Run one stage in a fresh process; a stage that overruns is killed and recorded as such."""
    options = ["--child", job.size, stage, "--data-dir", job.data_dir.resolve(), "--limit", job.limit,
               "--probe-batches", job.probe_batches, "--eval-sample", job.eval_sample, "--shape", ",".join(map(str, job.shape))]
    load = os.getloadavg()[0]
    timeout = job.limit * 1.5 + 120
    try:
        done = run_module("benchmarks.scale", *options, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"failed": f"did not finish in {timeout:.0f} s", "load": load}
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"failed": f"exit {done.returncode}: {tail[:200]}", "load": load}
    result = json.loads(lines[-1].removeprefix("RESULT "))
    result["load"] = load
    return result


def read_record(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def save_record(record: dict, path: Path) -> None:
    path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


def arguments() -> argparse.ArgumentParser:
    """The shared flags, the sizes and stages to run, their limits, the record, and the hidden
    `--child` / `--shape` of a stage's process."""
    out = parser(__doc__, quick="one 50 k-interaction graph; print, write nothing")
    out.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated subset of {', '.join(SIZES)}")
    out.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {', '.join(STAGES)}")
    out.add_argument("--limit", type=float, default=600.0, help="seconds a stage may take before it is extrapolated")
    out.add_argument("--probe-batches", type=int, default=PROBE_BATCHES, help="batches timed before an epoch is extrapolated")
    out.add_argument("--eval-sample", type=int, default=EVAL_SAMPLE, help="test users in the evaluation's fixed sample")
    out.add_argument("--data-dir", type=Path, default=None, help="generated graphs (default: the dataset cache's `scale` folder)")
    out.add_argument("--record", type=Path, default=RECORD, help="JSON file accumulating the results")
    out.add_argument("--merge", type=Path, nargs="*", default=[], help="other record files to merge in (their entries win)")
    out.add_argument("--render", action="store_true", help="rewrite the section and plot from the record only")
    out.add_argument("--child", nargs=2, metavar=("SIZE", "STAGE"), help=argparse.SUPPRESS)
    out.add_argument("--shape", help=argparse.SUPPRESS)
    return out


def main() -> None:
    flags = arguments()
    args = flags.parse_args()
    data_dir = args.data_dir or cache_dir() / "scale"
    data_dir.mkdir(parents=True, exist_ok=True)

    def job(size: str, shape: tuple[int, int, int]) -> StageInput:
        return StageInput(size, data_dir, shape, args.limit, args.probe_batches, args.eval_sample)

    if args.child:
        child(args.child[1], job(args.child[0], tuple(int(x) for x in args.shape.split(","))))
        return
    sizes = QUICK if args.quick else {name: SIZES[name] for name in args.sizes.split(",") if name}
    unknown = [s for s in args.sizes.split(",") if s and s not in SIZES] + [s for s in args.stages.split(",") if s not in STAGES]
    if unknown and not args.quick:
        flags.error(f"unknown size or stage: {', '.join(unknown)}")
    stages = [s for s in STAGES if s in args.stages.split(",")]
    record = {} if args.quick else read_record(args.record)
    for other in args.merge:
        for size, entries in read_record(other).items():
            record.setdefault(size, {}).update(entries)
    if args.merge:
        save_record(record, args.record)
    for size, shape in ({} if args.render else sizes).items():
        for stage in stages:
            if stage == "generate" and data_file(data_dir, size).exists() and not args.quick:
                continue
            result = run_stage(stage, job(size, shape))
            record.setdefault(size, {})[stage] = result
            print(f"{size} {stage}: {cell(result)}  (load {result['load']:.1f}){'  ' + result['note'] if result.get('note') else ''}", flush=True)
            if not args.quick:
                save_record(record, args.record)
    fitted = exponents(record)
    text = markdown(record, fitted)
    print(text)
    if writes(args):
        plot(record, fitted, PLOT)
        write_section("scale", text, args.results)


if __name__ == "__main__":
    main()
