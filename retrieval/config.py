"""The retrieval experiment config: typed sections validated from YAML (`task: retrieval`).

Example (`configs/retrieval/fashion_mnist_roadmap.yaml`)::

    task: retrieval
    seed: 0
    data: {dataset: fashion_mnist, protocol: unseen_classes, val_fraction: 0.1}
    sampler: {name: m_per_class, m: 32}
    model: {backbone: small_cnn, dim: 128}
    loss: {name: roadmap, lam: 0.1}
    xbm: {size: 0}
    optim: {lr: 0.001, backbone_lr: 0.001, warmup_epochs: 0}
    train: {epochs: 6, batch_size: 192}
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, field_validator, model_validator

from itemrec.experiment.config import ExperimentConfig, NamedSpec, Section
from retrieval.metric_names import METRIC_NAMES, check_metric_names

DatasetName = Literal["csv", "image_folder", "sop", "cub", "cars196", "inaturalist", "fashion_mnist", "features"]
DATASETS: tuple[str, ...] = get_args(DatasetName)


class DataSection(Section):
    """`data:` where the images and labels come from and how they are loaded."""

    dataset: DatasetName
    root: Path | None = None
    """Dataset folder (fashion_mnist: `/usr/share/datasets/fashion-mnist` by default)."""
    train_file: Path | None = None
    """csv / inaturalist / features: the training split file (relative to `root` if given)."""
    test_file: Path | None = None
    protocol: Literal["unseen_classes", "standard"] = "unseen_classes"
    """fashion_mnist: train on 6 classes and test on the other 4, or all classes on both splits."""
    test_classes: list[int] = Field(default_factory=lambda: [3, 6, 7, 8])
    """fashion_mnist unseen_classes: the held-out classes (dress, shirt, sneaker, bag)."""
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    """Share of each training class's images held out for per-epoch validation (0: none)."""
    image_size: int | None = Field(None, ge=8)
    """Input size in pixels. Unset: the images' own size with `small_cnn` (28 for Fashion-MNIST),
    224 for the ImageNet backbones (photos: resize to 8/7 of it, then crop). Printed at start."""
    on_missing: Literal["error", "drop"] = "error"
    on_unreadable: Literal["skip", "error"] = "skip"
    workers: int = Field(0, ge=0)
    pin_memory: bool = False


class SamplerSection(Section):
    """`sampler:` how training batches are composed."""

    name: Literal["m_per_class", "hierarchical", "random"] = "m_per_class"
    m: int = Field(4, ge=1)
    """Images per fine class in a batch (m_per_class, hierarchical)."""
    coarse_per_batch: int = Field(2, ge=1)
    """hierarchical: coarse classes per batch, fine classes drawn inside them."""
    small_classes: Literal["error", "drop"] = "error"
    """A class with fewer than m images: fail, or drop it from training (counted)."""
    steps_per_epoch: int | None = Field(None, ge=1)
    """Batches per epoch (default: training images // batch size)."""


class ModelSection(Section):
    """`model:` backbone + embedding head."""

    backbone: Literal["resnet18", "resnet50", "small_cnn", "efficientnet_lite0", "features"] = "resnet50"
    weights: Path | None = None
    """Local state_dict file for the backbone (torchvision layout for ResNets); none: random init."""
    pooling: Literal["avg", "gem"] = "avg"
    gem_p: float = Field(3.0, gt=0)
    layer_norm: bool = False
    dim: int = Field(512, ge=2)
    frozen_bn: bool = False
    """Keep the backbone's BatchNorm statistics and affine parameters fixed."""
    hidden: int = Field(512, ge=1)
    """features: width of the MLP head's hidden layer."""


class XBMSection(Section):
    """`xbm:` cross-batch memory for the ranking losses (size 0: off)."""

    size: int = Field(0, ge=0)
    start_epoch: int = Field(1, ge=1)


class OptimSection(Section):
    """`optim:` AdamW with separate learning rates, head-only warm-up and a cosine schedule."""

    lr: float = Field(1e-3, gt=0)
    """Head (and loss proxies) learning rate."""
    backbone_lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_epochs: int = Field(0, ge=0)
    """Epochs training the head only (backbone frozen)."""
    schedule: Literal["cosine", "constant"] = "cosine"


class TrainSection(Section):
    """`train:` loop settings."""

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=2)
    amp: bool = True
    """Mixed precision on CUDA (ignored on CPU)."""
    channels_last: bool = True
    """channels_last memory format for images and convolutions (CUDA, and CPU's oneDNN kernels:
    1.3x per training batch of the small CNN on one CPU thread)."""
    eval_every: int = Field(1, ge=1)
    eval_batch_size: int = Field(512, ge=1)
    eval_chunk: int = Field(1024, ge=1)
    """Queries ranked at once in evaluation (memory: chunk x test images)."""
    select_metric: str = "map@r"
    """Validation metric choosing the best checkpoint."""
    val_metrics: list[str] | None = None
    """Metrics computed on the validation split each epoch (None: all; `select_metric` is always
    among them). Fewer make per-epoch validation cheaper; the test split always gets every metric."""
    patience: int | None = Field(None, ge=1)
    """Stop once `select_metric` has not improved for this many epochs (None: run every epoch)."""
    min_epochs: int = Field(1, ge=1)
    """Epochs always run before `patience` may stop training."""
    run_dir: Path = Path("runs")

    @field_validator("select_metric")
    @classmethod
    def _select_metric(cls, value: str) -> str:
        return check_metric_names([value])[0]

    @field_validator("val_metrics")
    @classmethod
    def _val_metrics(cls, value: list[str] | None) -> list[str] | None:
        return value if value is None else check_metric_names(value)


class RetrievalConfig(ExperimentConfig):
    """A runnable image-retrieval experiment."""

    task: Literal["retrieval"]
    data: DataSection
    sampler: SamplerSection = Field(default_factory=SamplerSection)
    model: ModelSection = Field(default_factory=ModelSection)
    loss: NamedSpec = Field(default_factory=lambda: NamedSpec(name="roadmap"))
    xbm: XBMSection = Field(default_factory=XBMSection)
    optim: OptimSection = Field(default_factory=OptimSection)
    train: TrainSection = Field(default_factory=TrainSection)

    def validation_metric_names(self) -> set[str]:
        """Names of the metrics per-epoch validation reports (`train.val_metrics` and
        `train.select_metric`, or every metric): what `tune.metric` may select."""
        chosen = self.train.val_metrics
        return set(METRIC_NAMES) if chosen is None else {*chosen, self.train.select_metric}

    @model_validator(mode="after")
    def _batch_holds_classes(self) -> RetrievalConfig:
        if self.sampler.name != "random" and self.train.batch_size % self.sampler.m:
            raise ValueError(
                f"train.batch_size ({self.train.batch_size}) must be a multiple of sampler.m ({self.sampler.m})"
            )
        return self
