"""Negative samplers and the training rows built from them.

Samplers share `sample(users [B], n, generator) -> items [B, n]` (never a training positive of
the row's user when it has enough negatives) and `maybe_refresh(epoch)`. Build one as
`SAMPLERS[name](train, **params)`.
"""

from itemrec.sampling.base import NegativeSampler, TrainPositives
from itemrec.sampling.in_batch import InBatchNegatives
from itemrec.sampling.popularity import PopularityNegatives
from itemrec.sampling.ppr import PPRNegatives, ppr_scores
from itemrec.sampling.ppr_local import approximate_ppr_scores
from itemrec.sampling.rows import all_items_rows, sample_positives, training_rows
from itemrec.sampling.uniform import UniformNegatives

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
    "all_items_rows",
    "approximate_ppr_scores",
    "ppr_scores",
    "sample_positives",
    "training_rows",
]
