"""The shell commands of one README section, so tests run exactly what the README tells users."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def section_commands(title: str) -> list[str]:
    """Command lines of the bash blocks under the heading `title` (up to the next heading),
    without comments and trailing `# ...` notes."""
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip("#").strip() == title and line.startswith("#"))
    commands, in_block = [], False
    for line in lines[start + 1 :]:
        if not in_block and re.match(r"^#{1,6} ", line):
            break
        if line.startswith("```"):
            in_block = not in_block
            continue
        if in_block and line.strip() and not line.lstrip().startswith("#"):
            commands.append(re.sub(r"\s+#\s.*$", "", line).strip())
    return commands


def substitute(command: str, replacements: dict[str, str]) -> str:
    """`command` with its placeholders (hosts, run ids) and sizes replaced by a test's own."""
    for old, new in replacements.items():
        command = command.replace(old, new)
    return command
