"""itemrec: a ranking-loss engine for recommendation and image retrieval."""

__version__ = "0.1.0"
