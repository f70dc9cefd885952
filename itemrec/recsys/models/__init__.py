"""Recommenders: learned (MF, LightGCN, NGCF, DAE) and fitted baselines (Pop, ItemKNN, EASE).

Build one as `MODELS[name](n_users, n_items, train, **hyper)`; see `ScoringModel` for the
interface (`forward`, `l2`, `user_vectors`, `item_vectors`, `new_user_vectors`).
"""

from itemrec.recsys.models.base import ScoringModel
from itemrec.recsys.models.dae import DAE
from itemrec.recsys.models.ease import EASE
from itemrec.recsys.models.graph import (
    PROPAGATIONS,
    GraphPropagation,
    SymmetricSpMM,
    normalized_adjacency,
)
from itemrec.recsys.models.itemknn import ItemKNN
from itemrec.recsys.models.lightgcn import LightGCN
from itemrec.recsys.models.mf import MF
from itemrec.recsys.models.ngcf import NGCF
from itemrec.recsys.models.pop import Pop

MODELS: dict[str, type[ScoringModel]] = {
    "mf": MF,
    "lightgcn": LightGCN,
    "ngcf": NGCF,
    "dae": DAE,
    "pop": Pop,
    "itemknn": ItemKNN,
    "ease": EASE,
}

__all__ = [
    "DAE",
    "EASE",
    "MF",
    "MODELS",
    "NGCF",
    "PROPAGATIONS",
    "GraphPropagation",
    "ItemKNN",
    "LightGCN",
    "Pop",
    "ScoringModel",
    "SymmetricSpMM",
    "normalized_adjacency",
]
