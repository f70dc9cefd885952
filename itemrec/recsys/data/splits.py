"""Splits: assign every interaction to a part (train, val, test, or an inductive fold-in / target).

All splits are vectorized over users (numpy, and one compiled pass that orders each user's rows)
and fixed by one `seed`. Rows must come in a
canonical order (sorted by user index, then item index) so that the same data and seed give the
same split whatever the row order of the source file; `load_dataset` guarantees it.

Per-user ratios are rounded by largest remainder: each user's part sizes sum to its interaction
count and each lies within one interaction of `ratio * count`. On ties the later part wins
(test before val before train), so evaluation parts are not starved. A user with too few
interactions may get no test item: such users stay in training, are not evaluated, and their
count is printed.

A `given` split (the source's own train / test) gets its validation part from each user's
training rows: `val_ratio` of them, rounded down but at least one, for every user with two
training rows or more (`carve_counts`); users with one training row keep it in train. This is
IR-Benchmark's protocol (`max(int(0.1 * n), 1)` rows per user), except that it never takes a
user's only training row. The rows are drawn at random with the split's seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import IntEnum

import numpy as np
import polars as pl

from itemrec.experiment.errors import UserError
from itemrec.recsys.data.columns import GIVEN_SPLIT, TIMESTAMP, USER
from itemrec.recsys.data.report import say
from itemrec.recsys.data.split_kinds import SPLIT_KINDS


class Part(IntEnum):
    """Code of the part an interaction belongs to (the `part` column, UInt8)."""

    TRAIN = 0
    VAL = 1
    TEST = 2
    VAL_FOLD_IN = 3
    VAL_TARGET = 4
    TEST_FOLD_IN = 5
    TEST_TARGET = 6

    @property
    def label(self) -> str:
        """Lower-case name used in files and reports: `train`, `val_fold_in`, ..."""
        return self.name.lower()


@dataclass(frozen=True)
class SplitSpec:
    """How to split. Only the fields a kind uses matter for it.

    - `ratios`: train / val / test shares (random, user_temporal, global_temporal, and the
      training users of an inductive split). Must sum to 1.
    - `heldout`: inductive only: shares of all users held out of training as validation users
      and as test users. They are drawn among users with at least two interactions.
    - `fold_in`: inductive only: share of a held-out user's history revealed at evaluation to
      embed the user; the rest is its target. Both parts keep at least one interaction.
    - `by_time`: inductive only: cut fold-in / target (and the training users' ratio split) by
      time, oldest first, instead of at random.
    - `val_ratio`: given only: share of each user's training rows carved out as the validation
      part (see the module's notes on rounding); 0: no validation part.
    """

    kind: str = "random"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    heldout: tuple[float, float] = (0.1, 0.1)
    fold_in: float = 0.8
    by_time: bool = False
    val_ratio: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in SPLIT_KINDS:
            raise UserError(f"split: unknown kind {self.kind!r} (one of {', '.join(SPLIT_KINDS)})")
        object.__setattr__(self, "ratios", tuple(float(r) for r in self.ratios))
        object.__setattr__(self, "heldout", tuple(float(h) for h in self.heldout))
        if len(self.ratios) != 3 or min(self.ratios) < 0 or abs(sum(self.ratios) - 1) > 1e-6 or self.ratios[0] <= 0:
            raise UserError(f"split: ratios must be three non-negative train/val/test shares summing to 1 with train > 0, got {self.ratios}")
        if self.kind == "inductive":
            if len(self.heldout) != 2 or min(self.heldout) < 0 or not 0 < sum(self.heldout) < 1:
                raise UserError(f"split: heldout must be two val/test user shares in [0, 1) summing to more than 0 and less than 1, got {self.heldout}")
            if not 0 < self.fold_in < 1:
                raise UserError(f"split: fold_in must lie strictly between 0 and 1, got {self.fold_in}")
        object.__setattr__(self, "val_ratio", float(self.val_ratio))
        if not 0 <= self.val_ratio < 1:
            raise UserError(f"split: val_ratio must lie in [0, 1), got {self.val_ratio}")

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready fields."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, fields: dict[str, object]) -> SplitSpec:
        """Inverse of `to_dict`."""
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in fields.items()})  # type: ignore[arg-type]


@dataclass
class SplitOutcome:
    """Per-row part codes and what the split had to leave out of evaluation."""

    parts: np.ndarray
    users_without_test: int = 0
    notes: list[str] = field(default_factory=list)


def assign_parts(frame: pl.DataFrame, n_users: int, spec: SplitSpec, seed: int, *, source: str = "data", quiet: bool = False) -> SplitOutcome:
    """Part code (`Part`, uint8) of every row of `frame` (canonical order, `user` as index).

    Raises `UserError` when a part that should hold rows comes out empty or the data cannot
    support the split (no timestamps for a temporal split, no given split, too few users).
    """
    rng = np.random.default_rng(seed)
    user = frame[USER].to_numpy().astype(np.int64)
    counts_per_user = np.bincount(user, minlength=n_users)
    needs_time = spec.kind in ("user_temporal", "global_temporal") or (spec.kind == "inductive" and spec.by_time)
    if needs_time and TIMESTAMP not in frame.columns:
        raise UserError(f"{source}: a {spec.kind}{' by time' if spec.kind == 'inductive' else ''} split needs timestamps, and this source has none")
    time = frame[TIMESTAMP].to_numpy() if TIMESTAMP in frame.columns else None

    if spec.kind == "given":
        outcome = SplitOutcome(_given_parts(frame, source, user, n_users, spec.val_ratio, rng))
    elif spec.kind == "global_temporal":
        outcome = SplitOutcome(_global_temporal_parts(time, spec.ratios, rng))
    elif spec.kind == "inductive":
        outcome = _inductive_parts(user, counts_per_user, time if spec.by_time else None, spec, rng, source)
    else:
        if spec.kind == "leave_one_out":
            counts = _leave_one_out_counts(counts_per_user)
            order_time = time
        else:
            counts = split_counts(counts_per_user, np.asarray(spec.ratios))
            order_time = time if spec.kind == "user_temporal" else None
        codes = np.tile(np.array([Part.TRAIN, Part.VAL, Part.TEST], dtype=np.uint8), (n_users, 1))
        outcome = SplitOutcome(_parts_within_users(user, counts, codes, order_time, rng))
    _check_outcome(outcome, user, counts_per_user, spec, source, quiet)
    return outcome


def split_counts(n: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """[len(n), len(ratios)] part sizes: largest-remainder rounding of `n * ratios`, ties to later parts."""
    exact = n[:, None].astype(np.float64) * ratios[None, :]
    counts = np.floor(exact + 1e-9).astype(np.int64)
    remainder = n - counts.sum(axis=1)
    fraction = np.round(exact - counts, 9) + 1e-12 * np.arange(len(ratios))[None, :]
    priority = np.argsort(np.argsort(-fraction, axis=1, kind="stable"), axis=1, kind="stable")
    return counts + (priority < remainder[:, None])


def _leave_one_out_counts(n: np.ndarray) -> np.ndarray:
    """Newest row to test (users with >= 2 rows), the one before it to val (users with >= 3)."""
    test = (n >= 2).astype(np.int64)
    val = (n >= 3).astype(np.int64)
    return np.stack([n - val - test, val, test], axis=1)


def _parts_within_users(
    user: np.ndarray, counts: np.ndarray, codes: np.ndarray, time: np.ndarray | None, rng: np.random.Generator
) -> np.ndarray:
    """Part code of every row: each user's rows are ordered by time (ties at random) or at random,
    and the first `counts[u, 0]` get `codes[u, 0]`, the next `counts[u, 1]` `codes[u, 1]`, ...

    The order is that of `np.lexsort((shuffle, [time,] user))` with `shuffle = rng.random(rows)`
    (ties of `shuffle` by row): one stable sort of each user's rows, compiled (`_user_parts`), so
    the cost is `Σ_u n_u log n_u` in one pass, not a sort of all rows on several keys. Rows in
    canonical order (grouped by user) are used in place; others are grouped first.
    """
    shuffle = rng.random(user.size)
    by_user = None if user.size < 2 or bool((user[1:] >= user[:-1]).all()) else np.argsort(user, kind="stable")
    if by_user is not None:
        user, shuffle = user[by_user], shuffle[by_user]
        time = None if time is None else time[by_user]
    starts = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(user, minlength=counts.shape[0]), out=starts[1:])
    order_time = np.zeros(0) if time is None else np.ascontiguousarray(time)
    parts = np.empty(user.size, dtype=np.uint8)
    _user_parts_kernel()(starts, shuffle, order_time, time is not None, counts.astype(np.int64), codes.astype(np.uint8), parts)
    if by_user is None:
        return parts
    out = np.empty_like(parts)
    out[by_user] = parts
    return out


_COMPILED: Callable[..., None] | None = None


def _user_parts_kernel() -> Callable[..., None]:
    """`_user_parts` compiled by numba (cached on disk next to this file); numba is imported on
    first use, so that importing the data package does not pay for it."""
    global _COMPILED
    if _COMPILED is None:
        from itemrec.recsys.parallel import load_numba  # sizes numba's pool to torch's threads

        _COMPILED = load_numba().njit(nogil=True, cache=True)(_user_parts)
    return _COMPILED


def _user_parts(starts, shuffle, time, by_time, counts, codes, parts):  # pragma: no cover - compiled; checked against lexsort in the tests
    """Rows `starts[u] .. starts[u + 1]` are user `u`'s: sort them by `shuffle` (stable), then by
    `time` when `by_time` (stable: time ties stay in `shuffle` order, `shuffle` ties in row order),
    and give the row at position `j` of that order the code of the part `j` falls in."""
    n_parts = counts.shape[1]
    for u in range(starts.size - 1):
        lo, hi = starts[u], starts[u + 1]
        if hi == lo:
            continue
        order = np.argsort(shuffle[lo:hi], kind="mergesort")
        if by_time:
            order = order[np.argsort(time[lo:hi][order], kind="mergesort")]
        part = 0
        bound = counts[u, 0]
        for j in range(hi - lo):
            while j >= bound and part < n_parts - 1:
                part += 1
                bound += counts[u, part]
            parts[lo + order[j]] = codes[u, part]


def _global_temporal_parts(time: np.ndarray, ratios: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """One cut over all rows sorted by time (ties at random): oldest share to train, newest to test."""
    order = np.lexsort((rng.random(time.size), time))
    counts = split_counts(np.array([time.size]), np.asarray(ratios))[0]
    parts = np.empty(time.size, dtype=np.uint8)
    parts[order] = np.repeat(np.array([Part.TRAIN, Part.VAL, Part.TEST], dtype=np.uint8), counts)
    return parts


def _given_parts(
    frame: pl.DataFrame, source: str, user: np.ndarray, n_users: int, val_ratio: float, rng: np.random.Generator
) -> np.ndarray:
    """The source's own train/test assignment (LightGCN, IR-Benchmark files), with `val_ratio` of
    each user's training rows moved to val (`carve_counts`)."""
    if GIVEN_SPLIT not in frame.columns:
        raise UserError(
            f"{source}: the 'given' split needs a source that ships one (LightGCN train.txt / test.txt, "
            "IR-Benchmark train.tsv / test.tsv)"
        )
    given = frame[GIVEN_SPLIT].to_numpy()
    parts = np.where(given == "test", Part.TEST, Part.TRAIN).astype(np.uint8)
    if val_ratio > 0:
        train_rows = np.flatnonzero(parts == Part.TRAIN)
        n_train = np.bincount(user[train_rows], minlength=n_users)
        val = carve_counts(n_train, val_ratio)
        codes = np.tile(np.array([Part.TRAIN, Part.VAL], dtype=np.uint8), (n_users, 1))
        parts[train_rows] = _parts_within_users(user[train_rows], np.stack([n_train - val, val], axis=1), codes, None, rng)
    return parts


def carve_counts(n: np.ndarray, ratio: float) -> np.ndarray:
    """Validation rows taken from users with `n` training rows: `max(1, floor(ratio * n))` where
    `n >= 2`, else 0; never all of a user's rows (`ratio < 1`). 0 everywhere when `ratio` is 0."""
    n = np.asarray(n, dtype=np.int64)
    if ratio <= 0:
        return np.zeros_like(n)
    wanted = np.maximum(1, np.floor(n * ratio + 1e-9).astype(np.int64))
    return np.where(n >= 2, np.minimum(wanted, n - 1), 0)


def _inductive_parts(
    user: np.ndarray, n: np.ndarray, time: np.ndarray | None, spec: SplitSpec, rng: np.random.Generator, source: str
) -> SplitOutcome:
    """Held-out val / test users (fold-in + target), the other users split per-user by `ratios`."""
    n_users = n.size
    eligible = np.flatnonzero(n >= 2)
    wanted = [max(1, round(share * n_users)) if share > 0 else 0 for share in spec.heldout]
    if sum(wanted) >= eligible.size:
        raise UserError(
            f"{source}: cannot hold out {wanted[0]} val + {wanted[1]} test users: only {eligible.size} users have "
            "the two interactions a fold-in and a target need, and some must stay for training"
        )
    chosen = rng.permutation(eligible)
    val_users, test_users = chosen[: wanted[0]], chosen[wanted[0] : sum(wanted)]

    counts = split_counts(n, np.asarray(spec.ratios))
    codes = np.tile(np.array([Part.TRAIN, Part.VAL, Part.TEST], dtype=np.uint8), (n_users, 1))
    fold_in = np.clip(split_counts(n, np.array([spec.fold_in, 1 - spec.fold_in]))[:, 0], 1, np.maximum(n - 1, 1))
    for users, fold_code, target_code in ((val_users, Part.VAL_FOLD_IN, Part.VAL_TARGET), (test_users, Part.TEST_FOLD_IN, Part.TEST_TARGET)):
        counts[users] = np.stack([fold_in[users], n[users] - fold_in[users], np.zeros(users.size, dtype=np.int64)], axis=1)
        codes[users] = (fold_code, target_code, target_code)
    return SplitOutcome(_parts_within_users(user, counts, codes, time, rng))


def _check_outcome(outcome: SplitOutcome, user: np.ndarray, n: np.ndarray, spec: SplitSpec, source: str, quiet: bool) -> None:
    """No silent empty part: fail on one that should hold rows; count users left without test rows."""
    present = np.bincount(outcome.parts, minlength=len(Part))
    expected = {Part.TRAIN}
    if spec.kind in ("random", "user_temporal", "global_temporal", "inductive"):
        expected |= {p for p, share in zip((Part.VAL, Part.TEST), spec.ratios[1:]) if share > 0}
    if spec.kind in ("leave_one_out", "given"):
        expected |= {Part.TEST}
    if spec.kind == "given" and spec.val_ratio > 0:
        expected |= {Part.VAL}
    if spec.kind == "inductive":
        if spec.heldout[0] > 0:
            expected |= {Part.VAL_FOLD_IN, Part.VAL_TARGET}
        if spec.heldout[1] > 0:
            expected |= {Part.TEST_FOLD_IN, Part.TEST_TARGET}
    for part in sorted(expected):
        if present[part] == 0:
            hint = "use larger ratios or less filtering"
            if spec.kind == "given" and part == Part.VAL:
                hint = "no user has the two training rows a validation row needs; set val_ratio to 0 for none"
            raise UserError(f"{source}: the {spec.kind} split left the {part.label} part empty ({user.size:,} interactions of {n.size:,} users); {hint}")
    if spec.kind == "global_temporal" or Part.TEST not in expected:
        return
    with_test = np.zeros(n.size, dtype=bool)
    with_test[user[outcome.parts == Part.TEST]] = True
    heldout = np.zeros(n.size, dtype=bool)
    heldout[user[outcome.parts >= Part.VAL_FOLD_IN]] = True
    outcome.users_without_test = int((~with_test & ~heldout & (n > 0)).sum())
    if outcome.users_without_test:
        note = (
            f"split: {outcome.users_without_test:,} users have too few interactions for a test item; "
            "they stay in training and are not evaluated"
        )
        outcome.notes.append(note)
        say(note, quiet=quiet)
