"""benchmarks/ease_gap.py: the pooled paired test against EASE, the job list, the variants' overrides."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from benchmarks import ease_gap
from itemrec.experiment.config import load_config


def test_pooled_paired_tests_the_per_user_mean_over_seeds():
    ease = np.array([0.0, 0.5, 1.0, 0.2, 0.4])
    seeds = [np.array([1.0, 0.5, 0.0, 0.4, 0.4]), np.array([0.0, 0.5, 1.0, 0.6, 0.8])]
    diff, t_p, w_p = ease_gap.pooled_paired(seeds, ease)
    # per-user means 0.5, 0.5, 0.5, 0.5, 0.6 -> differences 0.5, 0, -0.5, 0.3, 0.2
    assert diff == pytest.approx(0.1)
    d = np.array([0.5, 0.0, -0.5, 0.3, 0.2])
    assert t_p == pytest.approx(stats.ttest_1samp(d, 0.0).pvalue)
    assert w_p == pytest.approx(stats.wilcoxon(d).pvalue)
    assert ease_gap.pooled_paired([ease, ease], ease) == (0.0, 1.0, 1.0)
    # float32 per-user metrics: a t of about 16 over 30,000 users has p near 1e-55, which float32 rounds to 0
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 0.3, 30_000)
    runs = [(base + 0.009 + rng.normal(0, 0.1, base.size)).astype(np.float32) for _ in range(2)]
    _, t_p, w_p = ease_gap.pooled_paired(runs, base.astype(np.float32))
    assert 0 < t_p < 1e-40 and 0 < w_p < 1e-40


def test_jobs_are_ease_once_then_each_variant_and_seed():
    grid = ease_gap.jobs(["config", "constant_lr"], [0, 1])
    assert [(j.experiment, j.tags["study.variant"], j.tags["study.seed"]) for j in grid] == [
        ("ml1m_ease", "ease", "0"),
        ("ml1m_best_ranking_loss", "config", "0"), ("ml1m_best_ranking_loss", "config", "1"),
        ("ml1m_best_ranking_loss", "constant_lr", "0"), ("ml1m_best_ranking_loss", "constant_lr", "1"),
    ]
    assert len({j.key for j in grid}) == len(grid)


@pytest.mark.parametrize("variant", list(ease_gap.VARIANTS))
def test_every_variant_is_a_valid_config_on_split_zero(variant):
    config = load_config(ease_gap.CONFIG, [*ease_gap.VARIANTS[variant], "seed=2", "data.split_seed=0"])
    assert config.seed == 2 and config.data.split_seed == 0
    assert config.name == "ml1m_best_ranking_loss"  # the runs land in the config's experiment
    if variant != "config":
        assert config.train.lr_decay == 1.0
