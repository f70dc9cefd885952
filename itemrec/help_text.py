"""The end of every command's `--help`: one example, then where the documentation is.

There is no published documentation site: the pages are Markdown under `docs/`, browsable as
they are or served with `mkdocs serve` from the repository root.
"""

from __future__ import annotations


def epilog(example: str, page: str = "docs/") -> str:
    """`Example: ...` and `Docs: ...` as two lines (Typer joins single line breaks, so two each)."""
    return f"Example: {example}\n\nDocs: {page} (mkdocs serve)"
