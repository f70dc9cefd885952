"""Recommendation data: readers, named datasets, cleaning, splits and the dataset object.

Start with `load_dataset(source, ...)`; it returns an `InteractionData`.

The names below are imported on first use: `import itemrec.recsys.data.columns` (what the command line
needs to build its options) does not pull in torch, polars and scipy with the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from itemrec.recsys.data.columns import Columns
    from itemrec.recsys.data.dataset import DataStats, InductiveSplit, InteractionData, to_torch_csr
    from itemrec.recsys.data.fetch import NAMED_DATASETS, cache_root, fetch_dataset
    from itemrec.recsys.data.idmap import IdMap
    from itemrec.recsys.data.load import load_dataset, prepare_dataset
    from itemrec.recsys.data.readers import read_interactions
    from itemrec.recsys.data.splits import Part, SplitSpec
    from itemrec.recsys.data.store import load_prepared, save_prepared

_HOME = {
    "Columns": "columns",
    "DataStats": "dataset", "InductiveSplit": "dataset", "InteractionData": "dataset", "to_torch_csr": "dataset",
    "NAMED_DATASETS": "fetch", "cache_root": "fetch", "fetch_dataset": "fetch",
    "IdMap": "idmap",
    "load_dataset": "load", "prepare_dataset": "load",
    "read_interactions": "readers",
    "Part": "splits", "SplitSpec": "splits",
    "load_prepared": "store", "save_prepared": "store",
}
"""Public name -> the submodule of this package that defines it."""

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


def __getattr__(name: str) -> object:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
