"""Plots logged as MLflow artifacts (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_training_curves(history: list[dict[str, float]], path: str | Path, title: str = "") -> Path:
    """Train loss and every validation metric against the epoch, one panel each, saved as PNG; a
    third panel for other per-epoch quantities a run logs (e.g. `topk_threshold_mean`), if any.

    `history`: one dict per epoch with `epoch`, `loss` and metric keys (e.g. `val/ndcg@20`). A key
    is drawn at the epochs whose rows have it (validation every few epochs).
    """
    path = Path(path)
    keys = list(dict.fromkeys(
        k for row in history for k, v in row.items()
        if k not in ("epoch", "loss") and not k.endswith("seconds") and isinstance(v, (int, float))
    ))
    panels = [("training loss", "train loss", ["loss"]), ("validation", "metric", [k for k in keys if k.startswith("val/")])]
    others = [k for k in keys if not k.startswith("val/")]
    if others:
        panels.append(("training", "value", others))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4))
    for ax, (name, ylabel, drawn) in zip(axes, panels):
        for key in drawn:
            points = [(row["epoch"], row[key]) for row in history if isinstance(row.get(key), (int, float))]
            ax.plot([e for e, _ in points], [v for _, v in points], marker="o", ms=3, label=key)
        ax.set(xlabel="epoch", ylabel=ylabel, title=name)
        if drawn and name != "training loss":
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
