"""Progress lines of the data pipeline: what each step read, dropped and kept."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console

console = Console(stderr=True, highlight=False)


def say(message: str, *, quiet: bool = False) -> None:
    """Print one progress line to stderr unless `quiet`."""
    if not quiet:
        console.print(message, soft_wrap=True)


@contextlib.contextmanager
def status(message: str, quiet: bool = False) -> Iterator[None]:
    """A spinner with `message` and the elapsed time while a long step runs (on a terminal only)."""
    if quiet or not console.is_terminal:
        yield
        return
    with console.status(message):
        yield
