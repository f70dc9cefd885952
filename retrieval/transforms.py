"""Train and test transforms on PIL images -> normalized `[C, H, W]` float tensors.

Written with PIL + torch only (no torchvision), following the usual metric-learning recipes:
photos get a random resized crop (scale 0.16-1) and a horizontal flip for training, and a resize
to 8/7 of the crop size then a center crop for testing; 28x28 grayscale data gets a random crop
from a 2-pixel padding and a flip.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
LITE_MEAN, LITE_STD = (0.498, 0.498, 0.498), (0.502, 0.502, 0.502)
"""EfficientNet-Lite's input scaling: `(x * 255 - 127) / 128`."""
FASHION_MEAN, FASHION_STD = (0.286,), (0.353,)


def to_array(image: Image.Image, channels: int) -> np.ndarray:
    """`[H, W]` (one channel) or `[H, W, 3]` uint8 pixels; grayscale is repeated to 3 channels when asked."""
    mode = "L" if channels == 1 else "RGB"
    return np.asarray(image.convert(mode) if image.mode != mode else image, dtype=np.uint8)


def array_to_tensor(array: np.ndarray) -> Tensor:
    """`[C, H, W]` float in [0, 1] of uint8 pixels `[H, W]` or `[H, W, C]`."""
    x = torch.tensor(array, dtype=torch.float32).div_(255)  # a copy: PIL's arrays are read-only
    return x[None] if x.dim() == 2 else x.permute(2, 0, 1)


def to_tensor(image: Image.Image, channels: int) -> Tensor:
    """`[C, H, W]` float in [0, 1]; grayscale is repeated to 3 channels when asked."""
    return array_to_tensor(to_array(image, channels))


def normalize(x: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    m, s = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]
    if x.shape[0] != len(mean):
        m, s = m.mean(0, keepdim=True), s.mean(0, keepdim=True)
    return (x - m) / s


def resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of `[C, H, W]` (antialiased when shrinking)."""
    if tuple(x.shape[1:]) == tuple(size):
        return x
    return F.interpolate(x[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]


def random_resized_crop_box(
    height: int, width: int, scale: tuple[float, float] = (0.16, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3)
) -> tuple[int, int, int, int]:
    """`(top, left, h, w)` of a random crop with area share in `scale` and aspect in `ratio`."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * float(torch.empty(1).uniform_(*scale))
        aspect = math.exp(float(torch.empty(1).uniform_(*log_ratio)))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,)))
            left = int(torch.randint(0, width - w + 1, (1,)))
            return top, left, h, w
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


def random_flip(x: Tensor) -> Tensor:
    return x.flip(-1) if torch.rand(1).item() < 0.5 else x


class PhotoTrain:
    """Random resized crop to `size`, horizontal flip, normalize."""

    def __init__(self, size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> None:
        self.size, self.mean, self.std = size, mean, std

    def __call__(self, image: Image.Image) -> Tensor:
        x = to_tensor(image, 3)
        top, left, h, w = random_resized_crop_box(x.shape[1], x.shape[2])
        x = resize(x[:, top : top + h, left : left + w], (self.size, self.size))
        return normalize(random_flip(x), self.mean, self.std)


class PhotoTest:
    """Resize the shorter side to `size * 8 / 7`, center crop `size`, normalize."""

    def __init__(self, size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> None:
        self.size, self.mean, self.std = size, mean, std

    def __call__(self, image: Image.Image) -> Tensor:
        x = to_tensor(image, 3)
        short = round(self.size * 8 / 7)
        h, w = x.shape[1:]
        scale = short / min(h, w)
        x = resize(x, (max(self.size, round(h * scale)), max(self.size, round(w * scale))))
        top, left = (x.shape[1] - self.size) // 2, (x.shape[2] - self.size) // 2
        return normalize(x[:, top : top + self.size, left : left + self.size], self.mean, self.std)


class SmallTrain:
    """28x28 grayscale: random crop from a 2-pixel zero padding, flip, normalize."""

    def __init__(self, channels: int = 1, size: int = 28, pad: int = 2) -> None:
        self.channels, self.size, self.pad = channels, size, pad
        self.mean, self.std = np.float32(FASHION_MEAN[0]), np.float32(FASHION_STD[0])

    def __call__(self, image: Image.Image) -> Tensor:
        array = to_array(image, self.channels)  # padded and cropped as uint8 pixels: few small tensor ops per image
        p, (h, w) = self.pad, array.shape[:2]
        padded = np.zeros((h + 2 * p, w + 2 * p, *array.shape[2:]), dtype=np.uint8)
        padded[p : p + h, p : p + w] = array
        top, left = (int(v) for v in torch.randint(0, 2 * p + 1, (2,)))
        crop = padded[top : top + h, left : left + w]
        if (h, w) != (self.size, self.size):
            x = resize(array_to_tensor(crop), (self.size, self.size))
            return normalize(random_flip(x), FASHION_MEAN * self.channels, FASHION_STD * self.channels)
        if torch.rand(1).item() < 0.5:  # random_flip, in numpy
            crop = crop[:, ::-1]
        x = crop.astype(np.float32) / np.float32(255)  # what array_to_tensor and normalize compute, bit for bit
        x = (x - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(x[None] if x.ndim == 2 else x.transpose(2, 0, 1)))


class SmallTest:
    """28x28 grayscale: normalize (resized when a larger backbone wants it)."""

    def __init__(self, channels: int = 1, size: int = 28) -> None:
        self.channels, self.size = channels, size

    def __call__(self, image: Image.Image) -> Tensor:
        x = resize(to_tensor(image, self.channels), (self.size, self.size))
        return normalize(x, FASHION_MEAN * self.channels, FASHION_STD * self.channels)


def build_transforms(dataset: str, backbone: str, image_size: int) -> tuple[Callable | None, Callable | None]:
    """`(train, test)` transforms for a dataset kind and backbone (features mode: none)."""
    if dataset == "features" or backbone == "features":
        return None, None
    if dataset == "fashion_mnist":
        if backbone == "small_cnn":
            return SmallTrain(1, image_size), SmallTest(1, image_size)
        return SmallTrain(3, image_size), SmallTest(3, image_size)
    mean, std = (LITE_MEAN, LITE_STD) if backbone == "efficientnet_lite0" else (IMAGENET_MEAN, IMAGENET_STD)
    if backbone == "small_cnn":
        return SmallTrain(3, image_size), SmallTest(3, image_size)
    return PhotoTrain(image_size, mean, std), PhotoTest(image_size, mean, std)
