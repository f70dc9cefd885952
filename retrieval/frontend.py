"""The image-retrieval front end (`task: retrieval`), as the shared layer sees it (`FrontEnd`)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from itemrec.experiment import loop
from itemrec.experiment.checkpoint import Checkpoint
from itemrec.experiment.distributed import DistInfo
from itemrec.experiment.frontend import register
from retrieval import train as session
from retrieval.config import RetrievalConfig
from retrieval.evaluate import evaluate_command


class RetrievalFrontEnd:
    """Deep metric learning on labelled images: unseen-class retrieval, hierarchical metrics."""

    task = "retrieval"
    config_class = RetrievalConfig

    def check(self, config: RetrievalConfig) -> None:
        session.check(config)

    def validation_metrics(self, config: RetrievalConfig) -> set[str]:
        return session.validation_metrics(config)

    def labels(self, config: RetrievalConfig) -> dict[str, str]:
        return session.labels(config)

    def build(self, config: RetrievalConfig, device: torch.device, info: DistInfo, generator: torch.Generator, quiet: bool):
        return session.RetrievalSession(config, device, info, generator, quiet)

    def evaluate_command(self, checkpoint: Checkpoint, run_id: str | None, *, split: str, protocol: str, tracking_uri: str | None):
        return evaluate_command(checkpoint, run_id, split=split, protocol=protocol, tracking_uri=tracking_uri)


FRONT_END = register(RetrievalFrontEnd())


def train(
    config: RetrievalConfig,
    *,
    tracking_uri: str | None = None,
    resume: str | None = None,
    stop_after: int | None = None,
    quiet: bool = False,
    tags: dict[str, str] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> str:
    """Train an embedding model from its config with the shared loop; returns the MLflow run id
    (`itemrec.experiment.loop.train` documents the arguments)."""
    return loop.train(
        FRONT_END, config, tracking_uri=tracking_uri, resume=resume, stop_after=stop_after, quiet=quiet, tags=tags,
        on_epoch=on_epoch,
    )
