"""Training curves as a PNG: one panel for the loss, one for every validation metric."""

from __future__ import annotations

import matplotlib.pyplot as plt
from PIL import Image

from itemrec.experiment import plots

HISTORY = [
    {"epoch": 1, "loss": 0.9, "val/ndcg@20": 0.10, "val/recall@20": 0.20, "epoch_seconds": 3.0, "note": "warm-up"},
    {"epoch": 2, "loss": 0.7, "val/ndcg@20": 0.15, "val/recall@20": 0.25, "epoch_seconds": 2.9},
    {"epoch": 3, "loss": 0.6, "val/ndcg@20": 0.17, "val/recall@20": 0.27, "epoch_seconds": 2.8},
]


def test_curves_plot_loss_and_metrics_only(tmp_path, monkeypatch):
    drawn = {}
    close = plt.close

    def keep(fig):  # look at the figure before it is closed
        drawn["panels"] = [
            (ax.get_title(), [line.get_label() for line in ax.get_lines()], [list(line.get_ydata()) for line in ax.get_lines()])
            for ax in fig.axes
        ]
        drawn["title"] = fig._suptitle.get_text()
        close(fig)

    monkeypatch.setattr(plots.plt, "close", keep)
    path = plots.plot_training_curves(HISTORY, tmp_path / "curves.png", title="ml1m lightgcn")
    assert path == tmp_path / "curves.png"
    (loss_title, _, loss_values), (val_title, labels, values) = drawn["panels"]
    assert loss_title == "training loss" and loss_values == [[0.9, 0.7, 0.6]]
    # timings and non-numeric fields are not metrics
    assert val_title == "validation" and labels == ["val/ndcg@20", "val/recall@20"]
    assert values == [[0.10, 0.15, 0.17], [0.20, 0.25, 0.27]]
    assert drawn["title"] == "ml1m lightgcn"
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (1210, 440)  # 11 x 4 in at 110 dpi


def drawn_panels(history, path, monkeypatch):
    seen = {}
    close = plt.close

    def keep(fig):
        seen["panels"] = {ax.get_title(): {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
                                           for line in ax.get_lines()} for ax in fig.axes}
        close(fig)

    monkeypatch.setattr(plots.plt, "close", keep)
    plots.plot_training_curves(history, path)
    return seen["panels"]


def test_a_missing_value_is_a_gap_not_an_error(tmp_path):
    history = [{"epoch": 1, "loss": 0.5, "val/hit@10": 0.3}, {"epoch": 2, "loss": 0.4}]
    assert plots.plot_training_curves(history, str(tmp_path / "c.png")).stat().st_size > 0


def test_metrics_validated_every_few_epochs_are_drawn_at_those_epochs(tmp_path, monkeypatch):
    """The first rows of a run that validates every 5 epochs have no metric: they are still drawn."""
    history = [{"epoch": e, "loss": 1.0 / e, "epoch_seconds": 1.0} for e in range(1, 11)]
    for row in history[4::5]:
        row.update({"val/ndcg@20": row["epoch"] / 100, "topk_threshold_mean": -row["epoch"] / 10})
    panels = drawn_panels(history, tmp_path / "c.png", monkeypatch)
    assert list(panels) == ["training loss", "validation", "training"]
    assert panels["validation"] == {"val/ndcg@20": ([5, 10], [0.05, 0.10])}
    assert panels["training"] == {"topk_threshold_mean": ([5, 10], [-0.5, -1.0])}
    assert panels["training loss"]["loss"][0] == list(range(1, 11))


def test_backend_is_headless():
    assert plt.get_backend().lower() == "agg"
