"""Progress lines of the data pipeline: what each step read, dropped and kept."""

from __future__ import annotations

from rich.console import Console

console = Console(stderr=True, highlight=False)


def say(message: str, *, quiet: bool = False) -> None:
    """Print one progress line to stderr unless `quiet`."""
    if not quiet:
        console.print(message, soft_wrap=True)
