"""The one training loop, shared by every front end.

`train(front_end, config)` seeds everything, has the front end `build` its session (data, model,
loss, optimizer), logs the session's data as the MLflow run's dataset (`Session.dataset`), then for
each epoch: trains (`Session.train_epoch`), validates on rank 0 every
`train.eval_every` epochs and on the last one, keeps the best epoch on the selection metric in
`best.pt` and every epoch in `last.pt` (`runs/<name>/<run id>/`), logs the epoch's row to MLflow with
`step=epoch`, and stops early once `train.patience` validations in a row have not improved the best,
never before `train.min_epochs` epochs. A run without validation data keeps its last epoch. At the
end the best weights are tested (`Session.finish`) and `metrics.json`, `curves.png` and the best
checkpoint are logged.

`resume` (a run id or a `last.pt` path) continues exactly where a run stopped: weights, optimizer,
RNG states, epoch, history and early-stopping state. Under torchrun every rank trains its share of
each batch (the front end's business); rank 0 alone validates, logs and writes checkpoints, and its
early-stopping state is broadcast to the others.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from rich.console import Console

from itemrec.experiment import distributed, tracking
from itemrec.experiment.checkpoint import (
    BEST_ARTIFACT,
    Checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from itemrec.experiment.config import ExperimentConfig, flatten, to_yaml
from itemrec.experiment.errors import UserError
from itemrec.experiment.frontend import FrontEnd
from itemrec.experiment.plots import plot_training_curves
from itemrec.experiment.runtime import progress, resolve_device, seed_everything

console = Console(stderr=True)


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


def run_dir(config: ExperimentConfig, run_id: str) -> Path:
    """The run's local folder: `train.run_dir / <config name> / <run id>` (checkpoints, metrics)."""
    return (Path(config.train.run_dir) / config.name / run_id).expanduser().resolve()


def find_resume(config: ExperimentConfig, ref: str) -> Checkpoint:
    """The last checkpoint of a run, by run id (in `train.run_dir`) or path."""
    path = Path(ref).expanduser()
    if not path.is_file():
        path = run_dir(config, ref) / "last.pt"
        if not path.is_file():
            raise UserError(f"--resume {ref}: no checkpoint at {path} (give the run id or the last.pt path)")
    checkpoint = load_checkpoint(path)
    if checkpoint.task != config.task or checkpoint.run_id is None:
        raise UserError(f"--resume {ref}: not a {config.task} training checkpoint")
    return checkpoint


def train(
    front_end: FrontEnd,
    config: ExperimentConfig,
    *,
    tracking_uri: str | None = None,
    resume: str | None = None,
    stop_after: int | None = None,
    quiet: bool = False,
    tags: dict[str, str] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> str:
    """Train `config` with `front_end`, test the best epoch; returns the MLflow run id.

    `stop_after`: stop after this many epochs in this call (a later `resume` continues), e.g. on
    preemptible machines. `tags`: MLflow run tags (a tuning study's parent run). `on_epoch(epoch,
    metrics)` is called on rank 0 after each validation with the unprefixed metrics (pruning).
    """
    device = resolve_device(config.device)
    info = distributed.setup(device.type)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    loop = _Loop(front_end, config, device, info, quiet or not info.is_main)
    try:
        run_id = loop.run(tracking_uri, resume, stop_after, tags, on_epoch)
        # Ranks leave together: rank 0 tests and logs after the others are done, and a rank
        # that tore its group down meanwhile could take the rendezvous store with it.
        distributed.barrier()
        return run_id
    finally:
        del loop  # the model's DistributedDataParallel wrapper holds the group: freed before it goes
        distributed.teardown()


class _Loop:
    """The loop's state: epoch, history and the early-stopping record, saved in every checkpoint."""

    def __init__(self, front_end: FrontEnd, config: ExperimentConfig, device, info, quiet: bool) -> None:
        self.front_end, self.config, self.device, self.info, self.quiet = front_end, config, device, info, quiet
        self.epoch, self.history = 0, []
        self.best, self.best_epoch, self.bad_evals = -math.inf, 0, 0

    def run(self, tracking_uri, resume, stop_after, tags, on_epoch) -> str:
        config, info, main = self.config, self.info, self.info.is_main
        self.generator = seed_everything(config.seed)
        self.front_end.check(config)  # a bad key fails before any data is read
        resumed = distributed.broadcast(find_resume(config, resume) if resume and main else None, info)
        self.session = self.front_end.build(config, self.device, info, self.generator, self.quiet)
        if resumed is not None:
            self._restore(resumed)
        run_id = resumed.run_id if resumed is not None else None
        labels = {} if run_id else self.front_end.labels(config)
        opened = tracking.run(config.name, uri=tracking_uri, run_id=run_id, tags=tags, **labels) if main else contextlib.nullcontext()
        with opened as active:
            run_id = distributed.broadcast(active.info.run_id if main else None, info)
            self.folder = run_dir(config, run_id)
            if main and resumed is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                tracking.log_params(flatten(config))
                tracking.log_text(to_yaml(config), "config.yaml")
            elif main and not self.quiet:
                console.print(f"resuming run {run_id} after epoch {self.epoch}")
            dataset = self.session.dataset() if main else None
            if dataset is not None:  # again on resume: a no-op, or the input of a run from before it was logged
                tracking.log_dataset(dataset)
            stopped_early = self._epochs(run_id, stop_after, on_epoch)
            epochs = config.train.epochs if self.session.learned else 0
            if not main:
                return run_id
            if not (stopped_early or self.epoch >= epochs):
                console.print(f"stopped after epoch {self.epoch}; continue with --resume {run_id}")
                return run_id
            self._finish(run_id)
        return run_id

    def _restore(self, checkpoint: Checkpoint) -> None:
        self.session.model.load_state_dict(checkpoint.model)
        self.session.load_state(checkpoint.extra)
        self.generator.set_state(checkpoint.rng["generator"])
        torch.set_rng_state(checkpoint.rng["torch"])
        self.epoch, self.history = checkpoint.epoch, list(checkpoint.history)
        self.best, self.best_epoch, self.bad_evals = checkpoint.best, checkpoint.best_epoch, checkpoint.bad_evals

    def checkpoint(self, run_id: str) -> Checkpoint:
        """The run as of now (what `last.pt` holds)."""
        return Checkpoint(
            task=self.config.task, config=to_yaml(self.config), model=self.session.model.state_dict(), run_id=run_id,
            epoch=self.epoch, history=list(self.history), best=self.best, best_epoch=self.best_epoch,
            bad_evals=self.bad_evals, rng={"torch": torch.get_rng_state(), "generator": self.generator.get_state()},
            extra=self.session.state(),
        )

    def should_stop(self) -> bool:
        """Early stopping: `patience` validations without a better value, after `min_epochs` epochs."""
        train = self.config.train
        return (
            train.patience is not None and self.best_epoch > 0 and self.epoch >= train.min_epochs
            and self.bad_evals >= train.patience
        )

    def _epochs(self, run_id: str, stop_after: int | None, on_epoch) -> bool:
        """Train until the last epoch, early stopping or `stop_after`; True if stopped early."""
        train, main = self.config.train, self.info.is_main
        epochs = train.epochs if self.session.learned else 0
        done = 0
        with progress() as bar:
            while self.epoch < epochs:
                if self.should_stop():
                    return True
                if stop_after is not None and done >= stop_after:
                    return False
                epoch = self.epoch + 1
                tic = time.perf_counter()
                loss = self.session.train_epoch(epoch, bar)
                if not math.isfinite(loss):
                    raise TrainingDiverged(f"loss is {loss} at epoch {epoch}; lower the learning rate or check the loss parameters")
                row = {"epoch": epoch, "loss": loss, "epoch_seconds": time.perf_counter() - tic}
                metrics, improved = None, False
                if epoch % train.eval_every == 0 or epoch == train.epochs:
                    validation = self.session.validate(epoch, bar) if main else None
                    if validation is None:  # no validation data: the last epoch is kept
                        improved = main and epoch == train.epochs
                    else:
                        metrics, logged = validation
                        row.update(logged)
                        value = metrics[self.session.select_metric]
                        improved = value > self.best
                        self.best, self.bad_evals = (value, 0) if improved else (self.best, self.bad_evals + 1)
                    if improved:
                        self.best_epoch = epoch
                    self.best, self.best_epoch, self.bad_evals = distributed.broadcast(
                        (self.best, self.best_epoch, self.bad_evals), self.info
                    )
                self.epoch, done = epoch, done + 1
                self.history.append(row)
                if not main:
                    continue
                tracking.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
                state = self.checkpoint(run_id)
                if improved:
                    save_checkpoint(self.folder / "best.pt", state)
                save_checkpoint(self.folder / "last.pt", state)
                if on_epoch is not None and metrics is not None:
                    on_epoch(epoch, metrics)
                if not self.quiet:
                    self._print(row)
        return self.should_stop() if self.session.learned else False

    def _print(self, row: dict[str, float]) -> None:
        metric = self.session.select_metric
        value = row.get(f"val/{metric}")
        shown = "   -  " if value is None or value != value else f"{value:.4f}"  # not validated this epoch
        console.print(
            f"epoch {row['epoch']:3d}  loss {row['loss']:.4f}  {metric} {shown}  best {self.best:.4f}  "
            f"{row['epoch_seconds']:.1f}s"
        )

    def _finish(self, run_id: str) -> None:
        """Test the best epoch; log metrics.json, the best checkpoint and the training curves."""
        best = self.folder / "best.pt"
        if self.session.learned and best.exists():
            self.session.model.load_state_dict(load_checkpoint(best).model)
        elif not self.session.learned:
            self.folder.mkdir(parents=True, exist_ok=True)
            save_checkpoint(best, self.checkpoint(run_id))
        final = self.session.finish(self.folder, run_id, self.history, self.best_epoch)
        (self.folder / "metrics.json").write_text(json.dumps(final, indent=2))
        tracking.log_artifact(self.folder / "metrics.json")
        tracking.log_artifact(best, Path(BEST_ARTIFACT).parent.as_posix())
        if self.history:
            png = plot_training_curves(self.history, self.folder / "curves.png", title=f"{self.config.name} ({run_id[:8]})")
            tracking.log_artifact(png)
