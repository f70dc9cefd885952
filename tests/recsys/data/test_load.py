"""load_dataset end to end: cleaning order, messages, and errors that name the source."""

from __future__ import annotations

from pathlib import Path

import pytest

from itemrec.experiment.errors import UserError
from itemrec.recsys.data import Columns, SplitSpec, load_dataset

TEXT = "u,i,r,t\n1,a,5,1\n1,a,2,9\n1,b,4,2\n2,a,4,3\n2,b,5,4\n3,a,1,5\n3,b,4,6\n"
COLUMNS = Columns(user="u", item="i", rating="r", timestamp="t")


def test_dedup_then_threshold_then_k_core(write, capsys):
    # dedup keeps (1, a) rated 2 at t=9; >= 4 drops it and (3, a); a (2, 1)-core keeps user 2 only.
    data = load_dataset(write("a.csv", TEXT), columns=COLUMNS, min_rating=4, k_core=(2, 1), split=SplitSpec(ratios=(1.0, 0.0, 0.0)))
    assert data.users.ids.to_list() == [2] and data.items.ids.to_list() == ["a", "b"]
    assert data.interactions.select("user", "item", "rating", "timestamp").rows() == [(0, 0, 4.0, 3), (0, 1, 5.0, 4)]
    assert data.train.nnz == 2
    err = capsys.readouterr().err
    assert "read 7 interactions, 3 users, 2 items" in err
    assert "dedup: dropped 1 repeated" in err
    assert "threshold: dropped 2 rows rated below 4" in err
    assert "k-core (users >= 2, items >= 1): dropped 2 rows, 2 users, 0 items" in err


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_rating": 6}, "no interactions left after keeping ratings >= 6"),
        ({"k_core": 5}, "no interactions left after the 5/5-core filter"),
    ],
)
def test_empty_after_filtering(write, kwargs, message):
    path = write("a.csv", TEXT)
    with pytest.raises(UserError, match=f"^{path}: {message}$"):
        load_dataset(path, columns=COLUMNS, quiet=True, **kwargs)


def test_threshold_without_ratings(write):
    path = write("a.csv", "user_id,item_id\n1,2\n")
    with pytest.raises(UserError, match=rf"^{path}: a rating threshold \(4\) needs a rating column"):
        load_dataset(path, min_rating=4, quiet=True)


def test_unknown_source(tmp_path: Path):
    with pytest.raises(UserError, match="no such file or directory, nor a named dataset"):
        load_dataset(tmp_path / "nothing.csv")
