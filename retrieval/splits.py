"""From a `data:` section to train / val / test datasets with consistently encoded labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console

from itemrec.experiment.errors import UserError
from itemrec.experiment.tracking import DatasetInfo, digest_arrays
from retrieval import datasets as D
from retrieval.config import DataSection
from retrieval.datasets import Records
from retrieval.fashion_mnist import DEFAULT_ROOT, read_fashion_mnist
from retrieval.transforms import build_transforms


@dataclass
class Splits:
    """The datasets of one experiment; `val` is None when `val_fraction` is 0."""

    train: D.RetrievalDataset
    val: D.RetrievalDataset | None
    test: D.RetrievalDataset

    @property
    def num_levels(self) -> int:
        return self.train.num_levels

    @property
    def num_train_classes(self) -> int:
        return int(self.train.labels[:, 0].max()) + 1

    def get(self, split: str) -> D.RetrievalDataset:
        if split == "val" and self.val is None:
            raise UserError("--split val: this run has no validation split (data.val_fraction is 0)")
        return self.val if split == "val" else self.test


def read_records(data: DataSection) -> tuple[D.Records, D.Records]:
    """Raw train and test records of the configured dataset."""
    kind, root = data.dataset, data.root

    def file(name: str) -> Path:
        value = getattr(data, name)
        if value is None:
            raise UserError(f"data.{name}: required for dataset {kind}")
        return root / value if root and not value.is_absolute() else value

    def need_root() -> Path:
        if root is None:
            raise UserError(f"data.root: required for dataset {kind}")
        return root

    if kind == "fashion_mnist":
        return read_fashion_mnist(root, data.protocol, data.test_classes)
    if kind == "csv":
        return D.read_csv(file("train_file")), D.read_csv(file("test_file"))
    if kind == "image_folder":
        return D.read_image_folder(need_root())
    if kind == "sop":
        return D.read_sop(need_root())
    if kind == "cub":
        return D.read_cub(need_root())
    if kind == "cars196":
        return D.read_cars196(need_root())
    if kind == "inaturalist":
        return D.read_inaturalist(file("train_file"), root), D.read_inaturalist(file("test_file"), root)
    if kind == "features":
        return D.read_features(file("train_file")), D.read_features(file("test_file"))
    raise UserError(f"data.dataset: unknown dataset {kind!r}")


def holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`(train, val)` positions: `fraction` of each fine class's images (at least 2 if any)."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels[:, 0]):
        members = rng.permutation(np.flatnonzero(labels[:, 0] == c))
        n_val = round(len(members) * fraction)
        n_val = 0 if n_val == 0 or len(members) < 4 else max(2, n_val)
        val.append(members[:n_val])
        train.append(members[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


_console = Console(stderr=True)

IMAGENET_SIZE = 224
"""Input size of the ImageNet backbones (ResNets, EfficientNet-Lite0) when `data.image_size` is unset."""
SMALL_CNN_MAX = 64
"""Above this many pixels a side, `small_cnn` (built for 28x28) is slow for nothing: a warning."""


def native_size(records: Records, probe: int = 16) -> int:
    """The largest side of the first `probe` images (in-memory arrays or files)."""
    if records.images is not None:
        return int(max(records.images.shape[1:3]))
    side = 0
    for path in (records.paths or [])[:probe]:
        try:
            with Image.open(path) as image:
                side = max(side, *image.size)
        except OSError:
            continue
    return side


def input_size(data: DataSection, backbone: str, records: Records) -> tuple[int | None, str]:
    """`(pixels, why)`: `data.image_size` when set; else the images' own size for `small_cnn` and
    224 for the ImageNet backbones; None in features mode. `small_cnn` at more than 64 px warns."""
    if data.dataset == "features" or backbone == "features":
        return None, "features mode"
    if data.image_size is not None:
        size, reason = data.image_size, "data.image_size"
    elif backbone == "small_cnn":
        size = native_size(records) or 28
        reason = "the images' own size, for small_cnn"
    else:
        size, reason = IMAGENET_SIZE, f"{backbone}'s ImageNet size; set data.image_size to change it"
    if backbone == "small_cnn" and size > SMALL_CNN_MAX:
        _console.print(
            f"[yellow]warning:[/yellow] small_cnn is built for small images (28 px) but gets {size}x{size} px: "
            f"much slower for little gain; set data.image_size (e.g. 32) or use a resnet backbone"
        )
    return size, reason


def load_splits(data: DataSection, backbone: str, seed: int = 0) -> Splits:
    """Read, check (files, hierarchy), encode and wrap the splits with their transforms."""
    train_rec, test_rec = read_records(data)
    train_rec = D.check_files(train_rec, data.on_missing, data.on_unreadable)
    test_rec = D.check_files(test_rec, data.on_missing, data.on_unreadable)
    for rec in (train_rec, test_rec):
        if len(rec) == 0:
            raise UserError(f"{rec.source}: no usable images")
    D.check_tree(train_rec.labels + test_rec.labels, f"data ({data.dataset})")
    train_labels, test_labels = D.encode_labels(train_rec.labels, test_rec.labels)
    size, reason = input_size(data, backbone, train_rec)
    if size is not None:
        _console.print(f"input size: {size}x{size} px ({reason})")
    train_tf, test_tf = build_transforms(data.dataset, backbone, size or 0)
    val = None
    if data.val_fraction > 0:
        keep, held = holdout(train_labels, data.val_fraction, seed)
        if len(held):
            val = D.RetrievalDataset(train_rec.subset(held), train_labels[held], test_tf)
            train_rec, train_labels = train_rec.subset(keep), train_labels[keep]
    return Splits(
        train=D.RetrievalDataset(train_rec, train_labels, train_tf),
        val=val,
        test=D.RetrievalDataset(test_rec, test_labels, test_tf),
    )


def data_source(data: DataSection) -> Path:
    """The folder or file the splits are read from: `data.root`, else Fashion-MNIST's default
    folder, else `data.train_file`."""
    if data.root is not None:
        return data.root
    if data.dataset == "fashion_mnist":
        return DEFAULT_ROOT
    if data.train_file is None:
        raise UserError(f"data.root: required for dataset {data.dataset}")
    return data.train_file


def _content(split: D.RetrievalDataset) -> list[np.ndarray]:
    """What identifies a split's data: its encoded labels and its images (arrays, features or paths)."""
    records = split.records
    arrays = [split.labels.numpy()]
    if records.images is not None:
        arrays.append(records.images)
    if records.features is not None:
        arrays.append(records.features.numpy())
    if records.paths is not None:
        arrays.append(np.frombuffer("\n".join(map(str, records.paths)).encode(), dtype=np.uint8))
    return arrays


def dataset_info(data: DataSection, splits: Splits) -> DatasetInfo:
    """The run's dataset for MLflow: `data.dataset` as its name, `data_source` as its source, a
    digest of the splits' labels and images, and classes and images per split as its profile."""
    parts = {"train": splits.train, "val": splits.val, "test": splits.test}
    profile: dict[str, int | float | str] = {"levels": splits.num_levels}
    for name, split in parts.items():
        fine = split.labels[:, 0].numpy() if split is not None else np.zeros(0, dtype=np.int64)
        profile[f"{name}_images"] = len(fine)
        profile[f"{name}_classes"] = len(np.unique(fine))
    if data.dataset == "fashion_mnist":
        profile["protocol"] = data.protocol
    profile["val_fraction"] = data.val_fraction
    content = [array for split in parts.values() if split is not None for array in _content(split)]
    return DatasetInfo(name=data.dataset, source=str(data_source(data)), digest=digest_arrays(*content), profile=profile)
