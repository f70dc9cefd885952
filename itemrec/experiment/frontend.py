"""The front-end contract: what a front end (recommendation, image retrieval, ...) gives the shared layer.

A front end is an object satisfying `FrontEnd`, registered once under its config's `task:` name
(`register`). The shared layer — config loading, the training loop, tuning, comparison, the CLI's
`evaluate` — finds it through `front_end(task)` and never imports a front end itself; which front
ends exist is decided in one place, `itemrec.frontends`, which registers them.

Training is split in two: the front end `build`s a `Session` (its data, model, optimizer and
loss, ready on the device), and the shared loop (`itemrec.experiment.loop.train`) drives it:
epochs, validation, early stopping, checkpoints, resume, MLflow logging, torchrun, progress.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from pydantic import BaseModel

from itemrec.experiment.errors import UserError

if TYPE_CHECKING:
    from rich.progress import Progress

    from itemrec.experiment.checkpoint import Checkpoint
    from itemrec.experiment.distributed import DistInfo
    from itemrec.experiment.tracking import DatasetInfo


@runtime_checkable
class Session(Protocol):
    """One training run of a front end, built and on its device; driven by the shared loop."""

    model: torch.nn.Module
    """What `best.pt` / `last.pt` hold as `Checkpoint.model` (its `state_dict`)."""
    learned: bool
    """False for closed-form models (no epochs: the loop goes straight to `finish`)."""
    select_metric: str
    """The validation metric that chooses the best epoch (higher is better)."""

    def dataset(self) -> DatasetInfo | None:
        """The data this run trains on (name, source, digest, sizes), which the loop logs as the
        MLflow run's dataset input on rank 0 (`tracking.log_dataset`); None logs nothing."""
        ...

    def train_epoch(self, epoch: int, bar: Progress) -> float:
        """One epoch (`epoch` counts from 1) on this rank; returns the mean training loss."""
        ...

    def validate(self, epoch: int, bar: Progress) -> tuple[dict[str, float], dict[str, float]] | None:
        """Rank 0 only. `(metrics, logged)`: every validation metric computed (unprefixed; the
        selection metric among them) and what the epoch's row logs (`val/...`, timings). None
        when the run has no validation data (the last epoch is then the one kept)."""
        ...

    def state(self) -> dict[str, Any]:
        """The front end's part of a checkpoint (`Checkpoint.extra`): optimizer, scheduler, ...
        Only what `torch.load(weights_only=True)` reads: tensors, numbers, strings, lists, dicts."""
        ...

    def load_state(self, extra: dict[str, Any]) -> None:
        """Restore `state()` (resume); the model's weights are loaded by the loop."""
        ...

    def finish(self, folder: Path, run_id: str, history: list[dict[str, float]], best_epoch: int) -> dict[str, float]:
        """Rank 0, inside the MLflow run, with the best weights loaded: test the model, log the
        front end's own artifacts, print its results; returns the final metrics (`metrics.json`)."""
        ...


@runtime_checkable
class FrontEnd(Protocol):
    """What a front end provides to the CLI, the training loop, tuning and comparison."""

    task: str
    """The config's `task:` value that selects this front end."""
    config_class: type[BaseModel]
    """Its config model: an `itemrec.experiment.config.ExperimentConfig` whose `train` section has
    `epochs`, `patience`, `min_epochs`, `eval_every` and `run_dir` (what the loop reads)."""

    def check(self, config: BaseModel) -> None:
        """Fail with a `UserError` on a bad component section (loss, model, ...) without reading data."""
        ...

    def validation_metrics(self, config: BaseModel) -> set[str]:
        """Names of the per-epoch validation metrics (what `tune.metric` may name)."""
        ...

    def labels(self, config: BaseModel) -> dict[str, str]:
        """The MLflow `run_name` and `description` of a new run of `config`."""
        ...

    def build(
        self, config: BaseModel, device: torch.device, info: DistInfo, generator: torch.Generator, quiet: bool
    ) -> Session:
        """Read the data, build model, loss and optimizer on `device` (wrapped for torchrun when
        `info.enabled`); `generator` is the run's seeded generator (saved in checkpoints)."""
        ...

    def evaluate_command(
        self, checkpoint: Checkpoint, run_id: str | None, *, split: str, protocol: str, tracking_uri: str | None
    ) -> dict[str, float]:
        """`itemrec evaluate`: rebuild the model from a checkpoint, evaluate `split`, print the metrics."""
        ...


@dataclass(frozen=True)
class FunctionFrontEnd:
    """A `FrontEnd` made of a front end's own functions (what both built-in front ends use)."""

    task: str
    config_class: type[BaseModel]
    check: Callable[[Any], None]
    validation_metrics: Callable[[Any], set[str]]
    labels: Callable[[Any], dict[str, str]]
    build: Callable[..., Session]
    """`build(config, device, info, generator, quiet)`, e.g. the session class itself."""
    evaluate_command: Callable[..., dict[str, float]]


FRONT_ENDS: dict[str, FrontEnd] = {}
"""The registered front ends, by task name (filled by `itemrec.frontends`)."""


def register(front_end: FrontEnd) -> FrontEnd:
    """Add `front_end` under its `task` name (once; registering the same object again is a no-op)."""
    if not isinstance(front_end, FrontEnd):
        raise TypeError(f"{front_end!r} does not satisfy the FrontEnd contract")
    known = FRONT_ENDS.get(front_end.task)
    if known is not None and known is not front_end:
        raise ValueError(f"task {front_end.task!r} is already registered to {known!r}")
    FRONT_ENDS[front_end.task] = front_end
    return front_end


def front_end(task: Any, source: str = "config") -> FrontEnd:
    """The front end registered for `task`; a user error naming the known tasks otherwise."""
    if task not in FRONT_ENDS:
        known = ", ".join(sorted(FRONT_ENDS)) or "none registered (import itemrec.frontends)"
        raise UserError(f"{source}: task: must be one of {known}, got {task!r}")
    return FRONT_ENDS[task]
