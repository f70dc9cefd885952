"""Fashion-MNIST from its IDX files, with the 2-level hierarchy of DESIGN.md §5.

Debian's `dataset-fashion-mnist` installs the four files (gzip) under
`/usr/share/datasets/fashion-mnist`; raw (uncompressed) IDX files work too.

Hierarchy (fine class -> coarse class): tops (T-shirt/top 0, pullover 2, dress 3, coat 4,
shirt 6), trouser (1), footwear (sandal 5, sneaker 7, ankle boot 9), bag (8).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from itemrec.experiment.errors import UserError
from retrieval.datasets import Records

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
COARSE = ("tops", "trouser", "footwear", "bag")
COARSE_OF = (0, 1, 0, 0, 0, 2, 0, 2, 3, 2)
"""Coarse class of each fine class."""
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (gzip or raw): magic `00 00 type ndim`, big-endian dims, then the data."""
    try:
        opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
        with opener(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise UserError(f"{path}: cannot read IDX file ({err})") from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in IDX_TYPES:
        raise UserError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_TYPES[data[2]])
    body = data[4 + 4 * ndim :]
    if len(body) != int(np.prod(shape)) * dtype.itemsize:
        raise UserError(f"{path}: truncated IDX file ({len(body)} bytes for shape {shape})")
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def find_file(root: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (root / name).is_file():
            return root / name
    raise UserError(f"{root}: no {stem}[.gz] (install the dataset-fashion-mnist package or set data.root)")


def read_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """`(images [N, 28, 28] uint8, fine labels [N])` of the `train` or `test` split."""
    images = read_idx(find_file(root, FILES[split][0]))
    labels = read_idx(find_file(root, FILES[split][1])).astype(np.int64)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"{root}: {split} images {images.shape} and labels {labels.shape} do not match")
    if labels.min() < 0 or labels.max() >= len(CLASSES):
        raise UserError(f"{root}: {split} labels outside 0..9")
    return images.astype(np.uint8), labels


def records(images: np.ndarray, labels: np.ndarray, source: str) -> Records:
    """In-memory records with (fine, coarse) labels."""
    return Records(
        labels=[(int(c), COARSE_OF[int(c)]) for c in labels], images=images, source=source
    )


def read_fashion_mnist(
    root: Path | None, protocol: str = "unseen_classes", test_classes: list[int] | tuple[int, ...] = (3, 6, 7, 8)
) -> tuple[Records, Records]:
    """Train and test records.

    `unseen_classes`: train on the training images of the other classes, test on the test
    images of `test_classes`. `standard`: the standard train/test images over all classes.
    """
    root = Path(root) if root else DEFAULT_ROOT
    train_x, train_y = read_split(root, "train")
    test_x, test_y = read_split(root, "test")
    if protocol == "standard":
        return records(train_x, train_y, f"{root} (train)"), records(test_x, test_y, f"{root} (test)")
    unseen = sorted(set(test_classes))
    if not unseen or any(c < 0 or c >= len(CLASSES) for c in unseen) or len(unseen) == len(CLASSES):
        raise UserError(f"data.test_classes: must be a proper subset of 0..9, got {test_classes}")
    seen = ~np.isin(train_y, unseen)
    held = np.isin(test_y, unseen)
    return (
        records(train_x[seen], train_y[seen], f"{root} (train, seen classes)"),
        records(test_x[held], test_y[held], f"{root} (test, unseen classes)"),
    )


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    """Write a uint8 array as an IDX file (used to make small test datasets)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path
