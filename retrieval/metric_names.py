"""Names of the retrieval metrics, in a module of their own so that the config can check
`train.select_metric` and `train.val_metrics` without importing torch (`retrieval.evaluate`
computes them)."""

HIT_KS = (1, 2, 4, 8, 16, 32)
"""The k of each `hit@k` (any same-class image in the top k, the metric-learning "R@k")."""

METRIC_NAMES: tuple[str, ...] = (*(f"hit@{k}" for k in HIT_KS), "map@r", "ap", "ndcg", "h_ap", "asi")
"""Metrics evaluation computes on every dataset (with 2+ label levels it adds `ap_level{j}`)."""


def check_metric_names(names: list[str]) -> list[str]:
    """`names` when evaluation computes each (`METRIC_NAMES`), else a one-line ValueError naming the others."""
    unknown = [name for name in names if name not in METRIC_NAMES]
    if unknown:
        verb = "is" if len(unknown) == 1 else "are"
        raise ValueError(f"{', '.join(map(repr, unknown))} {verb} not one of {', '.join(sorted(METRIC_NAMES))}")
    return names
