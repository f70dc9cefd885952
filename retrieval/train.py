"""The retrieval trainer: one straight loop, logged to MLflow, resumable from its last checkpoint.

`train(config)` builds the data, model and criterion from the config's typed sections, then for
each epoch: draws m-per-class batches, embeds them, all-gathers the embeddings across ranks
(torchrun), adds the cross-batch memory, takes a step; evaluates on the validation split, logs
metrics with `step=epoch` and checkpoints to `runs/<name>/<run id>/last.pt`. The best epoch (on
`train.select_metric`, or the last epoch without validation) is logged as `checkpoint/best.pt`,
then evaluated on the test split.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import Tensor, nn
from torch.utils.data import DataLoader

from itemrec.experiment import tracking
from itemrec.experiment.checkpoint import BEST_ARTIFACT, load_checkpoint, save_checkpoint
from itemrec.experiment.config import flatten, to_yaml
from itemrec.experiment.errors import UserError
from itemrec.experiment.plots import plot_training_curves
from itemrec.experiment.runtime import progress, resolve_device, seed_everything
from retrieval import distributed
from retrieval.config import RetrievalConfig
from retrieval.evaluate import HIT_KS, evaluate_split, metrics_table, write_metrics
from retrieval.losses import build_criterion, uses_memory
from retrieval.model import EmbeddingModel
from retrieval.pipeline import build_everything
from retrieval.samplers import build_sampler
from retrieval.splits import Splits
from retrieval.xbm import CrossBatchMemory

TASK = "retrieval"


# --------------------------------------------------------------------------- building blocks


def build_optimizer(model: EmbeddingModel, criterion: nn.Module, optim) -> torch.optim.Optimizer:
    """AdamW with two groups: backbone (`backbone_lr`), head + loss parameters (`lr`)."""
    backbone = [p for p in model.backbone.parameters() if p.requires_grad]
    head = [*model.head.parameters(), *criterion.parameters()]
    groups = [{"params": head, "lr": optim.lr, "name": "head"}]
    if backbone:
        groups.append({"params": backbone, "lr": optim.backbone_lr, "name": "backbone"})
    return torch.optim.AdamW(groups, weight_decay=optim.weight_decay)


def lr_factors(optimizer: torch.optim.Optimizer, optim, epochs: int) -> list:
    """Per-group factor of the epoch: backbone 0 during warm-up, cosine (or constant) after."""

    def schedule(start: int):
        def factor(epoch: int) -> float:  # `epoch` = epochs done so far (0-based)
            if epoch < start:
                return 0.0
            if optim.schedule == "constant":
                return 1.0
            span = max(1, epochs - start)
            return 0.5 * (1 + math.cos(math.pi * min(epoch - start, span) / span))

        return factor

    return [schedule(optim.warmup_epochs if g["name"] == "backbone" else 0) for g in optimizer.param_groups]


def train_loader(config: RetrievalConfig, splits: Splits, generator: torch.Generator, info: distributed.DistInfo) -> DataLoader:
    s = config.sampler
    sampler = build_sampler(
        s.name, splits.train.labels, config.train.batch_size, s.m, s.coarse_per_batch, s.steps_per_epoch,
        generator, s.small_classes, info.rank, info.world_size,
    )
    return DataLoader(
        splits.train, batch_sampler=sampler, num_workers=config.data.workers,
        pin_memory=config.data.pin_memory, persistent_workers=config.data.workers > 0,
    )


def batch_loss(
    model: nn.Module, criterion: nn.Module, inputs: Tensor, labels: Tensor, memory: CrossBatchMemory | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Loss of a batch after gathering every rank's embeddings (with gradients) and labels.

    Returns `(loss, global embeddings, global labels)`; the memory is read, not updated.
    """
    embeddings = distributed.all_gather_with_grad(model(inputs))
    labels = distributed.all_gather(labels)
    stored = memory.get() if memory is not None and len(memory) else None
    return criterion(embeddings, labels, stored), embeddings, labels


@dataclass
class Trainer:
    """Everything that changes while training, saved in `last.pt` and restored on resume."""

    config: RetrievalConfig
    model: EmbeddingModel
    ddp_model: nn.Module
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    generator: torch.Generator
    memory: CrossBatchMemory | None
    device: torch.device
    epoch: int = 0
    history: list[dict[str, float]] | None = None
    best: float = -math.inf
    best_epoch: int = 0

    def state(self, run_id: str) -> dict[str, Any]:
        state = {
            "task": TASK, "config": to_yaml(self.config), "run_id": run_id, "epoch": self.epoch,
            "model": self.model.state_dict(), "criterion": self.criterion.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "sampler_rng": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
            "history": self.history or [], "best": self.best, "best_epoch": self.best_epoch,
        }
        if self.memory is not None:
            state["memory"] = {
                "embeddings": self.memory.embeddings.cpu(), "labels": self.memory.labels.cpu(),
                "position": self.memory.position, "filled": self.memory.filled,
            }
        return state

    def load(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.criterion.load_state_dict(state["criterion"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["sampler_rng"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch, self.history = state["epoch"], list(state["history"])
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        if self.memory is not None and "memory" in state:
            m = state["memory"]
            self.memory.embeddings, self.memory.labels = m["embeddings"].to(self.device), m["labels"].to(self.device)
            self.memory.position, self.memory.filled = m["position"], m["filled"]

    def set_warmup(self, warm: bool, distributed_run: bool) -> None:
        """Head-only epochs: backbone BatchNorm in eval mode and (single process) no backbone grads."""
        self.model.train()
        if warm:
            self.model.backbone.eval()
        if not distributed_run:
            for name, p in self.model.backbone.named_parameters():
                p.requires_grad_(not warm and not (self.model.frozen_bn and _is_bn(self.model, name)))

    def train_epoch(self, loader: DataLoader, description: str) -> float:
        cuda = self.device.type == "cuda"
        amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and self.config.train.amp)
        total, steps = 0.0, 0
        use_memory = self.memory is not None and self.epoch + 1 >= self.config.xbm.start_epoch
        with progress() as bar:
            task = bar.add_task(description, total=len(loader), info="")
            for inputs, labels, _ in loader:
                inputs = inputs.to(self.device, non_blocking=True)
                if self.config.train.channels_last and inputs.dim() == 4:
                    inputs = inputs.contiguous(memory_format=torch.channels_last)
                labels = labels.to(self.device)
                with amp:
                    loss, embeddings, all_labels = batch_loss(
                        self.ddp_model, self.criterion, inputs, labels, self.memory if use_memory else None
                    )
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                if use_memory:
                    self.memory.enqueue(embeddings.float(), all_labels)
                total, steps = total + loss.item(), steps + 1
                bar.update(task, advance=1, info=f"loss {total / steps:.4f}")
        return total / max(steps, 1)


def _is_bn(model: EmbeddingModel, name: str) -> bool:
    module_name = name.rsplit(".", 1)[0]
    return isinstance(dict(model.backbone.named_modules()).get(module_name), nn.modules.batchnorm._BatchNorm)


# --------------------------------------------------------------------------- resume


def run_dir(config: RetrievalConfig, run_id: str) -> Path:
    return config.train.run_dir / config.name / run_id


def find_resume(config: RetrievalConfig, ref: str) -> tuple[dict[str, Any], str]:
    """The last checkpoint of a run (by run id, in `train.run_dir`) or at a path."""
    path = Path(ref).expanduser()
    if not path.is_file():
        path = run_dir(config, ref) / "last.pt"
        if not path.is_file():
            raise UserError(f"--resume {ref}: no checkpoint at {path} (give the run id or the last.pt path)")
    state = load_checkpoint(path)
    if state.get("task") != TASK or "run_id" not in state:
        raise UserError(f"--resume {ref}: not a retrieval training checkpoint")
    return state, state["run_id"]


# --------------------------------------------------------------------------- the loop


def labels(config: RetrievalConfig) -> dict[str, str]:
    """The MLflow run name and description of a new run of `config`."""
    sections = {
        "data": {k: v for k, v in config.data.model_dump().items() if k not in ("workers", "pin_memory")},
        "model": config.model.model_dump(),
        "loss": {"name": config.loss.name, **config.loss.params},
        "sampler": config.sampler.model_dump(),
        "xbm": config.xbm.model_dump(),
        "optim": config.optim.model_dump(),
        "train": {k: v for k, v in config.train.model_dump().items() if k != "run_dir"},
        "seed": config.seed,
    }
    title = f"{config.model.backbone} trained with {config.loss.name} on {config.data.dataset} (config {config.name})"
    return {
        "run_name": tracking.run_name(config.name, config.model.backbone, config.loss.name, config.seed),
        "description": tracking.describe(title, sections),
    }


def check(config: RetrievalConfig) -> None:
    """Check the loss section by name without reading data (for tuning)."""
    build_criterion(config.loss, num_levels=2, num_classes=2, dim=config.model.dim)


def validation_metrics(config: RetrievalConfig) -> set[str]:
    """Names of the per-epoch validation metrics `on_epoch` receives (`train.val_metrics` and the
    selection metric, or every metric)."""
    every = {*(f"hit@{k}" for k in HIT_KS), "map@r", "ap", "ndcg", "h_ap", "asi"}
    chosen = config.train.val_metrics
    if chosen is None:
        return every
    unknown = sorted(set(chosen) - every)
    if unknown:
        raise UserError(f"train.val_metrics: {', '.join(unknown)} not among {', '.join(sorted(every))}")
    return {*chosen, config.train.select_metric}


def train(
    config: RetrievalConfig,
    *,
    tracking_uri: str | None = None,
    resume: str | None = None,
    quiet: bool = False,
    tags: dict[str, str] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> str:
    """Train, log to MLflow, and return the run id (printed with the final test metrics).

    `tags`: MLflow run tags (e.g. a tuning study's parent run); `on_epoch(epoch, metrics)` is
    called after each validation with the unprefixed validation metrics (used for pruning).
    """
    device = resolve_device(config.device)
    info = distributed.setup(device.type)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    console = Console()
    generator = seed_everything(config.seed)
    check(config)  # fail on a bad loss argument before reading data
    validation_metrics(config)  # and on an unknown validation metric
    if info.enabled and config.train.patience is not None:
        raise UserError("train.patience: early stopping runs in one process, not under torchrun (remove it)")
    splits, model = build_everything(config, device)
    if config.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = build_criterion(config.loss, splits.num_levels, splits.num_train_classes, config.model.dim).to(device)
    if config.xbm.size and not uses_memory(criterion):
        raise UserError(f"xbm.size: cross-batch memory works with the ranking losses, not {config.loss.name}")
    memory = CrossBatchMemory(config.xbm.size, config.model.dim, splits.num_levels) if config.xbm.size else None
    optimizer = build_optimizer(model, criterion, config.optim)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factors(optimizer, config.optim, config.train.epochs))
    ddp_model: nn.Module = model
    if info.enabled:
        ddp_model = nn.parallel.DistributedDataParallel(model, device_ids=[info.local_rank] if device.type == "cuda" else None)
    trainer = Trainer(config, model, ddp_model, criterion, optimizer, scheduler, generator, memory, device, history=[])
    run_id = None
    if resume:
        state, run_id = find_resume(config, resume)
        trainer.load(state)
        console.print(f"resuming run {run_id} after epoch {trainer.epoch}")
    loader = train_loader(config, splits, generator, info)
    if not info.is_main:
        _train_epochs(trainer, loader, splits, info, None)
        distributed.teardown()
        return run_id or ""
    with tracking.run(config.name, uri=tracking_uri, run_id=run_id, tags=tags, **({} if run_id else labels(config))) as active:
        run_id = active.info.run_id
        folder = run_dir(config, run_id)
        folder.mkdir(parents=True, exist_ok=True)
        if not resume:
            tracking.log_params(flatten(config))
            import mlflow

            (folder / "config.yaml").write_text(to_yaml(config))
            mlflow.log_artifact(str(folder / "config.yaml"))
        _train_epochs(trainer, loader, splits, info, folder, on_epoch, quiet)
        test = _finish(trainer, splits, folder, console)
    distributed.teardown()
    console.print(metrics_table(test, f"{config.name}: test (best epoch {trainer.best_epoch})"))
    console.print(f"run id: {run_id}")
    return run_id


def _train_epochs(
    trainer: Trainer, loader: DataLoader, splits: Splits, info: distributed.DistInfo, folder: Path | None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    quiet: bool = False,
) -> None:
    config = trainer.config
    while trainer.epoch < config.train.epochs and not _stop_early(trainer):
        epoch = trainer.epoch + 1
        trainer.set_warmup(epoch <= config.optim.warmup_epochs, info.enabled)
        started = time.perf_counter()
        loss = trainer.train_epoch(loader, f"epoch {epoch}/{config.train.epochs}")
        trainer.scheduler.step()
        seconds = time.perf_counter() - started
        trainer.epoch = epoch
        if folder is None:  # other ranks: no evaluation, no logging
            continue
        row: dict[str, float] = {"epoch": epoch, "loss": loss, "epoch_seconds": seconds}
        is_best = splits.val is None and epoch == config.train.epochs
        if splits.val is not None and (epoch % config.train.eval_every == 0 or epoch == config.train.epochs):
            val = evaluate_split(
                trainer.model, splits.val, trainer.device, config.train.eval_batch_size, config.train.eval_chunk,
                names=None if config.train.val_metrics is None else validation_metrics(config),
            )
            if config.train.select_metric not in val:
                raise UserError(f"train.select_metric: {config.train.select_metric!r} is not one of {', '.join(val)}")
            row.update({f"val/{k}": v for k, v in val.items()})
            is_best = val[config.train.select_metric] > trainer.best
            if is_best:
                trainer.best, trainer.best_epoch = val[config.train.select_metric], epoch
        if splits.val is None and is_best:
            trainer.best_epoch = epoch
        trainer.history.append(row)
        tracking.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
        summary = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k in ("loss", "val/map@r", "val/hit@1", "val/h_ap"))
        if not quiet:
            print(f"epoch {epoch}: {summary}  ({seconds:.1f}s)", flush=True)
        state = trainer.state(tracking_run_id())
        if is_best:
            save_checkpoint(folder / "best.pt", state)
            import mlflow

            mlflow.log_artifact(str(folder / "best.pt"), artifact_path=Path(BEST_ARTIFACT).parent.as_posix())
        save_checkpoint(folder / "last.pt", state)
        if on_epoch is not None and any(k.startswith("val/") for k in row):
            on_epoch(epoch, {k.removeprefix("val/"): v for k, v in row.items() if k.startswith("val/")})


def _stop_early(trainer: Trainer) -> bool:
    """`train.patience` epochs without a better validation metric, after `train.min_epochs`."""
    train = trainer.config.train
    return (
        train.patience is not None and trainer.best_epoch > 0 and trainer.epoch >= train.min_epochs
        and trainer.epoch - trainer.best_epoch >= train.patience
    )


def tracking_run_id() -> str:
    import mlflow

    return mlflow.active_run().info.run_id


def _finish(trainer: Trainer, splits: Splits, folder: Path, console: Console) -> dict[str, float]:
    """Evaluate the best checkpoint on the test split; log metrics.json and curves.png."""
    import mlflow

    config = trainer.config
    best = load_checkpoint(folder / "best.pt")
    trainer.model.load_state_dict(best["model"])
    test = evaluate_split(trainer.model, splits.test, trainer.device, config.train.eval_batch_size, config.train.eval_chunk, config.data.workers)
    tracking.log_metrics(test, step=trainer.epoch, prefix="test/")
    final = {"best_epoch": trainer.best_epoch, **{f"test/{k}": v for k, v in test.items()}}
    if trainer.history:
        final.update({k: v for k, v in trainer.history[trainer.best_epoch - 1].items() if k.startswith("val/")})
        final["epoch_seconds"] = sum(h["epoch_seconds"] for h in trainer.history) / len(trainer.history)
    mlflow.log_artifact(str(write_metrics(final, folder / "metrics.json")))
    if trainer.history:
        mlflow.log_artifact(str(plot_training_curves(trainer.history, folder / "curves.png", config.name)))
    return test
