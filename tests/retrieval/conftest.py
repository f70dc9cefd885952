"""Small datasets written by the tests themselves: images, IDX files, label files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retrieval.fashion_mnist import write_idx


def class_images(labels: np.ndarray, size: int = 28, seed: int = 0) -> np.ndarray:
    """`[N, size, size]` uint8: a bright square whose position encodes the class, plus noise."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 40, size=(len(labels), size, size)).astype(np.uint8)
    for i, c in enumerate(labels):
        row, col = divmod(int(c), 4)
        top, left = 2 + row * 8, 2 + col * 6
        images[i, top : top + 6, left : left + 6] = 220
    return images


def write_fashion(root: Path, train_per_class: int = 24, test_per_class: int = 12, compress: bool = True) -> Path:
    """A tiny Fashion-MNIST lookalike (10 classes) in the IDX layout of the real files."""
    suffix = ".gz" if compress else ""
    for split, per_class, seed in (("train", train_per_class, 0), ("t10k", test_per_class, 1)):
        labels = np.repeat(np.arange(10), per_class).astype(np.uint8)
        write_idx(root / f"{split}-images-idx3-ubyte{suffix}", class_images(labels, seed=seed), compress)
        write_idx(root / f"{split}-labels-idx1-ubyte{suffix}", labels, compress)
    return root


@pytest.fixture
def fashion_root(tmp_path: Path) -> Path:
    return write_fashion(tmp_path / "fashion")


def write_image(path: Path, value: int = 128, size: tuple[int, int] = (20, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value // 2, 255 - value)).save(path)
    return path
