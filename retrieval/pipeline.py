"""From a retrieval config to its parts: the train/val/test splits and the embedding model; and
back from a training checkpoint to the config, the trained model and its data (`restore`)."""

from __future__ import annotations

import torch
import yaml

from itemrec.experiment.checkpoint import Checkpoint
from itemrec.experiment.errors import UserError
from itemrec.experiment.runtime import resolve_device
from retrieval.config import RetrievalConfig
from retrieval.model import EmbeddingModel, build_model
from retrieval.splits import Splits, load_splits


def input_channels(config: RetrievalConfig) -> int:
    return 1 if config.data.dataset == "fashion_mnist" and config.model.backbone == "small_cnn" else 3


def build_everything(config: RetrievalConfig, device: torch.device) -> tuple[Splits, EmbeddingModel]:
    """Datasets and the embedding model on `device` (no weights beyond `model.weights`)."""
    splits = load_splits(config.data, config.model.backbone, config.seed)
    features = splits.train.records.features
    if (config.model.backbone == "features") != (features is not None):
        raise UserError("model.backbone: use backbone features exactly with data.dataset features")
    feature_dim = features.shape[1] if features is not None else 0
    model = build_model(config.model, input_channels(config), feature_dim).to(device)
    return splits, model


def restore(checkpoint: Checkpoint, device: str | None = None) -> tuple[RetrievalConfig, EmbeddingModel, Splits, torch.device]:
    """Config, trained model (eval mode) and data of a checkpoint (for evaluate and search)."""
    config = RetrievalConfig.model_validate(yaml.safe_load(checkpoint.config))
    torch_device = resolve_device(device or config.device)
    splits, model = build_everything(config, torch_device)
    model.load_state_dict(checkpoint.model)
    return config, model.eval(), splits, torch_device
