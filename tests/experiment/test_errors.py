"""`UserError`: the user's mistake, printed by the entry point as one line with exit code 2; any
other exception is a bug and keeps its traceback."""

from __future__ import annotations

import pytest

from itemrec import cli
from itemrec.experiment.errors import UserError


def test_user_error_is_an_ordinary_exception_with_its_message():
    err = UserError("data.csv: no column 'user'")
    assert isinstance(err, Exception) and str(err) == "data.csv: no column 'user'"
    with pytest.raises(UserError, match="no column"):
        raise err


def raising(exc: Exception):
    def app() -> None:
        raise exc

    return app


def test_entry_point_prints_a_user_error_as_one_line(monkeypatch, capsys):
    monkeypatch.setattr(cli, "app", raising(UserError("config.yaml: loss.tau: must be > 0")))
    with pytest.raises(SystemExit) as stop:
        cli.main()
    assert stop.value.code == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", "error: config.yaml: loss.tau: must be > 0\n")


def test_entry_point_lets_other_errors_through(monkeypatch):
    monkeypatch.setattr(cli, "app", raising(KeyError("bug")))
    with pytest.raises(KeyError, match="bug"):
        cli.main()
