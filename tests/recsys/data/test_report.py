"""Progress lines of the data pipeline: one line each on stderr, none when quiet."""

from __future__ import annotations

import pytest

from itemrec.recsys.data import report


def test_say_prints_one_unwrapped_line_to_stderr(capsys):
    long = "dropped " + "x" * 300
    report.say("kept [bold]90[/bold] of 100 users")
    report.say(long)
    out, err = capsys.readouterr()
    assert out == "" and err == f"kept 90 of 100 users\n{long}\n"


def test_quiet_says_nothing(capsys):
    report.say("kept 90 of 100 users", quiet=True)
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("quiet", [False, True])
def test_status_off_a_terminal_runs_the_step_silently(capsys, quiet):
    assert not report.console.is_terminal  # the tests' stderr
    steps = []
    with report.status("reading ratings.dat", quiet=quiet):
        steps.append("read")
    assert steps == ["read"] and capsys.readouterr() == ("", "")
    with pytest.raises(ValueError, match="bad row"), report.status("reading", quiet=quiet):
        raise ValueError("bad row")
