"""The `itemrec` command line. Sub-command groups live next to the code they drive."""

from __future__ import annotations

import sys

import typer

from itemrec.data.cli import data_app
from itemrec.errors import UserError

app = typer.Typer(
    name="itemrec",
    help="Ranking losses for recommendation and image retrieval: train, evaluate, tune, compare.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_app, name="data")


@app.callback()
def _root() -> None:
    """Ranking losses for recommendation and image retrieval: train, evaluate, tune, compare."""


@app.command()
def version() -> None:
    """Print the installed itemrec version."""
    from itemrec import __version__

    typer.echo(__version__)


def main() -> None:
    """Console entry point: a user error becomes one line on stderr and exit code 2."""
    try:
        app()
    except UserError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
