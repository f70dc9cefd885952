"""Time and peak memory of reading, filtering and splitting ml-1m (1,000,209 ratings).

    python -m benchmarks.data            # all cases, written to benchmarks/RESULTS.md
    python -m benchmarks.data --quick    # one repeat per case, printed, nothing written

ml-1m is fetched into the cache first if needed (see `itemrec.recsys.data.fetch`). Each case runs in a
fresh subprocess: time is the best of the repeats of one `load_dataset` call (read the cached
Parquet or the raw ratings file, dedup, filter, remap ids, split, build the CSR matrices); memory
is the process's peak resident set, and its growth over the resident set after imports.
"""

from __future__ import annotations

import argparse
import json
import resource
from pathlib import Path

from benchmarks.harness import (
    command,
    machine,
    markdown_table,
    parser,
    run_module,
    time_calls,
    write_section,
    writes,
)
from itemrec.recsys.data import SplitSpec, load_dataset
from itemrec.recsys.data.fetch import PARQUET, cache_root, fetch_dataset

CASES: dict[str, dict[str, object]] = {
    "parquet, random 0.8/0.1/0.1": {"split": SplitSpec()},
    "parquet, rating >= 4, 10-core, random": {"min_rating": 4, "k_core": 10, "split": SplitSpec()},
    "parquet, per-user temporal": {"split": SplitSpec("user_temporal")},
    "parquet, leave-one-out": {"split": SplitSpec("leave_one_out")},
    "parquet, inductive 10%/10% users, fold-in 0.8 by time": {"split": SplitSpec("inductive", by_time=True)},
    "raw ratings file, rating >= 4, 10-core, random": {"raw": True, "min_rating": 4, "k_core": 10, "split": SplitSpec()},
}


def raw_file(directory: Path) -> Path:
    """The raw ml-1m ratings file in the cache: GroupLens `ratings.dat` or the wheel's `.inter`."""
    for name in ("ratings.dat", "ml-1m.inter"):
        if (directory / name).exists():
            return directory / name
    raise SystemExit(f"no raw ml-1m file in {directory}")


def memory_mib(field: str) -> float:
    """`VmRSS` (now) or `VmHWM` (peak) of this process, from /proc (per process, unlike ru_maxrss,
    which Linux carries over from the parent across fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(name: str, repeats: int) -> dict[str, object]:
    """One case in this process (called in a fresh subprocess): best time, peak memory."""
    options = dict(CASES[name])
    parquet = fetch_dataset("ml-1m", quiet=True)
    source: str | Path = raw_file(parquet.parent) if options.pop("raw", False) else "ml-1m"
    baseline_mib = memory_mib("VmRSS")
    timings = time_calls(lambda: load_dataset(source, quiet=True, seed=0, **options), repeats)  # type: ignore[arg-type]
    peak_mib = memory_mib("VmHWM")
    stats = timings.result.stats()
    return {
        "case": name, "seconds": timings.best, "peak_mib": peak_mib, "growth_mib": peak_mib - baseline_mib,
        "users": stats.users, "items": stats.items, "interactions": stats.interactions, "train": stats.parts["train"],
    }


def spawn_case(name: str, repeats: int) -> dict[str, object]:
    """`run_case` in a fresh process (so that its peak memory is its own)."""
    child = run_module("benchmarks.data", "--case", name, "--repeats", repeats, capture_output=True, text=True, check=True)
    return json.loads(child.stdout.strip().splitlines()[-1])


def table(results: list[dict[str, object]]) -> str:
    header = ["case", "seconds (best)", "peak RSS MiB", "growth MiB", "users", "items", "interactions", "train"]
    rows = [
        [r["case"], f"{r['seconds']:.2f}", f"{r['peak_mib']:.0f}", f"{r['growth_mib']:.0f}",
         f"{r['users']:,}", f"{r['items']:,}", f"{r['interactions']:,}", f"{r['train']:,}"]
        for r in results
    ]
    return markdown_table(header, rows)


def report(results: list[dict[str, object]], origin: str, repeats: int) -> str:
    return "\n".join([
        "## Data: ml-1m read + filter + split",
        "",
        f"`{command('data')}`",
        "",
        f"Machine: {machine()}",
        "",
        f"ml-1m (1,000,209 ratings) from {origin}, cached as `{PARQUET}` "
        f"under `{cache_root()}`. One `load_dataset` call per timing (best of {repeats}), each case in a "
        "fresh process.",
        "",
        table(results),
    ])


def arguments() -> argparse.ArgumentParser:
    """The shared flags, and the hidden `--case` of the child process."""
    out = parser(__doc__, quick="one repeat per case, print only", repeats=3)
    out.add_argument("--case", help=argparse.SUPPRESS)
    return out


def main() -> None:
    args = arguments().parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.repeats)))
        return
    parquet = fetch_dataset("ml-1m")
    source = parquet.parent / "source.json"
    origin = json.loads(source.read_text())["origin"] if source.exists() else "cache"
    repeats = 1 if args.quick else args.repeats
    results = []
    for name in CASES:
        results.append(spawn_case(name, repeats))
        print(f"{name}: {results[-1]['seconds']:.2f} s, peak {results[-1]['peak_mib']:.0f} MiB", flush=True)
    body = report(results, origin, repeats)
    print(body)
    if writes(args):
        write_section("data", body, args.results)


if __name__ == "__main__":
    main()
