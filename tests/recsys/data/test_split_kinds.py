"""The split kinds: what `SplitSpec` accepts and what an unknown kind's error lists."""

from __future__ import annotations

import pytest

from itemrec.experiment.errors import UserError
from itemrec.recsys.data.split_kinds import SPLIT_KINDS
from itemrec.recsys.data.splits import SplitSpec


def test_kinds():
    assert SPLIT_KINDS == ("random", "user_temporal", "global_temporal", "leave_one_out", "inductive", "given")


@pytest.mark.parametrize("kind", SPLIT_KINDS)
def test_every_kind_is_a_valid_split(kind):
    assert SplitSpec(kind=kind).kind == kind


def test_an_unknown_kind_lists_the_valid_ones():
    with pytest.raises(UserError) as err:
        SplitSpec(kind="temporal")
    assert str(err.value) == (
        "split: unknown kind 'temporal' (one of random, user_temporal, global_temporal, leave_one_out, inductive, given)"
    )
