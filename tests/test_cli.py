"""The `itemrec` entry point: every command's help, a light start-up (no torch, MLflow or polars
before a command needs them), and which commands set the allocator up for large tensors."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from itemrec.cli import app, main

COMMANDS = [
    [], ["train"], ["evaluate"], ["recommend"], ["search"], ["tune"], ["compare"], ["version"],
    ["data"], ["data", "info"], ["data", "prepare"], ["data", "synth"],
]
HEAVY = ("torch", "torch_geometric", "mlflow", "optuna", "pandas", "pyarrow", "polars", "numpy", "scipy", "numba")


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`itemrec ARGS` in this process through the console entry point: (exit code, stdout, stderr).
    An exception other than the entry point's own exit propagates (and fails the test)."""
    monkeypatch.setattr(sys, "argv", ["itemrec", *args])
    code = 0
    try:
        main()
    except SystemExit as stop:
        code = int(stop.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "itemrec")
def test_every_command_has_help(command):
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: {' '.join(['itemrec', *command])} [OPTIONS]" in result.output


START_UP = f"""
import sys
from itemrec.cli import main
cases = [[*c, "--help"] for c in {COMMANDS!r}] + [
    ["recommend", "RUN", "-k", "0"],  # a user error found from the arguments alone
    ["evaluate", "RUN", "--split", "train"],
    ["train"],  # a usage error (missing argument)
]
for argv in cases:
    sys.argv = ["itemrec", *argv]
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code or 0
    print("exit", code, *argv)
print("imported", *sorted(m for m in {HEAVY!r} if m in sys.modules))
"""


def test_help_and_argument_errors_import_no_heavy_library():
    out = subprocess.run([sys.executable, "-c", START_UP], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    codes = [line.split()[1] for line in lines if line.startswith("exit ")]
    assert codes == ["0"] * len(COMMANDS) + ["2", "2", "2"], lines
    assert "error: -k: must be >= 1, got 0" in out.stderr
    assert "error: --split: must be val or test, got 'train'" in out.stderr
    assert lines[-1] == "imported", lines[-1]  # none of HEAVY


def test_commands_with_large_tensors_keep_freed_memory(monkeypatch, capsys):
    import itemrec.experiment.memory as memory

    calls = []
    monkeypatch.setattr(memory, "keep_freed_memory", lambda keep=True: calls.append(keep) or True)
    for args in (["version"], ["data", "--help"], ["compare", "--metrics", ","]):
        run_main(monkeypatch, capsys, *args)
    assert calls == []
    for args in (["recommend", "RUN", "-k", "0"], ["evaluate", "RUN", "--split", "train"], ["train", "missing.yaml"]):
        code, _, err = run_main(monkeypatch, capsys, *args)
        assert code == 2 and err.startswith("error: "), err
    assert calls == [True, True, True]


def help_lines(command: list[str]) -> list[str]:
    """The non-blank lines of `itemrec COMMAND --help`, stripped of the panels' padding."""
    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    return [line.strip() for line in result.output.splitlines() if line.strip()]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "itemrec")
def test_every_help_ends_with_one_example_and_the_docs(command):
    from pathlib import Path

    *_, example, docs = help_lines(command)
    assert example.startswith(f"Example: {' '.join(['itemrec', *command])}"), example
    assert sum(line.startswith("Example:") for line in help_lines(command)) == 1
    assert docs.startswith("Docs: docs/") and docs.endswith(" (mkdocs serve)"), docs
    page = Path(__file__).parents[1] / docs.removeprefix("Docs: ").removesuffix(" (mkdocs serve)")
    assert page.exists(), page


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "itemrec")
def test_every_help_starts_with_a_whole_sentence(command):
    import typer.main

    group = typer.main.get_command(app)
    cmd = group
    for name in command:
        cmd = cmd.commands[name]
    first_paragraph = (cmd.help or "").strip().split("\n\n")[0]
    assert "\n" not in first_paragraph and first_paragraph.endswith("."), first_paragraph
    assert first_paragraph[0].isupper(), first_paragraph
    summary = help_lines(command)[1]  # after the usage line
    assert summary == first_paragraph or first_paragraph.startswith(summary), summary
