"""Negative samplers, the training rows built from them, and SL@K's per-user top-K thresholds.

Samplers share `sample(users [B], n, generator) -> items [B, n]` (never a training positive of
the row's user when it has enough negatives) and `maybe_refresh(epoch)`. Build one through the
registry, which checks its parameters by name, type and range (`param_rules`):
`itemrec.experiment.registry.build(SAMPLERS, spec, "sampling", train, seed=seed)`, as
`itemrec.recsys.pipeline.build_sampler` does from a config.
"""

from itemrec.recsys.sampling.base import NegativeSampler, TrainPositives
from itemrec.recsys.sampling.in_batch import InBatchNegatives
from itemrec.recsys.sampling.popularity import PopularityNegatives
from itemrec.recsys.sampling.ppr import PPRNegatives, ppr_scores
from itemrec.recsys.sampling.ppr_local import approximate_ppr_scores
from itemrec.recsys.sampling.quantiles import UserQuantiles
from itemrec.recsys.sampling.rows import (
    all_items_rows,
    pair_rows,
    sample_positives,
    training_pairs,
    training_rows,
)
from itemrec.recsys.sampling.uniform import UniformNegatives

SAMPLERS: dict[str, type[NegativeSampler]] = {
    "uniform": UniformNegatives,
    "popularity": PopularityNegatives,
    "in_batch": InBatchNegatives,
    "ppr": PPRNegatives,
}

__all__ = [
    "SAMPLERS",
    "InBatchNegatives",
    "NegativeSampler",
    "PPRNegatives",
    "PopularityNegatives",
    "TrainPositives",
    "UniformNegatives",
    "UserQuantiles",
    "all_items_rows",
    "approximate_ppr_scores",
    "pair_rows",
    "ppr_scores",
    "sample_positives",
    "training_pairs",
    "training_rows",
]
