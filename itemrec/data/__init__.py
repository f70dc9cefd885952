"""Recommendation data: readers, named datasets, cleaning, splits and the dataset object.

Start with `load_dataset(source, ...)`; it returns an `InteractionData`.
"""

from itemrec.data.columns import Columns
from itemrec.data.dataset import DataStats, InductiveSplit, InteractionData, to_torch_csr
from itemrec.data.fetch import NAMED_DATASETS, cache_root, fetch_dataset
from itemrec.data.idmap import IdMap
from itemrec.data.load import load_dataset, prepare_dataset
from itemrec.data.readers import read_interactions
from itemrec.data.splits import Part, SplitSpec
from itemrec.data.store import load_prepared, save_prepared

__all__ = [
    "NAMED_DATASETS",
    "Columns",
    "DataStats",
    "IdMap",
    "InductiveSplit",
    "InteractionData",
    "Part",
    "SplitSpec",
    "cache_root",
    "fetch_dataset",
    "load_dataset",
    "load_prepared",
    "prepare_dataset",
    "read_interactions",
    "save_prepared",
    "to_torch_csr",
]
