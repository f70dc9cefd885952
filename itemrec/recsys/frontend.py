"""The recommendation front end (`task: recsys`), as the shared layer sees it (`FrontEnd`)."""

from __future__ import annotations

from itemrec.experiment import loop
from itemrec.experiment.frontend import FunctionFrontEnd, register
from itemrec.experiment.loop import TrainingDiverged, run_dir
from itemrec.recsys import train as session
from itemrec.recsys.config import RecsysConfig
from itemrec.recsys.evaluate import evaluate_command

FRONT_END = register(
    FunctionFrontEnd(
        task="recsys",
        config_class=RecsysConfig,
        check=session.check,
        validation_metrics=session.validation_metrics,
        labels=session.labels,
        build=session.RecsysSession,
        evaluate_command=evaluate_command,
    )
)
"""Implicit-feedback recommendation: user-item interactions, full-ranking evaluation."""

__all__ = ["FRONT_END", "TrainingDiverged", "run_dir", "train"]


def train(config: RecsysConfig, **options) -> str:
    """Train a recommender from its config with the shared loop; returns the MLflow run id. `options`:
    `tracking_uri`, `resume`, `stop_after`, `quiet`, `tags`, `on_epoch` (`itemrec.experiment.loop.train`)."""
    return loop.train(FRONT_END, config, **options)
