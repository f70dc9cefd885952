"""itemrec: a ranking-loss engine for recommendation and image retrieval."""

from itemrec import moved_modules

__version__ = "0.2.0"

moved_modules.install()
