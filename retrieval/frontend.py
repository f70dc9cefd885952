"""The image-retrieval front end (`task: retrieval`), as the shared layer sees it (`FrontEnd`)."""

from __future__ import annotations

from itemrec.experiment import loop
from itemrec.experiment.frontend import FunctionFrontEnd, register
from retrieval import train as session
from retrieval.config import RetrievalConfig
from retrieval.evaluate import evaluate_command

FRONT_END = register(
    FunctionFrontEnd(
        task="retrieval",
        config_class=RetrievalConfig,
        check=session.check,
        validation_metrics=session.validation_metrics,
        labels=session.labels,
        build=session.RetrievalSession,
        evaluate_command=evaluate_command,
    )
)
"""Deep metric learning on labelled images: unseen-class retrieval, hierarchical metrics."""


def train(config: RetrievalConfig, **options) -> str:
    """Train an embedding model from its config with the shared loop; returns the MLflow run id. `options`:
    `tracking_uri`, `resume`, `stop_after`, `quiet`, `tags`, `on_epoch` (`itemrec.experiment.loop.train`)."""
    return loop.train(FRONT_END, config, **options)
