"""benchmarks/harness.py: section replacement in RESULTS.md, Markdown tables, p-values, timing with fake
clocks, the common parser, and the scripts' use of the harness."""

from __future__ import annotations

import ast
import re
from datetime import date
from pathlib import Path

import pytest

from benchmarks import harness

BENCHMARKS = Path(harness.__file__).resolve().parent

TEXT = """# Benchmark results

Intro line.

<!-- alpha:start -->
## Alpha

alpha body
<!-- alpha:end -->

<!-- outer:start -->
## Outer

outer body
<!-- inner:start -->
inner body
<!-- inner:end -->

outer tail
<!-- outer:end -->

<!-- omega:start -->
## Omega
| a | b |
<!-- omega:end -->
"""


def fake_clock(*readings: float):
    """A clock that returns `readings` in order (and fails if read once more)."""
    values = iter(readings)
    return lambda: next(values)


# --------------------------------------------------------------------------- sections


def test_replacing_a_section_changes_only_that_section():
    out = harness.replace_section(TEXT, "alpha", "## Alpha\n\nnew body\n\n")
    assert out == TEXT.replace("alpha body", "new body")
    start, end = TEXT.index("<!-- alpha:start -->"), TEXT.index("<!-- alpha:end -->") + len("<!-- alpha:end -->")
    new_end = out.index("<!-- alpha:end -->") + len("<!-- alpha:end -->")
    assert out[:start] == TEXT[:start]  # every byte before the section
    assert out[new_end:] == TEXT[end:]  # and after it


def test_a_nested_section_is_replaced_inside_its_parent():
    out = harness.replace_section(TEXT, "inner", "other inner")
    assert out == TEXT.replace("inner body", "other inner")
    assert harness.read_section(out, "outer") == "## Outer\n\nouter body\n<!-- inner:start -->\nother inner\n<!-- inner:end -->\n\nouter tail"


def test_a_missing_section_is_appended_at_the_end_or_inside_its_parent():
    appended = harness.replace_section(TEXT, "new", "## New\nbody")
    assert appended == TEXT + "\n<!-- new:start -->\n## New\nbody\n<!-- new:end -->\n"
    markers = ("<!-- extra -->", "<!-- /extra -->")
    inside = harness.replace_section(TEXT, "extra", "extra body", markers=markers, within="outer")
    assert inside == TEXT.replace("outer tail\n<!-- outer:end -->",
                                  "outer tail\n\n<!-- extra -->\nextra body\n<!-- /extra -->\n<!-- outer:end -->")
    again = harness.replace_section(inside, "extra", "second body", markers=markers, within="outer")
    assert again == inside.replace("extra body", "second body")  # present now: replaced where it stands
    with pytest.raises(KeyError):
        harness.replace_section(TEXT, "extra", "x", markers=markers, within="absent")


def test_read_section_returns_the_body_between_the_markers():
    assert harness.read_section(TEXT, "omega") == "## Omega\n| a | b |"
    assert harness.read_section(TEXT, "absent") is None
    assert harness.section_markers("data") == ("<!-- data:start -->", "<!-- data:end -->")


def test_every_section_of_the_real_results_file_round_trips_byte_for_byte():
    """Replacing any section of RESULTS.md by its own body gives the file back unchanged, and a new
    body for one section leaves every byte outside it as it was (the file itself is not written)."""
    text = harness.RESULTS.read_text()
    names = re.findall(r"<!-- ([\w-]+):start -->", text)
    assert {"data", "recsys", "recsys-ease", "recsys-ease-seeds", "scale", "study-retrieval"} <= set(names)
    for name in names:
        assert harness.replace_section(text, name, harness.read_section(text, name)) == text, name
    start, end = harness.section_markers("ppr")
    out = harness.replace_section(text, "ppr", "replaced")
    assert out[: out.index(start)] == text[: text.index(start)]
    assert out[out.index(end):] == text[text.index(end):]
    assert harness.read_section(out, "ppr") == "replaced"


def test_write_section_starts_a_missing_file_with_the_header_and_keeps_other_sections(tmp_path):
    path = tmp_path / "RESULTS.md"
    harness.write_section("one", "first", path)
    assert path.read_text() == harness.HEADER + "\n<!-- one:start -->\nfirst\n<!-- one:end -->\n"
    harness.write_section("two", "second", path)
    harness.write_section("one", "changed", path)
    assert path.read_text() == (harness.HEADER + "\n<!-- one:start -->\nchanged\n<!-- one:end -->\n"
                                "\n<!-- two:start -->\nsecond\n<!-- two:end -->\n")


# --------------------------------------------------------------------------- tables


def test_markdown_table_renders_rows_exactly():
    text = harness.markdown_table(["case", "seconds", "users"], [["parquet", "0.77", "6,040"], ["raw", 0.8, 5949]])
    assert text == "| case | seconds | users |\n|---|---:|---:|\n| parquet | 0.77 | 6,040 |\n| raw | 0.8 | 5949 |"
    left = harness.markdown_table(["check", "result", "seconds"], [["a", "pass", "1.0"]], "llr")
    assert left.splitlines() == ["| check | result | seconds |", "|---|---|---:|", "| a | pass | 1.0 |"]
    assert harness.markdown_table(["only"], []) == "| only |\n|---|"
    blanks = harness.markdown_table(["dataset", "window", "share"], [["ml-100k", "1-100", "0.0853"], ["", "101-600", ""]])
    assert blanks.splitlines()[-1] == "| | 101-600 | |"
    with pytest.raises(ValueError):
        harness.markdown_table(["a", "b"], [], "l")
    with pytest.raises(ValueError):
        harness.markdown_table(["a", "b"], [], "lc")


def test_p_value_prints_an_underflow_as_a_bound_not_zero():
    assert [harness.p_value(p) for p in (0.0, 2.5e-30, 0.0131)] == ["< 1e-300", "2.5e-30", "0.013"]


# --------------------------------------------------------------------------- timing


def test_best_of_returns_the_smallest_of_the_fake_clock_intervals():
    # intervals 3.0, 1.5, 2.25
    clock = fake_clock(10.0, 13.0, 20.0, 21.5, 30.0, 32.25)
    assert harness.best_of(lambda: None, 3, clock=clock) == 1.5


def test_median_of_skips_the_warm_up_and_takes_the_median():
    calls = []
    clock = fake_clock(0.0, 4.0, 10.0, 11.0, 20.0, 22.0)  # read only around the three timed calls
    assert harness.median_of(lambda: calls.append(1), 3, warmup=1, clock=clock) == 2.0
    assert len(calls) == 4


def test_time_calls_keeps_every_interval_and_the_last_result():
    results = iter(["first", "second"])
    timings = harness.time_calls(lambda: next(results), 2, clock=fake_clock(0.0, 0.5, 1.0, 1.25))
    assert timings.seconds == (0.5, 0.25) and timings.best == 0.25 and timings.median == 0.375
    assert timings.result == "second"
    with pytest.raises(ValueError):
        harness.time_calls(lambda: None, 0)


def test_stopwatch_measures_wall_and_cpu_from_its_clocks():
    with harness.Stopwatch(fake_clock(5.0, 7.5), fake_clock(1.0, 1.75)) as watch:
        assert (watch.wall, watch.cpu) == (0.0, 0.0)
    assert (watch.wall, watch.cpu) == (2.5, 0.75)


# --------------------------------------------------------------------------- arguments, machine


def test_the_common_parser_has_the_shared_flags_asked_for(tmp_path):
    full = harness.parser("doc", quick="small run", repeats=3, seeds=[0, 1], study=True, tracking_uri="sqlite:///x.db", run_dir="runs")
    args = full.parse_args([])
    assert (args.results, args.no_write, args.quick, args.repeats, args.seeds) == (harness.RESULTS, False, False, 3, [0, 1])
    assert (args.tracking_uri, args.dry_run, args.report_only, args.quiet, args.run_dir) == ("sqlite:///x.db", False, False, False, "runs")
    args = full.parse_args(["--results", str(tmp_path / "R.md"), "--seeds", "4", "5", "6", "--repeats", "7"])
    assert (args.results, args.seeds, args.repeats) == (tmp_path / "R.md", [4, 5, 6], 7)
    bare = harness.parser("doc", results=False).parse_args([])
    assert vars(bare) == {}
    with pytest.raises(SystemExit):
        harness.parser("doc").parse_args(["--quick"])  # not asked for: not a flag


def test_writes_follows_no_write_quick_and_write():
    plain = harness.parser("doc", quick="q")
    assert harness.writes(plain.parse_args([]))
    assert not harness.writes(plain.parse_args(["--no-write"]))
    assert not harness.writes(plain.parse_args(["--quick"]))
    plain.add_argument("--write", action="store_true")
    assert harness.writes(plain.parse_args(["--quick", "--write"]))
    assert not harness.writes(plain.parse_args(["--quick", "--write", "--no-write"]))


def test_command_and_machine_lines():
    assert harness.command("scale", "--sizes", "1m", 3) == "python -m benchmarks.scale --sizes 1m 3"
    assert harness.command("data") == "python -m benchmarks.data"
    line = harness.machine()
    assert re.search(r", \d+ cores, .*; Python \d+\.\d+\.\d+, torch .*, \d+ threads?; ", line)
    assert line.endswith(date.today().isoformat())
    assert re.fullmatch(r"\d+\.\d\d / \d+\.\d\d / \d+\.\d\d|n/a", harness.load_average())


def test_run_module_makes_the_repository_importable_from_anywhere(tmp_path):
    assert harness.module_env({"PYTHONPATH": "/elsewhere"})["PYTHONPATH"] == f"{harness.ROOT}:/elsewhere"
    done = harness.run_module("benchmarks.harness", cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --------------------------------------------------------------------------- the scripts


def scripts() -> list[Path]:
    """The benchmark scripts: the modules of `benchmarks/` that run as `python -m benchmarks.<name>`."""
    return sorted(p for p in BENCHMARKS.glob("*.py") if 'if __name__ == "__main__":' in p.read_text())


def test_every_script_uses_the_harness_and_none_edits_sys_path():
    assert len(scripts()) == 24
    from benchmarks.reference_driver import DRIVER_SOURCE

    for path in BENCHMARKS.glob("*.py"):
        # The reference driver is a program for another checkout's process, which must put that
        # checkout on its own path; the scripts themselves never touch sys.path.
        text = path.read_text().replace(DRIVER_SOURCE, "")
        assert "sys.path" not in text, path.name
        assert "python benchmarks/" not in text, path.name  # usage lines are `python -m benchmarks.<name>`
    for path in scripts():
        tree = ast.parse(path.read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert "benchmarks.harness" in imported, path.name
        calls = {node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}
        assert "ArgumentParser" not in calls, path.name  # the common parser, extended
        assert f"python -m benchmarks.{path.stem}" in ast.get_docstring(tree), path.name


def test_every_file_of_the_benchmarks_stays_under_500_lines():
    for path in [*BENCHMARKS.glob("*.py"), *Path(__file__).parent.glob("*.py")]:
        assert len(path.read_text().splitlines()) < 500, path.name
