"""Recommenders: learned (MF, LightGCN, NGCF, DAE) and fitted baselines (Pop, ItemKNN, EASE).

Build one as `MODELS[name](n_users, n_items, train, **hyper)`; see `Recommender` for the
interface (`forward`, `l2`, `user_vectors`, `item_vectors`, `new_user_vectors`).
"""

from itemrec.models.base import Recommender
from itemrec.models.dae import DAE
from itemrec.models.ease import EASE
from itemrec.models.graph import PROPAGATIONS, GraphPropagation, SymmetricSpMM, normalized_adjacency
from itemrec.models.itemknn import ItemKNN
from itemrec.models.lightgcn import LightGCN
from itemrec.models.mf import MF
from itemrec.models.ngcf import NGCF
from itemrec.models.pop import Pop

MODELS: dict[str, type[Recommender]] = {
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
    "Recommender",
    "SymmetricSpMM",
    "normalized_adjacency",
]
