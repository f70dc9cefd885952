"""What every benchmark script shares: its arguments, the machine line, timing, Markdown tables,
and its section of `benchmarks/RESULTS.md`.

A script builds its parser with `parser(__doc__, ...)` (the shared flags, then its own), times
with `Stopwatch`, `time_calls`, `best_of` or `median_of`, renders tables with `markdown_table`
and, when `writes(args)`, replaces its section of RESULTS.md with `write_section`. The scripts
run from the repository root as `python -m benchmarks.<name>`; `run_module` starts one of them
(or any module) in a fresh process, with the repository root importable.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
HEADER = "# Benchmark results\n\nEach section is written by the script it names; rerun the script to refresh it.\n"


# --------------------------------------------------------------------------- arguments


def parser(
    doc: str | None,
    *,
    results: bool = True,
    quick: str | None = None,
    repeats: int | None = None,
    seeds: Sequence[int] | None = None,
    study: bool = False,
    tracking_uri: str | None = None,
    run_dir: str | None = None,
) -> argparse.ArgumentParser:
    """The common parser of a benchmark script, its description the script's docstring.

    Flags: `--results PATH` and `--no-write` (with `results`: where the section goes, and to
    print only); `--quick` (help `quick`: the script's small mode, which writes nothing);
    `--repeats N` (default `repeats`); `--seeds S ...` (default `seeds`); with `study`,
    `--tracking-uri` (default `tracking_uri`), `--dry-run`, `--report-only` and `--quiet`;
    `--run-dir` (default `run_dir`). The script adds its own flags to the parser returned.
    """
    out = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if results:
        out.add_argument("--results", type=Path, default=RESULTS, help="the Markdown file the section is written to (default: %(default)s)")
        out.add_argument("--no-write", action="store_true", help="print only; leave the results file as it is")
    if quick is not None:
        out.add_argument("--quick", action="store_true", help=quick)
    if repeats is not None:
        out.add_argument("--repeats", type=int, default=repeats, help="timed repeats (default: %(default)s)")
    if seeds is not None:
        out.add_argument("--seeds", nargs="+", type=int, default=list(seeds), help="seeds (default: %(default)s)")
    if study:
        out.add_argument("--tracking-uri", default=tracking_uri,
                         help="MLflow tracking URI (default: %(default)s; none: $MLFLOW_TRACKING_URI, else ./mlflow)")
        out.add_argument("--dry-run", action="store_true", help="list the runs that would run, run nothing")
        out.add_argument("--report-only", action="store_true", help="write the tables from what is in MLflow, run nothing")
        out.add_argument("--quiet", action="store_true", help="no progress bars")
    if run_dir is not None:
        out.add_argument("--run-dir", default=run_dir, help="folder of the runs' checkpoints (default: %(default)s)")
    return out


def writes(args: argparse.Namespace) -> bool:
    """Whether this run writes its section: never with `--no-write`; in `--quick` mode only with
    `--write` (a flag of the scripts whose quick run may be written)."""
    if getattr(args, "no_write", False):
        return False
    return not getattr(args, "quick", False) or getattr(args, "write", False)


def publish(section: str, body: str, args: argparse.Namespace) -> None:
    """Print a report and, unless told not to (`writes`), put it in the results file as `section`."""
    print(body)
    if writes(args):
        write_section(section, body, args.results)


def shown(path: Path) -> str:
    """A file's path as reports name it: relative to the repository when inside it."""
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def command(name: str, *args: object) -> str:
    """The command line that runs benchmark `name` with `args`: `python -m benchmarks.name ...`."""
    return " ".join(["python", "-m", f"benchmarks.{name}", *(str(a) for a in args)])


def module_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) with the repository root first on PYTHONPATH."""
    out = dict(os.environ if env is None else env)
    out["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [out.get("PYTHONPATH")])])
    return out


def run_module(module: str, *args: object, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.CompletedProcess:
    """`python -m module args` in a fresh process of this interpreter (`subprocess.run` keywords
    pass through), the repository root importable wherever it runs."""
    return subprocess.run([sys.executable, "-m", module, *(str(a) for a in args)], env=module_env(env), **kwargs)


# --------------------------------------------------------------------------- the machine


def machine() -> str:
    """One line naming the machine a benchmark ran on: CPU, cores, GPU, Python, torch, threads, date."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    threads = torch.get_num_threads()
    return (
        f"{cpu}, {cores} cores, {device}; Python {platform.python_version()}, "
        f"torch {torch.__version__}, {threads} thread{'' if threads == 1 else 's'}; {date.today().isoformat()}"
    )


def load_average() -> str:
    """The 1, 5 and 15-minute load averages, `1.42 / 1.81 / 1.79` (`n/a` where unknown)."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


# --------------------------------------------------------------------------- timing


class Stopwatch:
    """Wall and process-CPU seconds of a `with` block: `with Stopwatch() as watch: ...`, then
    `watch.wall` and `watch.cpu` (both 0.0 until the block ends)."""

    def __init__(self, wall_clock: Callable[[], float] = time.perf_counter, cpu_clock: Callable[[], float] = time.process_time) -> None:
        self._wall_clock, self._cpu_clock = wall_clock, cpu_clock
        self.wall = self.cpu = 0.0

    def __enter__(self) -> Stopwatch:
        self._started = (self._wall_clock(), self._cpu_clock())
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = self._wall_clock() - self._started[0]
        self.cpu = self._cpu_clock() - self._started[1]


@dataclass(frozen=True)
class Timings:
    """Seconds of each timed call, and what the last call returned."""

    seconds: tuple[float, ...]
    result: Any = None

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def time_calls(run: Callable[[], Any], repeats: int, *, warmup: int = 0, clock: Callable[[], float] = time.perf_counter) -> Timings:
    """`repeats` timed calls of `run()` after `warmup` untimed ones (`repeats` at least 1)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, not {repeats}")
    for _ in range(warmup):
        run()
    seconds, result = [], None
    for _ in range(repeats):
        start = clock()
        result = run()
        seconds.append(clock() - start)
    return Timings(tuple(seconds), result)


def best_of(run: Callable[[], Any], repeats: int, *, warmup: int = 0, clock: Callable[[], float] = time.perf_counter) -> float:
    """The fastest of `repeats` timed calls of `run()`, after `warmup` untimed ones."""
    return time_calls(run, repeats, warmup=warmup, clock=clock).best


def median_of(run: Callable[[], Any], repeats: int, *, warmup: int = 1, clock: Callable[[], float] = time.perf_counter) -> float:
    """The median of `repeats` timed calls of `run()`, after `warmup` untimed ones (one by default)."""
    return time_calls(run, repeats, warmup=warmup, clock=clock).median


# --------------------------------------------------------------------------- Markdown


def p_value(p: float) -> str:
    """`0.013`, `2.5e-30`; a p-value below the smallest float prints as `< 1e-300`, not `0`."""
    return f"{p:.2g}" if p > 0 else "< 1e-300"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]], align: str | None = None) -> str:
    """A Markdown table. `align` has one letter per column, `l` (left) or `r` (right); by
    default the first column is left-aligned and the others, numbers, right-aligned. An empty
    cell renders as `| |`."""
    align = align or "l" + "r" * (len(header) - 1)
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"align {align!r} does not give l or r for each of the {len(header)} columns")
    lines = [_table_row(header), "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += [_table_row(row) for row in rows]
    return "\n".join(lines)


def _table_row(cells: Sequence[object]) -> str:
    """`| a | b |`; an empty cell is `| |`."""
    return "|" + "|".join(f" {c} " if str(c) else " " for c in cells) + "|"


def section_markers(name: str) -> tuple[str, str]:
    """The comments that open and close the section `name` of RESULTS.md."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def _section_pattern(start: str, end: str) -> re.Pattern[str]:
    return re.compile(re.escape(start) + r"\n?(.*?)\n?" + re.escape(end), re.S)


def read_section(text: str, name: str, markers: tuple[str, str] | None = None) -> str | None:
    """The body of the section `name` of `text` (between its markers), or None if there is none."""
    found = _section_pattern(*(markers or section_markers(name))).search(text)
    return found.group(1) if found else None


def replace_section(text: str, name: str, body: str, *, markers: tuple[str, str] | None = None, within: str | None = None) -> str:
    """`text` with the section `name` holding `body`, every other byte as it was.

    A section present is replaced where it stands; a missing one is appended at the end of the
    text, or, with `within`, at the end of that enclosing section (KeyError if it is missing).
    `markers` replaces the section's `<!-- name:start -->` / `<!-- name:end -->` comments.
    """
    start, end = markers or section_markers(name)
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text)
    if within is None:
        return text.rstrip() + "\n\n" + block + "\n"
    outer_start, outer_end = section_markers(within)
    opened = text.find(outer_start)
    closed = text.find(outer_end, opened)
    if opened < 0 or closed < 0:
        raise KeyError(f"no section {within!r} to hold {name!r}")
    return text[:closed].rstrip() + "\n\n" + block + "\n" + text[closed:]


def write_section(
    name: str, body: str, path: Path | None = None, *, markers: tuple[str, str] | None = None, within: str | None = None
) -> Path:
    """Replace (or append) the section `name` of the results file `path` (default `RESULTS`)
    with `body`, leaving the other sections as they are (see `replace_section`)."""
    path = Path(path or RESULTS)
    text = path.read_text() if path.exists() else HEADER
    text = replace_section(text, name, body, markers=markers, within=within)
    path.write_text(text if text.endswith("\n") else text + "\n")
    return path
