"""The image-retrieval training session: m-per-class batches, gathered embeddings, cross-batch memory.

Each epoch draws m-per-class batches, embeds them, all-gathers the embeddings across ranks
(torchrun), adds the cross-batch memory and takes a step; the backbone is frozen for
`optim.warmup_epochs` and follows its cosine schedule after. Validation ranks the validation split
(`train.select_metric` picks the best epoch), and the best epoch is tested on the test split. The
epochs, early stopping, checkpoints and MLflow logging are the shared loop's
(`itemrec.experiment.loop`); `RetrievalSession` is what it drives.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import Tensor, nn
from torch.utils.data import DataLoader

from itemrec.experiment import tracking
from itemrec.experiment.errors import UserError
from retrieval import distributed
from retrieval.config import RetrievalConfig
from retrieval.evaluate import evaluate_split, metrics_table
from retrieval.losses import build_criterion, uses_memory
from retrieval.model import EmbeddingModel
from retrieval.pipeline import build_everything
from retrieval.samplers import build_sampler
from retrieval.splits import Splits, dataset_info
from retrieval.xbm import CrossBatchMemory

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


class RetrievalSession:
    """An image-retrieval training run on its device, driven by the shared loop (`itemrec.experiment.loop`)."""

    learned = True

    def __init__(self, config: RetrievalConfig, device: torch.device, info: distributed.DistInfo, generator: torch.Generator, quiet: bool) -> None:
        self.config, self.device, self.info, self.generator = config, device, info, generator
        self.splits, model = build_everything(config, device)
        if config.train.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model: EmbeddingModel = model
        splits = self.splits
        self.criterion = build_criterion(config.loss, splits.num_levels, splits.num_train_classes, config.model.dim).to(device)
        if config.xbm.size and not uses_memory(self.criterion):
            raise UserError(f"xbm.size: cross-batch memory works with the ranking losses, not {config.loss.name}")
        self.memory = CrossBatchMemory(config.xbm.size, config.model.dim, splits.num_levels) if config.xbm.size else None
        self.optimizer = build_optimizer(model, self.criterion, config.optim)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factors(self.optimizer, config.optim, config.train.epochs))
        self.ddp_model: nn.Module = model
        if info.enabled:
            self.ddp_model = nn.parallel.DistributedDataParallel(model, device_ids=[info.local_rank] if device.type == "cuda" else None)
        self.select_metric = config.train.select_metric
        self.loader: DataLoader | None = None  # built at the first epoch, after a resume restored the generator

    def dataset(self) -> tracking.DatasetInfo:
        """The data MLflow records as the run's dataset (`splits.dataset_info`)."""
        return dataset_info(self.config.data, self.splits)

    def state(self) -> dict[str, Any]:
        state = {
            "criterion": self.criterion.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }
        if self.memory is not None:
            state["memory"] = {
                "embeddings": self.memory.embeddings.cpu(), "labels": self.memory.labels.cpu(),
                "position": self.memory.position, "filled": self.memory.filled,
            }
        return state

    def load_state(self, extra: dict[str, Any]) -> None:
        self.criterion.load_state_dict(extra["criterion"])
        self.optimizer.load_state_dict(extra["optimizer"])
        self.scheduler.load_state_dict(extra["scheduler"])
        if self.memory is not None and "memory" in extra:
            m = extra["memory"]
            self.memory.embeddings, self.memory.labels = m["embeddings"].to(self.device), m["labels"].to(self.device)
            self.memory.position, self.memory.filled = m["position"], m["filled"]

    def set_warmup(self, warm: bool) -> None:
        """Head-only epochs: backbone BatchNorm in eval mode and (single process) no backbone grads."""
        self.model.train()
        if warm:
            self.model.backbone.eval()
        if not self.info.enabled:
            for name, p in self.model.backbone.named_parameters():
                p.requires_grad_(not warm and not (self.model.frozen_bn and _is_bn(self.model, name)))

    def train_epoch(self, epoch: int, bar) -> float:
        config = self.config
        if self.loader is None:
            self.loader = train_loader(config, self.splits, self.generator, self.info)
        self.set_warmup(epoch <= config.optim.warmup_epochs)
        cuda = self.device.type == "cuda"
        amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and config.train.amp)
        total, steps = 0.0, 0
        use_memory = self.memory is not None and epoch >= config.xbm.start_epoch
        task = bar.add_task(f"epoch {epoch}/{config.train.epochs}", total=len(self.loader), info="")
        for inputs, labels, _ in self.loader:
            inputs = inputs.to(self.device, non_blocking=True)
            if config.train.channels_last and inputs.dim() == 4:
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
        bar.remove_task(task)
        self.scheduler.step()
        return total / max(steps, 1)

    def validate(self, epoch: int, bar) -> tuple[dict[str, float], dict[str, float]] | None:
        if self.splits.val is None:
            return None
        config = self.config
        names = None if config.train.val_metrics is None else validation_metrics(config)
        val = evaluate_split(self.model, self.splits.val, self.device, config.train.eval_batch_size, config.train.eval_chunk, names=names)
        return val, {f"val/{k}": v for k, v in val.items()}

    def finish(self, folder: Path, run_id: str, history: list[dict[str, float]], best_epoch: int) -> dict[str, float]:
        """Test the best epoch's model; print the table and the run id (the last line)."""
        config = self.config
        test = evaluate_split(self.model, self.splits.test, self.device, config.train.eval_batch_size, config.train.eval_chunk, config.data.workers)
        tracking.log_metrics(test, step=len(history), prefix="test/")
        final = {"best_epoch": best_epoch, **{f"test/{k}": v for k, v in test.items()}}
        if history:
            final.update({k: v for k, v in history[best_epoch - 1].items() if k.startswith("val/")})
            final["epoch_seconds"] = sum(h["epoch_seconds"] for h in history) / len(history)
        console = Console()
        console.print(metrics_table(test, f"{config.name}: test (best epoch {best_epoch})"))
        console.print(f"run id: {run_id}")
        return dict(sorted(final.items()))


def _is_bn(model: EmbeddingModel, name: str) -> bool:
    module_name = name.rsplit(".", 1)[0]
    return isinstance(dict(model.backbone.named_modules()).get(module_name), nn.modules.batchnorm._BatchNorm)


# --------------------------------------------------------------------------- the contract


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
    return config.validation_metric_names()
