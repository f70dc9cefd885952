"""The input-size rule: the images' own size for small_cnn, 224 for ImageNet backbones, an
explicit data.image_size wins; printed; small_cnn on large images warns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retrieval.config import DataSection
from retrieval.splits import load_splits


def write_images(folder: Path, side: int, classes: int = 4, per_class: int = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = ["path,label"]
    for c in range(classes):
        for i in range(per_class):
            name = f"c{c}_{i}.png"
            Image.fromarray(rng.integers(0, 255, (side, side), dtype=np.uint8), mode="L").save(folder / name)
            rows.append(f"{name},{c}")
    (folder / "all.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.mark.parametrize(
    "side, backbone, image_size, expected, reason",
    [
        (8, "small_cnn", None, 8, "the images' own size, for small_cnn"),
        (8, "resnet18", None, 224, "resnet18's ImageNet size"),
        (8, "small_cnn", 16, 16, "data.image_size"),
        (40, "resnet18", 64, 64, "data.image_size"),
    ],
)
def test_input_size_rule(tmp_path, capsys, side, backbone, image_size, expected, reason):
    root = write_images(tmp_path / "img", side)
    data = DataSection(dataset="csv", root=root, train_file=Path("all.csv"), test_file=Path("all.csv"), val_fraction=0.0, image_size=image_size)
    splits = load_splits(data, backbone)
    image, _, _ = splits.train[0]
    assert tuple(image.shape[1:]) == (expected, expected)
    err = " ".join(capsys.readouterr().err.split())
    assert f"input size: {expected}x{expected} px ({reason}" in err and "warning" not in err


def test_small_cnn_on_large_images_warns(tmp_path, capsys):
    root = write_images(tmp_path / "img", 100, classes=2, per_class=4)
    data = DataSection(dataset="csv", root=root, train_file=Path("all.csv"), test_file=Path("all.csv"), val_fraction=0.0)
    load_splits(data, "small_cnn")
    err = " ".join(capsys.readouterr().err.split())
    assert "input size: 100x100 px" in err and "warning: small_cnn is built for small images (28 px) but gets 100x100 px" in err


def test_fashion_mnist_keeps_28(tmp_path, capsys):
    from tests.retrieval.conftest import write_fashion

    write_fashion(tmp_path / "fashion")
    splits = load_splits(DataSection(dataset="fashion_mnist", root=tmp_path / "fashion"), "small_cnn")
    assert tuple(splits.train[0][0].shape) == (1, 28, 28)
    assert "input size: 28x28 px (the images' own size, for small_cnn)" in " ".join(capsys.readouterr().err.split())
