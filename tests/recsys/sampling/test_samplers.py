from types import SimpleNamespace
from typing import get_args

import annotated_types
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy import stats

from itemrec.experiment.config import NamedSpec
from itemrec.experiment.errors import UserError
from itemrec.experiment.registry import accepted_parameters, build, checked_params
from itemrec.recsys.config import SAMPLER_KEYS, RecsysConfig, SamplerName, SamplingSection
from itemrec.recsys.pipeline import build_sampler
from itemrec.recsys.sampling import (
    SAMPLERS,
    InBatchNegatives,
    PopularityNegatives,
    PPRNegatives,
    TrainPositives,
    UniformNegatives,
    ppr_scores,
)
from tests.recsys.sampling.conftest import generator, is_positive, random_train


def test_train_positives_gather_contains_and_dense():
    train = random_train(20, 15, 0.3, seed=1)
    positives = TrainPositives(train)
    users = torch.tensor([3, 0, 3, 19])
    row, item = positives.gather(users)
    for r, u in enumerate(users.tolist()):
        assert sorted(item[row == r].tolist()) == sorted(train[u].indices.tolist())
    items = torch.randint(15, (4, 30), generator=generator())
    assert (positives.contains(users, items).numpy() == is_positive(train, users, items)).all()
    np.testing.assert_array_equal(positives.dense(users).numpy(), train[users.numpy()].toarray())


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_samplers_never_return_a_positive_and_repeat_with_the_seed(name):
    train = random_train(30, 40, 0.6, seed=2)  # dense rows: many collisions to reject
    sampler = SAMPLERS[name](train)
    users = torch.arange(30).repeat(3)
    first = sampler.sample(users, 50, generator(5))
    assert first.shape == (90, 50) and first.dtype == torch.long
    assert not is_positive(train, users, first).any()
    assert torch.equal(sampler.sample(users, 50, generator(5)), first)
    assert not torch.equal(sampler.sample(users, 50, generator(6)), first)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_a_user_owning_all_but_one_item_gets_that_item(name):
    dense = np.ones((3, 6), dtype=np.float32)
    dense[0, 4] = 0  # user 0: only item 4 is a negative
    dense[1, :3] = 0
    train = sp.csr_matrix(dense)
    items = SAMPLERS[name](train).sample(torch.tensor([0, 1]), 20, generator())
    assert (items[0] == 4).all()
    assert set(items[1].tolist()) <= {0, 1, 2}


def test_uniform_frequencies_are_flat_over_negatives():
    train = random_train(4, 10, 0.3, seed=3)
    items = UniformNegatives(train).sample(torch.tensor([1]), 40_000, generator())[0]
    negatives = np.setdiff1d(np.arange(10), train[1].indices)
    counts = np.bincount(items.numpy(), minlength=10)[negatives]
    assert stats.chisquare(counts).pvalue > 1e-3


def test_popularity_frequencies_follow_pop_to_the_beta():
    # item popularity 1..8 (items 0..7); user 8 has no positives, so draws follow pop^β exactly
    dense = np.zeros((9, 8), dtype=np.float32)
    for item in range(8):
        dense[: item + 1, item] = 1
    dense[8] = 0
    train = sp.csr_matrix(dense)
    sampler = PopularityNegatives(train, beta=0.75)
    items = sampler.sample(torch.tensor([8]), 80_000, generator())[0]
    counts = np.bincount(items.numpy(), minlength=8)
    expected = np.arange(1, 9) ** 0.75
    assert stats.chisquare(counts, expected / expected.sum() * counts.sum()).pvalue > 1e-3
    # user 0 owns every item: no negative exists, the row is still full (of positives)
    items = sampler.sample(torch.tensor([0]), 80_000, generator(1))[0]  # user 0 owns every item
    assert items.shape == (80_000,)


def test_popularity_conditional_on_negatives():
    dense = np.zeros((9, 8), dtype=np.float32)
    for item in range(8):
        dense[1 : item + 2, item] = 1
    dense[0, [6, 7]] = 1  # user 0 owns the two most popular items
    train = sp.csr_matrix(dense)
    items = PopularityNegatives(train, beta=0.75).sample(torch.tensor([0]), 60_000, generator())[0]
    counts = np.bincount(items.numpy(), minlength=8)
    assert counts[6] == counts[7] == 0
    popularity = np.asarray(train.sum(0), dtype=np.float64).ravel()[:6]
    expected = popularity**0.75
    assert stats.chisquare(counts[:6], expected / expected.sum() * counts.sum()).pvalue > 1e-3


def test_in_batch_negatives_are_other_users_positives():
    train = random_train(50, 200, 0.02, seed=4)
    users = torch.tensor([0, 1, 2, 3])
    items = InBatchNegatives(train).sample(users, 30, generator())
    pool = set(train[users.numpy()].indices.tolist())
    assert set(items.flatten().tolist()) <= pool
    assert not is_positive(train, users, items).any()


def test_ppr_negatives_mix_hard_and_uniform():
    train = random_train(40, 60, 0.1, seed=5)
    sampler = PPRNegatives(train, topk=5, hard_ratio=0.6, skip=0)
    users = torch.arange(40)
    items = sampler.sample(users, 10, generator())
    assert items.shape == (40, 10) and items.dtype == torch.long and not is_positive(train, users, items).any()
    hard = items[:, :6]
    assert all(set(h.tolist()) <= set(t.tolist()) for h, t in zip(hard, sampler.table))


def test_ppr_negatives_skip_the_top_ranks():
    train = random_train(40, 60, 0.1, seed=5)
    top, _ = ppr_scores(train, None, topk=15)
    sampler = PPRNegatives(train, topk=5, skip=10)
    assert sampler.compute().dtype == torch.int32  # item ids kept as int32: half the table's memory
    assert torch.equal(sampler.compute().long(), top[:, 10:15])
    small = PPRNegatives(train, topk=50, skip=30)  # 60 items: only 10 can be skipped
    assert torch.equal(small.compute().long(), ppr_scores(train, None, topk=60)[0][:, 10:60])


def test_ppr_refresh_schedule_recomputes_only_a_changed_graph():
    train = random_train(20, 30, 0.2, seed=6)
    sampler = PPRNegatives(train, topk=4, refresh_every=3)
    assert sampler.maybe_refresh(0) and sampler.table is not None
    table = sampler.table
    assert not sampler.maybe_refresh(1) and not sampler.maybe_refresh(3)  # due, graph unchanged
    assert sampler.table is table
    changed = train.tolil()
    changed[0, :] = 0
    changed[0, 29] = 1
    sampler.update_graph(changed.tocsr())
    assert not sampler.maybe_refresh(4)  # not due yet (last due: 3)
    assert sampler.maybe_refresh(6)
    assert not torch.equal(sampler.table, table)


@pytest.mark.parametrize(
    "spec, message",
    [
        (NamedSpec(name="ppr", hard_ratio=1.5), "sampling.hard_ratio: must be in [0, 1] (got 1.5)"),
        (NamedSpec(name="ppr", refresh_every=0), "sampling.refresh_every: must be >= 1 (got 0)"),
        (NamedSpec(name="ppr", alpha=1.0), "sampling.alpha: must be in (0, 1) (got 1.0)"),
        (NamedSpec(name="ppr", eps=0), "sampling.eps: must be > 0 (got 0)"),
        (NamedSpec(name="ppr", skip=-1), "sampling.skip: must be >= 0 (got -1)"),
        (NamedSpec(name="ppr", topk="many"), "sampling.topk: must be a valid integer (got 'many')"),
        (NamedSpec(name="popularity", beta=-0.5), "sampling.beta: must be >= 0 (got -0.5)"),
        (
            NamedSpec(name="ppr", ppr_topk=10),
            "sampling.ppr_topk: unknown parameter for ppr (known: topk, alpha, hard_ratio, refresh_every, "
            "iterations, batch_size, skip, method, walks, hops, eps)",
        ),
        (NamedSpec(name="uniform", beta=0.5), "sampling.beta: unknown parameter for uniform (known: )"),
        (NamedSpec(name="hard"), "sampling.name: unknown sampling 'hard' (known: in_batch, popularity, ppr, uniform)"),
    ],
)
def test_bad_sampler_parameters_fail_with_one_line_naming_the_key(spec, message):
    with pytest.raises(UserError) as err:
        build(SAMPLERS, spec, "sampling", random_train(5, 5, 0.5), seed=0)
    assert str(err.value) == message


def test_registry_builds_the_sampler_with_its_parameters():
    train = random_train(5, 8, 0.3)
    sampler = build(SAMPLERS, NamedSpec(name="ppr", topk=3, alpha=0.2, method="walks", walks=7), "sampling", train, seed=4)
    assert isinstance(sampler, PPRNegatives)
    assert (sampler.topk, sampler.alpha, sampler.method, sampler.walks, sampler.seed) == (3, 0.2, "walks", 7, 4)
    popularity = build(SAMPLERS, NamedSpec(name="popularity", beta=1), "sampling", train, seed=4)
    assert popularity.beta == 1.0 and isinstance(popularity.beta, float)


def test_sampler_table_matches_the_config():
    assert set(SAMPLERS) == set(get_args(SamplerName)) == set(SAMPLER_KEYS)
    for name, keys in SAMPLER_KEYS.items():
        assert set(keys) <= set(accepted_parameters(SAMPLERS[name])), name
        assert set(keys.values()) <= set(SamplingSection.model_fields), name


def _config_bounds(key: str) -> list[float]:
    """The extreme values `sampling.<key>` accepts (inclusive bounds, or just inside exclusive ones)."""
    field = SamplingSection.model_fields[key]
    step = 1 if field.annotation is int else 1e-12
    values = []
    for bound in field.metadata:
        if isinstance(bound, annotated_types.Ge):
            values.append(bound.ge)
        elif isinstance(bound, annotated_types.Le):
            values.append(bound.le)
        elif isinstance(bound, annotated_types.Gt):
            values.append(bound.gt + step)
        elif isinstance(bound, annotated_types.Lt):
            values.append(bound.lt - step)
    return values


def test_every_value_the_config_accepts_builds():
    """The config's ranges lie inside the samplers' `param_rules`: a valid config never fails at build."""
    for name, keys in SAMPLER_KEYS.items():
        for param, key in keys.items():
            for value in [SamplingSection.model_fields[key].default, *_config_bounds(key)]:
                spec = NamedSpec(name=name, **{param: value})
                assert checked_params(SAMPLERS[name], spec, "sampling", 1, {"seed": 0}) == {param: value}


@pytest.mark.parametrize(
    "overrides",
    [
        {"negatives": "uniform"},
        {"negatives": "in_batch"},
        {"negatives": "popularity", "popularity_beta": 0.5},
        {"negatives": "ppr", "ppr_topk": 6, "ppr_skip": 2, "ppr_method": "walks", "ppr_walks": 20, "hard_ratio": 0.75},
        {"negatives": "ppr", "ppr_topk": 6, "ppr_skip": 2, "ppr_method": "exact", "ppr_alpha": 0.3},
    ],
)
def test_build_sampler_from_config_draws_like_the_sampler_itself(overrides):
    train = random_train(30, 40, 0.2, seed=3)
    config = RecsysConfig(task="recsys", seed=7, data={"source": "x"}, sampling=overrides)
    built = build_sampler(config, SimpleNamespace(train=train))
    s = config.sampling
    by_hand = {
        "uniform": lambda: UniformNegatives(train),
        "in_batch": lambda: InBatchNegatives(train),
        "popularity": lambda: PopularityNegatives(train, beta=s.popularity_beta),
        "ppr": lambda: PPRNegatives(
            train, topk=s.ppr_topk, skip=s.ppr_skip, alpha=s.ppr_alpha, hard_ratio=s.hard_ratio,
            refresh_every=s.refresh_every, method=s.ppr_method, walks=s.ppr_walks, hops=s.ppr_walk_hops,
            eps=s.ppr_eps, seed=7,
        ),
    }[s.negatives]()
    assert type(built) is type(by_hand)
    users = torch.arange(30)
    assert built.maybe_refresh(1) == by_hand.maybe_refresh(1)
    assert torch.equal(built.sample(users, 12, generator(2)), by_hand.sample(users, 12, generator(2)))
