"""Split invariants: disjoint, covering, per-user ratios within one, seeded, and the inductive rules."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from itemrec.experiment.errors import UserError
from itemrec.recsys.data import InteractionData, Part, SplitSpec, load_dataset
from itemrec.recsys.data.splits import _parts_within_users, carve_counts, split_counts


def load(path: Path, **kwargs) -> InteractionData:
    return load_dataset(path, quiet=True, **kwargs)


def part_counts(data: InteractionData) -> np.ndarray:
    """[n_users, len(Part)] interactions of each user in each part."""
    frame = data.interactions
    counts = np.zeros((data.n_users, len(Part)), dtype=np.int64)
    np.add.at(counts, (frame["user"].to_numpy(), frame["part"].to_numpy()), 1)
    return counts


def reference_counts(n: int, ratios: list[float]) -> list[int]:
    """Largest remainder, ties to the later part, written out plainly."""
    exact = [n * r for r in ratios]
    counts = [int(np.floor(x + 1e-9)) for x in exact]
    order = sorted(range(len(ratios)), key=lambda p: (-round(exact[p] - counts[p], 9), -p))
    for p in order[: n - sum(counts)]:
        counts[p] += 1
    return counts


@settings(max_examples=60, deadline=None)
@given(n=st.lists(st.integers(0, 80), min_size=1, max_size=20), cut=st.tuples(st.integers(1, 18), st.integers(0, 10)))
def test_split_counts_match_the_rule_and_stay_within_one(n, cut):
    ratios = [cut[0] / 20, min(cut[1], 19 - cut[0]) / 20]
    ratios.append(1 - sum(ratios))
    counts = split_counts(np.array(n), np.array(ratios))
    assert counts.tolist() == [reference_counts(k, ratios) for k in n]
    assert (counts.sum(axis=1) == np.array(n)).all()
    assert (np.abs(counts - np.array(n)[:, None] * np.array(ratios)[None, :]) < 1).all()


def test_split_counts_hand_values():
    # 25 * (0.8, 0.1, 0.1) = (20, 2.5, 2.5): one spare interaction, tie goes to test.
    assert split_counts(np.array([25, 4, 2]), np.array([0.8, 0.1, 0.1])).tolist() == [[20, 2, 3], [3, 0, 1], [2, 0, 0]]


def test_random_split_is_disjoint_covering_and_within_one(table_csv: Path):
    data = load(table_csv)
    assert data.train.nnz + data.val.nnz + data.test.nnz == 600
    for a, b in ((data.train, data.val), (data.train, data.test), (data.val, data.test)):
        assert a.multiply(b).nnz == 0
    counts = part_counts(data)
    n = counts.sum(axis=1)
    assert (np.abs(counts[:, :3] - n[:, None] * np.array([0.8, 0.1, 0.1])) < 1).all()
    assert (counts[:, 3:] == 0).all()


def test_same_seed_same_split_other_seed_other_split(table_csv: Path, tmp_path: Path):
    first, again, other = load(table_csv, seed=1), load(table_csv, seed=1), load(table_csv, seed=2)
    assert first.interactions.equals(again.interactions)
    assert not first.interactions["part"].equals(other.interactions["part"])
    # The split depends on the data, not on the order of the file's rows.
    shuffled = tmp_path / "shuffled.csv"
    pl.read_csv(table_csv).sample(fraction=1.0, shuffle=True, seed=5).write_csv(shuffled)
    assert load(shuffled, seed=1).interactions.equals(first.interactions)


def test_user_temporal_puts_the_newest_rows_last(table_csv: Path):
    data = load(table_csv, split=SplitSpec("user_temporal"))
    by_user = data.interactions.group_by("user", "part").agg(pl.col("timestamp").min().alias("lo"), pl.col("timestamp").max().alias("hi"))
    for user in range(data.n_users):
        spans = {row["part"]: (row["lo"], row["hi"]) for row in by_user.filter(pl.col("user") == user).iter_rows(named=True)}
        ordered = [spans[p] for p in (Part.TRAIN, Part.VAL, Part.TEST) if p in spans]
        assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(ordered))
    counts = part_counts(data)
    assert (np.abs(counts[:, :3] - counts.sum(axis=1)[:, None] * np.array([0.8, 0.1, 0.1])) < 1).all()


def test_global_temporal_cuts_once_in_time(table_csv: Path):
    data = load(table_csv, split=SplitSpec("global_temporal", ratios=(0.7, 0.2, 0.1)))
    frame = data.interactions
    times = {p: frame.filter(pl.col("part") == int(p))["timestamp"] for p in (Part.TRAIN, Part.VAL, Part.TEST)}
    assert [times[p].len() for p in times] == [420, 120, 60]
    assert times[Part.TRAIN].max() <= times[Part.VAL].min() and times[Part.VAL].max() <= times[Part.TEST].min()


def test_leave_one_out_takes_the_newest_rows(write):
    text = "user_id,item_id,timestamp\n" + "".join(f"{u},{i},{10 * i + u}\n" for u in range(3) for i in range(5)) + "9,1,5\n9,2,6\n"
    data = load(write("a.csv", text), split=SplitSpec("leave_one_out"))
    frame = data.interactions
    assert frame.filter(pl.col("part") == Part.TEST).select("user", "item").rows() == [(0, 4), (1, 4), (2, 4), (3, 2)]
    assert frame.filter(pl.col("part") == Part.VAL).select("user", "item").rows() == [(0, 3), (1, 3), (2, 3)]
    assert data.users.to_ids([3]).to_list() == [9]


def test_given_split_is_kept(write):
    write("g/train.txt", "0 1 2 3\n1 2 3\n")
    data = load(write("g/test.txt", "0 4\n1 1\n").parent, split=SplitSpec("given", val_ratio=0))
    assert data.split.kind == "given"
    assert sorted(zip(*data.test.nonzero())) == [(0, 3), (1, 0)]  # item ids 1..4 -> indices 0..3
    assert data.train.nnz == 5 and data.val.nnz == 0 and not data.has_validation


# --- a validation part carved from a given split's training rows ---------------------------------


def test_carve_counts_hand_values():
    # floor(0.1 n), at least one where n >= 2, none where n < 2
    n = np.array([0, 1, 2, 9, 10, 11, 19, 20, 25, 100])
    assert carve_counts(n, 0.1).tolist() == [0, 0, 1, 1, 1, 1, 1, 2, 2, 10]
    assert carve_counts(np.array([2, 3, 4, 8, 9]), 0.25).tolist() == [1, 1, 1, 2, 2]
    assert carve_counts(np.array([2, 3, 10]), 0.9).tolist() == [1, 2, 9]  # never a user's last row
    assert carve_counts(n, 0.0).tolist() == [0] * n.size


@settings(max_examples=60, deadline=None)
@given(n=st.lists(st.integers(0, 300), min_size=1, max_size=30), ratio=st.floats(0.01, 0.99))
def test_carve_never_takes_a_users_last_training_row(n, ratio):
    n = np.array(n)
    val = carve_counts(n, ratio)
    assert (val <= np.maximum(n - 1, 0)).all()
    assert (val[n >= 2] >= 1).all()
    assert (val == np.where(n >= 2, np.clip(np.floor(n * ratio + 1e-9), 1, n - 1), 0)).all()


def test_given_split_carves_validation_per_user(tmp_path: Path, make_irbench):
    # users 3, 7, 9 have 3, 2 and 1 training rows: 1, 1 and 0 of them go to val at 10 %
    data = load(make_irbench(tmp_path / "proc.zip"))
    assert data.split == SplitSpec("given", val_ratio=0.1)
    counts = part_counts(data)
    assert counts[:, [Part.TRAIN, Part.VAL, Part.TEST]].tolist() == [[2, 1, 1], [1, 1, 1], [1, 0, 1]]
    assert data.has_validation
    # val rows come from the published training rows only; test stays as published
    published_train = {(3, 10), (3, 11), (3, 12), (7, 11), (7, 20), (9, 10)}
    val = {(data.users.to_ids([u])[0], data.items.to_ids([i])[0]) for u, i in zip(*data.val.nonzero())}
    train = {(data.users.to_ids([u])[0], data.items.to_ids([i])[0]) for u, i in zip(*data.train.nonzero())}
    test = {(data.users.to_ids([u])[0], data.items.to_ids([i])[0]) for u, i in zip(*data.test.nonzero())}
    assert val | train == published_train and not val & train
    assert test == {(3, 20), (7, 10), (9, 12)}


def test_given_split_ids_are_remapped_and_mapped_back(tmp_path: Path, make_irbench):
    data = load(make_irbench(tmp_path / "proc"))
    assert data.users.to_ids(range(data.n_users)).to_list() == [3, 7, 9]
    assert data.items.to_ids(range(data.n_items)).to_list() == [10, 11, 12, 20]
    assert data.users.to_index([9, 3]).tolist() == [2, 0] and data.items.to_index([20]).tolist() == [3]


def given_source(tmp_path: Path, make_irbench, users: int = 30, per_user: int = 20) -> Path:
    train = [(u, i) for u in range(users) for i in range(per_user)]
    test = [(u, per_user + u % 5) for u in range(users)]
    return make_irbench(tmp_path / "proc.zip", train=train, test=test)


def val_pairs(data: InteractionData) -> set:
    return set(zip(*data.val.nonzero()))


def test_carving_is_seeded(tmp_path: Path, make_irbench):
    source = given_source(tmp_path, make_irbench)
    first, again, other = (load(source, seed=s) for s in (0, 0, 1))
    assert val_pairs(first) == val_pairs(again)
    assert (first.train != again.train).nnz == 0 and (first.test != again.test).nnz == 0
    assert val_pairs(first) != val_pairs(other)
    assert (first.test != other.test).nnz == 0  # only the carve depends on the seed
    for data in (first, other):
        assert np.diff(data.val.indptr).tolist() == [2] * 30  # floor(0.1 * 20) per user
        assert np.diff(data.train.indptr).tolist() == [18] * 30


def test_carving_follows_val_ratio(tmp_path: Path, make_irbench):
    source = given_source(tmp_path, make_irbench)
    data = load(source, split=SplitSpec("given", val_ratio=0.25))
    assert np.diff(data.val.indptr).tolist() == [5] * 30
    none = load(source, split=SplitSpec("given", val_ratio=0))
    assert none.val.nnz == 0 and not none.has_validation and none.train.nnz == 600


def test_carving_does_not_depend_on_row_order(tmp_path: Path, make_irbench):
    train = [(u, i) for u in range(8) for i in range(12)]
    test = [(u, 12) for u in range(8)]
    forward = load(make_irbench(tmp_path / "a.zip", train=train, test=test), seed=4)
    backward = load(make_irbench(tmp_path / "b.zip", train=train[::-1], test=test), seed=4)
    assert val_pairs(forward) == val_pairs(backward)


def test_loading_prints_the_part_sizes(tmp_path: Path, make_irbench, capsys):
    load_dataset(make_irbench(tmp_path / "proc.zip"), seed=3)
    err = capsys.readouterr().err
    assert (
        "given split, val 10 % of each user's training rows, seed 3: train 4 interactions / 3 users, "
        "val 2 interactions / 2 users, test 3 interactions / 3 users"
    ) in " ".join(err.split())


def test_no_user_to_carve_from_is_an_error(tmp_path: Path, make_irbench):
    archive = make_irbench(tmp_path / "proc.zip", train=[(1, 1), (2, 2)], test=[(1, 2), (2, 1)])
    with pytest.raises(UserError, match="left the val part empty .*set val_ratio to 0 for none$"):
        load(archive)
    assert load(archive, split=SplitSpec("given", val_ratio=0)).train.nnz == 2


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_bad_val_ratio(ratio: float):
    with pytest.raises(UserError, match=r"^split: val_ratio must lie in \[0, 1\)"):
        SplitSpec("given", val_ratio=ratio)


# --- inductive ------------------------------------------------------------------------------------


@pytest.fixture
def inductive_csv(tmp_path: Path, make_table) -> Path:
    path = tmp_path / "inductive.csv"
    make_table(60, 40, 1200, seed=3).write_csv(path)
    return path


@pytest.mark.parametrize("by_time", [False, True])
def test_inductive_users_never_reach_training(inductive_csv: Path, by_time: bool):
    spec = SplitSpec("inductive", heldout=(0.1, 0.15), fold_in=0.7, by_time=by_time)
    data = load(inductive_csv, split=spec, seed=4)
    heldout = data.inductive
    assert heldout is not None
    assert heldout.val_users.size == 6 and heldout.test_users.size == 9
    assert np.intersect1d(heldout.val_users, heldout.test_users).size == 0
    held = np.concatenate([heldout.val_users, heldout.test_users])
    for matrix in (data.train, data.val, data.test):
        assert matrix[held].nnz == 0
    assert not np.isin(data.edge_index()[0].numpy(), held).any()
    assert np.intersect1d(data.train_users, held).size == 0

    full = data.train + data.val + data.test + heldout.val_fold_in + heldout.val_target + heldout.test_fold_in + heldout.test_target
    assert full.nnz == 1200 and full.max() == 1
    counts = part_counts(data)
    for users, fold, target in ((heldout.val_users, Part.VAL_FOLD_IN, Part.VAL_TARGET), (heldout.test_users, Part.TEST_FOLD_IN, Part.TEST_TARGET)):
        n = counts[users].sum(axis=1)
        assert (counts[users, fold] >= 1).all() and (counts[users, target] >= 1).all()
        assert (np.abs(counts[users, fold] - 0.7 * n) < 1).all()
        assert (counts[users, fold] + counts[users, target] == n).all()
    if by_time:
        frame = data.interactions
        for user in held:
            rows = frame.filter(pl.col("user") == user)
            revealed = rows.filter(pl.col("part").is_in([int(Part.VAL_FOLD_IN), int(Part.TEST_FOLD_IN)]))["timestamp"]
            scored = rows.filter(pl.col("part").is_in([int(Part.VAL_TARGET), int(Part.TEST_TARGET)]))["timestamp"]
            assert revealed.max() <= scored.min()


def test_inductive_is_seeded(inductive_csv: Path):
    spec = SplitSpec("inductive")
    a, b, c = (load(inductive_csv, split=spec, seed=s) for s in (7, 7, 8))
    assert a.interactions.equals(b.interactions)
    assert not np.array_equal(a.inductive.test_users, c.inductive.test_users)


# --- what a split cannot do ---------------------------------------------------------------------


def test_empty_test_part_is_an_error(write):
    path = write("a.csv", "user_id,item_id\n1,1\n1,2\n2,1\n2,2\n")  # two rows per user: no test row at 0.8/0.1/0.1
    with pytest.raises(UserError, match=r"a\.csv: the random split left the val part empty"):
        load(path)


def test_users_without_test_rows_are_counted(write, capsys):
    rows = "".join(f"1,{i}\n" for i in range(10)) + "2,1\n2,2\n"
    data = load_dataset(write("a.csv", "user_id,item_id\n" + rows), split=SplitSpec(ratios=(0.8, 0.0, 0.2)))
    assert data.users_without_test == 1 and data.stats().users_without_test == 1
    assert "1 users have too few interactions for a test item" in capsys.readouterr().err


def test_temporal_split_needs_timestamps(write):
    with pytest.raises(UserError, match="needs timestamps"):
        load(write("a.csv", "user_id,item_id\n1,1\n"), split=SplitSpec("user_temporal"))


def test_given_split_needs_a_source_with_one(table_csv: Path):
    with pytest.raises(UserError, match="ships one"):
        load(table_csv, split=SplitSpec("given"))


def test_inductive_needs_enough_users(write):
    path = write("a.csv", "user_id,item_id\n1,1\n1,2\n2,1\n2,2\n")
    with pytest.raises(UserError, match="cannot hold out 1 val \\+ 1 test users"):
        load(path, split=SplitSpec("inductive"))


@pytest.mark.parametrize(
    "kwargs",
    [{"kind": "by-magic"}, {"ratios": (0.5, 0.1, 0.1)}, {"ratios": (0.0, 0.5, 0.5)}, {"kind": "inductive", "heldout": (0.6, 0.5)}, {"kind": "inductive", "fold_in": 1.0}],
)
def test_bad_split_spec(kwargs):
    with pytest.raises(UserError, match=r"^split: "):
        SplitSpec(**kwargs)


class TiedDraws:
    """A generator stand-in whose `random` draws repeat (quarters), so the tie rules are exercised."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def random(self, size: int) -> np.ndarray:
        return self.rng.integers(0, 4, size) / 4


def reference_parts(user, counts, codes, time, shuffle) -> np.ndarray:
    """Plain per-user loop: order each user's rows by (time, shuffle, row), deal the parts out."""
    parts = np.empty(user.size, dtype=np.uint8)
    for u in np.unique(user):
        rows = sorted(np.flatnonzero(user == u), key=lambda r: (0 if time is None else time[r], shuffle[r], r))
        labels = np.repeat(codes[u], counts[u])
        for position, row in enumerate(rows):
            parts[row] = labels[position]
    return parts


@pytest.mark.parametrize("grouped", [True, False])
@pytest.mark.parametrize("timed", [True, False])
@pytest.mark.parametrize("tied", [True, False])
def test_parts_within_users_equal_a_per_user_reference(grouped: bool, timed: bool, tied: bool):
    rng = np.random.default_rng(3)
    n_users = 40
    user = rng.integers(0, n_users, 700)
    if grouped:
        user = np.sort(user)
    time = rng.integers(0, 5, user.size) if timed else None  # many time ties
    n = np.bincount(user, minlength=n_users)
    counts = split_counts(n, np.array([0.5, 0.0, 0.5]) if tied else np.array([0.7, 0.2, 0.1]))  # a zero part
    codes = rng.integers(0, 7, (n_users, 3)).astype(np.uint8)

    def draws():
        return TiedDraws(5) if tied else np.random.default_rng(5)

    shuffle = draws().random(user.size)
    got = _parts_within_users(user, counts, codes, time, draws())
    assert got.tolist() == reference_parts(user, counts, codes, time, shuffle).tolist()
    assert got.tolist() == _parts_within_users(user, counts, codes, time, draws()).tolist()  # seeded
