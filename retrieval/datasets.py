"""Dataset readers and the `RetrievalDataset` they feed.

Every reader returns `Records` per split: where each image is (a file path, or an index into an
in-memory array, or a feature row) and its labels `[N, L]`, columns from the finest level to the
coarsest (e.g. product, category). Labels are encoded to contiguous integers per level with the
training split's labels first, so training fine classes are `0..C-1` (HAPPIER's proxies).

Bad input is handled once, here: missing files are listed and counted (an error, or dropped with
`on_missing: drop`), unreadable images are skipped with a count (or an error), a missing label
column is an error naming the file and line, and a hierarchy that is not a tree (a fine label
under two coarse labels) is an error naming both.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from itemrec.experiment.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass
class Records:
    """One split before loading: image sources and raw labels (strings or ints) `[N][L]`."""

    labels: list[tuple]
    paths: list[Path] | None = None
    images: np.ndarray | None = None
    """`[N, H, W]` or `[N, H, W, C]` uint8 for in-memory datasets (Fashion-MNIST)."""
    features: Tensor | None = None
    """`[N, D]` precomputed embeddings (features mode)."""
    source: str = ""
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, keep: np.ndarray) -> Records:
        """The records at the integer positions `keep`."""
        keep = np.asarray(keep, dtype=np.int64)
        return Records(
            labels=[self.labels[i] for i in keep],
            paths=None if self.paths is None else [self.paths[i] for i in keep],
            images=None if self.images is None else self.images[keep],
            features=None if self.features is None else self.features[torch.from_numpy(keep)],
            source=self.source,
            dropped=dict(self.dropped),
        )


# --------------------------------------------------------------------------- label handling


def check_tree(labels: list[tuple], source: str) -> None:
    """Each label at one level must sit under exactly one label of the next coarser level."""
    for level in range(len(labels[0]) - 1 if labels else 0):
        parent: dict = {}
        for row in labels:
            child, coarse = row[level], row[level + 1]
            seen = parent.setdefault(child, coarse)
            if seen != coarse:
                raise UserError(
                    f"{source}: hierarchy is not a tree: label {child!r} (level {level}) is under "
                    f"both {seen!r} and {coarse!r} (level {level + 1})"
                )


def encode_labels(train: list[tuple], *others: list[tuple]) -> tuple[np.ndarray, ...]:
    """Contiguous int codes per level `[N, L]`, training labels first (sorted), then unseen ones."""
    levels = len(train[0])
    for rows in others:
        if rows and len(rows[0]) != levels:
            raise UserError(f"splits have different numbers of label levels ({levels} vs {len(rows[0])})")
    codes: list[dict] = []
    for level in range(levels):
        table: dict = {}
        for rows in (train, *others):
            for value in sorted({row[level] for row in rows}, key=_sort_key):
                table.setdefault(value, len(table))
        codes.append(table)
    return tuple(
        np.array([[codes[j][row[j]] for j in range(levels)] for row in rows], dtype=np.int64).reshape(
            len(rows), levels
        )
        for rows in (train, *others)
    )


def _sort_key(value) -> tuple:
    return (0, int(value), "") if str(value).lstrip("-").isdigit() else (1, 0, str(value))


# --------------------------------------------------------------------------- file checks


def check_files(records: Records, on_missing: str, on_unreadable: str) -> Records:
    """Drop or reject missing and unreadable images; the counts go into `records.dropped`."""
    if records.paths is None:
        return records
    missing = [i for i, p in enumerate(records.paths) if not p.is_file()]
    if missing:
        listed = ", ".join(str(records.paths[i]) for i in missing[:5])
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        if on_missing == "error":
            raise UserError(
                f"{records.source}: {len(missing)} image file(s) missing: {listed}{more} "
                "(set data.on_missing=drop to skip them)"
            )
        print(f"warning: {records.source}: dropped {len(missing)} missing image file(s): {listed}{more}")
    gone = set(missing)
    unreadable = [i for i, p in enumerate(records.paths) if i not in gone and not readable(p)]
    if unreadable:
        listed = ", ".join(str(records.paths[i]) for i in unreadable[:5])
        if on_unreadable == "error":
            raise UserError(f"{records.source}: {len(unreadable)} unreadable image(s): {listed}")
        print(f"warning: {records.source}: skipped {len(unreadable)} unreadable image(s): {listed}")
    if not missing and not unreadable:
        return records
    keep = np.array(sorted(set(range(len(records))) - gone - set(unreadable)), dtype=np.int64)
    out = records.subset(keep)
    out.dropped.update(missing=len(missing), unreadable=len(unreadable))
    return out


def readable(path: Path) -> bool:
    """The file opens as an image and its header is consistent (no full decode)."""
    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return False


def load_rgb(path: Path) -> Image.Image:
    """Decode an image as RGB; a file that fails now (after the header check) is a user error."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise UserError(f"{path}: cannot decode image ({err})") from None


# --------------------------------------------------------------------------- readers


def read_csv(path: Path) -> Records:
    """`path,label[,coarser labels...]` rows; a header row starting with `path` is skipped.

    Relative paths are relative to the CSV file's folder.
    """
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    rows = list(csv.reader(path.read_text().splitlines()))
    if rows and rows[0] and rows[0][0].strip().lower() == "path":
        header, rows, first = rows[0], rows[1:], 2
        if len(header) < 2:
            raise UserError(f"{path}: header has no label column (expected path,label[,coarser...])")
    else:
        first = 1
    paths, labels, width = [], [], None
    for line, row in enumerate(rows, start=first):
        if not row or not "".join(row).strip():
            continue
        cells = [c.strip() for c in row]
        if len(cells) < 2 or not all(cells[1:]):
            raise UserError(f"{path}:{line}: missing label column (expected path,label[,coarser...])")
        width = width or len(cells)
        if len(cells) != width:
            raise UserError(f"{path}:{line}: {len(cells) - 1} label columns, earlier rows have {width - 1}")
        paths.append(_resolve(path.parent, cells[0]))
        labels.append(tuple(cells[1:]))
    if not labels:
        raise UserError(f"{path}: no rows")
    return Records(labels=labels, paths=paths, source=str(path))


def read_image_folder(root: Path) -> tuple[Records, Records]:
    """`root/train/<class>/*` and `root/test/<class>/*`; without them, `root/<class>/*` with the
    first half of the sorted classes for training and the rest for testing."""
    if not root.is_dir():
        raise UserError(f"{root}: folder not found")
    if (root / "train").is_dir() and (root / "test").is_dir():
        return _folder_split(root / "train"), _folder_split(root / "test")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise UserError(f"{root}: needs train/ and test/ or at least 2 class folders")
    half = len(classes) // 2
    return _folder_split(root, classes[:half]), _folder_split(root, classes[half:])


def _folder_split(root: Path, classes: list[str] | None = None) -> Records:
    classes = classes or sorted(p.name for p in root.iterdir() if p.is_dir())
    paths, labels = [], []
    for name in classes:
        for file in sorted((root / name).rglob("*")):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(file)
                labels.append((name,))
    if not labels:
        raise UserError(f"{root}: no images found in class folders")
    return Records(labels=labels, paths=paths, source=str(root))


def read_sop(root: Path) -> tuple[Records, Records]:
    """Stanford Online Products: `Ebay_train.txt` / `Ebay_test.txt` (`image_id class_id
    super_class_id path`), labels (product, category)."""
    return _read_sop_file(root / "Ebay_train.txt"), _read_sop_file(root / "Ebay_test.txt")


def _read_sop_file(path: Path) -> Records:
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    lines = path.read_text().splitlines()
    paths, labels = [], []
    for line, text in enumerate(lines[1:], start=2):
        parts = text.split()
        if not parts:
            continue
        if len(parts) != 4:
            raise UserError(f"{path}:{line}: expected 'image_id class_id super_class_id path', got {text!r}")
        paths.append(path.parent / parts[3])
        labels.append((int(parts[1]), int(parts[2])))
    return Records(labels=labels, paths=paths, source=str(path))


def read_cub(root: Path) -> tuple[Records, Records]:
    """CUB-200-2011: `images.txt` + `image_class_labels.txt`; classes 1-100 train, 101-200 test."""
    for name in ("images.txt", "image_class_labels.txt"):
        if not (root / name).is_file():
            raise UserError(f"{root / name}: file not found (expected the CUB_200_2011 folder)")
    files = dict(line.split(maxsplit=1) for line in (root / "images.txt").read_text().splitlines() if line.strip())
    classes = dict(line.split() for line in (root / "image_class_labels.txt").read_text().splitlines() if line.strip())
    train, test = _split_by_class(
        [(root / "images" / files[i].strip(), int(classes[i])) for i in files if i in classes], 100
    )
    return Records(**train, source=str(root)), Records(**test, source=str(root))


def read_cars196(root: Path) -> tuple[Records, Records]:
    """Cars196: `cars_annos.mat` (scipy); classes 1-98 train, 99-196 test."""
    from scipy.io import loadmat

    path = root / "cars_annos.mat"
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    annotations = loadmat(str(path))["annotations"][0]
    items = [(root / str(a["relative_im_path"][0]), int(a["class"][0][0])) for a in annotations]
    train, test = _split_by_class(items, 98)
    return Records(**train, source=str(path)), Records(**test, source=str(path))


def _split_by_class(items: list[tuple[Path, int]], last_train_class: int) -> tuple[dict, dict]:
    train = [(p, c) for p, c in items if c <= last_train_class]
    test = [(p, c) for p, c in items if c > last_train_class]
    return (
        {"paths": [p for p, _ in train], "labels": [(c,) for _, c in train]},
        {"paths": [p for p, _ in test], "labels": [(c,) for _, c in test]},
    )


def read_inaturalist(path: Path, image_root: Path | None = None) -> Records:
    """iNaturalist-2018 split: a `.json` (COCO-style `images`, `annotations`, `categories` with
    `supercategory`) or a `.txt` list of `train_val2018/<super>/<class>/<file>` paths.

    Labels (class, super-category). Image paths are relative to `image_root` (default: the
    split file's folder).
    """
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    base = image_root or path.parent
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        for key in ("images", "annotations", "categories"):
            if key not in data:
                raise UserError(f"{path}: no {key!r} list (expected the iNaturalist json layout)")
        supers = {c["id"]: c.get("supercategory", "") for c in data["categories"]}
        category = {a["image_id"]: a["category_id"] for a in data["annotations"]}
        paths, labels = [], []
        for image in data["images"]:
            if image["id"] not in category:
                raise UserError(f"{path}: image {image['id']} has no annotation (missing label)")
            c = category[image["id"]]
            paths.append(base / image["file_name"])
            labels.append((c, supers[c]))
        return Records(labels=labels, paths=paths, source=str(path))
    paths, labels = [], []
    for line, text in enumerate(path.read_text().splitlines(), start=1):
        if not text.strip():
            continue
        parts = Path(text.strip()).parts
        if len(parts) < 4:
            raise UserError(f"{path}:{line}: expected <dir>/<super>/<class>/<file>, got {text.strip()!r}")
        paths.append(base / text.strip())
        labels.append((parts[-2], parts[-3]))
    return Records(labels=labels, paths=paths, source=str(path))


def read_features(path: Path) -> Records:
    """Precomputed embeddings: `.pt` dict `{features [N, D], labels [N] or [N, L]}`, `.npz` with
    the same arrays, or `.npy` features beside `<stem>.labels.npy`."""
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    if path.suffix == ".pt":
        data = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(data, dict) or "features" not in data or "labels" not in data:
            raise UserError(f"{path}: expected a dict with 'features' and 'labels'")
        features, labels = torch.as_tensor(data["features"]), np.asarray(torch.as_tensor(data["labels"]))
    elif path.suffix == ".npz":
        data = np.load(path)
        if "features" not in data or "labels" not in data:
            raise UserError(f"{path}: expected arrays 'features' and 'labels'")
        features, labels = torch.from_numpy(data["features"]), data["labels"]
    elif path.suffix == ".npy":
        label_file = path.with_name(path.stem + ".labels.npy")
        if not label_file.is_file():
            raise UserError(f"{path}: missing label file {label_file.name}")
        features, labels = torch.from_numpy(np.load(path)), np.load(label_file)
    else:
        raise UserError(f"{path}: features must be .pt, .npz or .npy")
    if features.dim() != 2 or len(features) != len(labels):
        raise UserError(f"{path}: features must be [N, D] with one label row each")
    labels = labels.reshape(len(labels), -1)
    return Records(labels=[tuple(int(v) for v in row) for row in labels], features=features.float(), source=str(path))


def _resolve(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


# --------------------------------------------------------------------------- dataset


class RetrievalDataset(Dataset):
    """Images (files, arrays or features) with encoded labels `[N, L]`, transformed on access.

    `__getitem__` returns `(input, labels [L], index)`: the index is the position in this
    dataset, used to remove a query from its own ranking by index.
    """

    def __init__(self, records: Records, labels: np.ndarray, transform: Callable | None = None) -> None:
        self.records, self.transform = records, transform
        self.labels = torch.from_numpy(labels)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_levels(self) -> int:
        return self.labels.shape[1]

    def raw(self, index: int):
        """The untransformed input: a PIL image, an array, or a feature vector."""
        r = self.records
        if r.features is not None:
            return r.features[index]
        if r.images is not None:
            return Image.fromarray(r.images[index])
        return load_rgb(r.paths[index])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, int]:
        x = self.raw(index)
        if self.transform is not None:
            x = self.transform(x)
        return x, self.labels[index], index
