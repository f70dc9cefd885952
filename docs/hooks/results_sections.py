"""mkdocs hook: the benchmarks pages take their tables from `benchmarks/RESULTS.md` by section.

A line `<!-- results: NAME [NAME ...] -->` on a page is replaced by the sections NAME of
`benchmarks/RESULTS.md`, in that order: the text between the `<!-- NAME:start -->` and
`<!-- NAME:end -->` comments that `benchmarks/harness.py` (`section_markers`) writes around each
section. A script that rewrites its section thereby updates its page, and no page depends on line
numbers or on markers of its own in RESULTS.md. A name with no such section fails the build.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.exceptions import PluginError

RESULTS = Path("benchmarks") / "RESULTS.md"  # relative to the folder of mkdocs.yml
DIRECTIVE = re.compile(r"^<!-- results: ([\w\-]+(?: [\w\-]+)*) -->[ \t]*$", re.M)


def results_path(config) -> Path:
    return Path(config["config_file_path"]).parent / RESULTS


def section(text: str, name: str) -> str | None:
    """The body of the section `name` of the results text, or None if it has none."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    opened = text.find(start)
    closed = text.find(end, opened + len(start)) if opened >= 0 else -1
    if closed < 0:
        return None
    return text[opened + len(start) : closed].strip("\n")


def include(markdown: str, text: str, where: str) -> str:
    """`markdown` with each directive replaced by the sections it names."""

    def sections(found: re.Match[str]) -> str:
        bodies = []
        for name in found.group(1).split():
            body = section(text, name)
            if body is None:
                raise PluginError(f"{where}: {RESULTS} has no section {name!r} (<!-- {name}:start -->)")
            bodies.append(body)
        return "\n\n".join(bodies)

    return DIRECTIVE.sub(sections, markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if not DIRECTIVE.search(markdown):
        return markdown
    return include(markdown, results_path(config).read_text(encoding="utf-8"), page.file.src_path)


def on_serve(server, config, builder):
    server.watch(str(results_path(config)))
    return server
