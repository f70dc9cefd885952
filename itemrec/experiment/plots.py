"""Plots logged as MLflow artifacts (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_training_curves(history: list[dict[str, float]], path: str | Path, title: str = "") -> Path:
    """Train loss and every validation metric against the epoch, one panel each, saved as PNG.

    `history`: one dict per epoch with `epoch`, `loss` and metric keys (e.g. `val/ndcg@20`).
    """
    path = Path(path)
    keys = [k for k in history[0] if k not in ("epoch",) and isinstance(history[0][k], (int, float))]
    metrics = [k for k in keys if k != "loss" and not k.endswith("seconds")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    epochs = [h["epoch"] for h in history]
    axes[0].plot(epochs, [h.get("loss", float("nan")) for h in history], marker="o", ms=3)
    axes[0].set(xlabel="epoch", ylabel="train loss", title="training loss")
    for key in metrics:
        axes[1].plot(epochs, [h.get(key, float("nan")) for h in history], marker="o", ms=3, label=key)
    axes[1].set(xlabel="epoch", ylabel="metric", title="validation")
    if metrics:
        axes[1].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
