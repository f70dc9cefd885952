"""Per-user top-K thresholds: how a loss that takes them wants them estimated, and its keys' ranges."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TopKEstimate:
    r"""How the caller of a loss weighted by per-user top-K thresholds (SL@K, Log-DCG@K,
    Sup-NDCG@K) estimates each $\beta_u^K$, the loss's `k`-th largest score of the user: among at
    most `positives` of the user's training positives (a random sample; None: all of them) and
    `negatives` uniform negatives, with the model held fixed, every `refresh_every` epochs
    (`topk_quantile`; the recommendation front end's `UserQuantiles`). The loss never reads it."""

    refresh_every: int
    negatives: int
    positives: int | None = None


TOPK_THRESHOLD_RULES: dict[str, tuple[str, Callable[[float], bool]]] = {
    "k": (">= 1", lambda v: v >= 1),
    "tau_w": ("> 0", lambda v: v > 0),
    "refresh_every": (">= 1", lambda v: v >= 1),
    "quantile_negatives": (">= 1", lambda v: v >= 1),
    "quantile_positives": (">= 1", lambda v: v >= 1),
}
"""Config ranges of the keys of a loss weighted by per-user top-K thresholds (SL@K, Log-DCG@K, Sup-NDCG@K)."""
