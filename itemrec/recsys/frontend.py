"""The recommendation front end (`task: recsys`), as the shared layer sees it (`FrontEnd`)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from itemrec.experiment import loop
from itemrec.experiment.checkpoint import Checkpoint
from itemrec.experiment.distributed import DistInfo
from itemrec.experiment.frontend import register
from itemrec.experiment.loop import TrainingDiverged, run_dir
from itemrec.recsys import train as session
from itemrec.recsys.config import RecsysConfig
from itemrec.recsys.evaluate import evaluate_command


class RecsysFrontEnd:
    """Implicit-feedback recommendation: user-item interactions, full-ranking evaluation."""

    task = "recsys"
    config_class = RecsysConfig

    def check(self, config: RecsysConfig) -> None:
        session.check(config)

    def validation_metrics(self, config: RecsysConfig) -> set[str]:
        return session.validation_metrics(config)

    def labels(self, config: RecsysConfig) -> dict[str, str]:
        return session.labels(config)

    def build(self, config: RecsysConfig, device: torch.device, info: DistInfo, generator: torch.Generator, quiet: bool):
        return session.RecsysSession(config, device, info, generator, quiet)

    def evaluate_command(self, checkpoint: Checkpoint, run_id: str | None, *, split: str, protocol: str, tracking_uri: str | None):
        return evaluate_command(checkpoint, run_id, split=split, protocol=protocol, tracking_uri=tracking_uri)


FRONT_END = register(RecsysFrontEnd())

__all__ = ["FRONT_END", "RecsysFrontEnd", "TrainingDiverged", "run_dir", "train"]


def train(
    config: RecsysConfig,
    *,
    tracking_uri: str | None = None,
    resume: str | None = None,
    stop_after: int | None = None,
    quiet: bool = False,
    tags: dict[str, str] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> str:
    """Train a recommender from its config with the shared loop; returns the MLflow run id
    (`itemrec.experiment.loop.train` documents the arguments)."""
    return loop.train(
        FRONT_END, config, tracking_uri=tracking_uri, resume=resume, stop_after=stop_after, quiet=quiet, tags=tags,
        on_epoch=on_epoch,
    )
