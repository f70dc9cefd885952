"""From a retrieval config to its splits and model, and back from a checkpoint (`restore`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from itemrec.experiment.checkpoint import Checkpoint
from itemrec.experiment.config import to_yaml
from itemrec.experiment.errors import UserError
from retrieval.config import RetrievalConfig
from retrieval.pipeline import build_everything, input_channels, restore


def config(root: Path, **model) -> RetrievalConfig:
    return RetrievalConfig.model_validate({
        "task": "retrieval", "device": "cpu",
        "data": {"dataset": "fashion_mnist", "root": str(root), "val_fraction": 0.25},
        "model": {"backbone": "small_cnn", "dim": 8, **model},
    })


@pytest.mark.parametrize(
    "dataset, backbone, channels",
    [("fashion_mnist", "small_cnn", 1), ("fashion_mnist", "resnet18", 3), ("csv", "small_cnn", 3)],
)
def test_input_channels(tmp_path, dataset, backbone, channels):
    cfg = RetrievalConfig.model_validate(
        {"task": "retrieval", "data": {"dataset": dataset, "root": str(tmp_path)}, "model": {"backbone": backbone}}
    )
    assert input_channels(cfg) == channels


def test_splits_and_model_from_a_config(fashion_root):
    torch.manual_seed(0)
    splits, model = build_everything(config(fashion_root), torch.device("cpu"))
    # 6 training classes of 24 images, a quarter of each held out; 4 unseen classes of 12 to test
    assert (len(splits.train), len(splits.val), len(splits.test)) == (108, 36, 48)
    image = splits.train[0][0]
    assert image.shape == (1, 28, 28)
    with torch.no_grad():
        assert model.eval()(image[None]).shape == (1, 8)


def test_features_backbone_needs_a_features_dataset(fashion_root):
    with pytest.raises(UserError, match="use backbone features exactly with data.dataset features"):
        build_everything(config(fashion_root, backbone="features"), torch.device("cpu"))


def test_restore_rebuilds_the_trained_model_in_eval_mode(fashion_root):
    torch.manual_seed(0)
    cfg = config(fashion_root)
    splits, model = build_everything(cfg, torch.device("cpu"))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)  # "trained": differs from any fresh initialization
    checkpoint = Checkpoint(task="retrieval", config=to_yaml(cfg), model=model.state_dict())
    restored_cfg, restored, restored_splits, device = restore(checkpoint)
    assert restored_cfg == cfg and device == torch.device("cpu") and not restored.training
    assert len(restored_splits.test) == len(splits.test)
    images = torch.stack([splits.test[i][0] for i in range(4)])
    with torch.no_grad():
        torch.testing.assert_close(restored(images), model.eval()(images))
