"""IDX reading and the Fashion-MNIST protocols, on tiny generated files (real files when present)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from itemrec.experiment.errors import UserError
from retrieval.fashion_mnist import COARSE_OF, DEFAULT_ROOT, read_fashion_mnist, read_idx, write_idx
from tests.retrieval.conftest import write_fashion


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path: Path, compress: bool):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a.idx", array, compress)), array)


def test_idx_errors(tmp_path: Path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(UserError, match=r"bad magic"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2]))
    with pytest.raises(UserError, match=r"truncated"):
        read_idx(tmp_path / "short")


def test_unseen_classes_protocol(tmp_path: Path):
    root = write_fashion(tmp_path, train_per_class=3, test_per_class=2, compress=False)
    train, test = read_fashion_mnist(root, "unseen_classes", [3, 6, 7, 8])
    assert {lab[0] for lab in train.labels} == {0, 1, 2, 4, 5, 9}
    assert {lab[0] for lab in test.labels} == {3, 6, 7, 8}
    assert len(train) == 18 and len(test) == 8 and train.images.shape == (18, 28, 28)
    assert all(coarse == COARSE_OF[fine] for fine, coarse in train.labels + test.labels)
    with pytest.raises(UserError, match=r"data.test_classes"):
        read_fashion_mnist(root, "unseen_classes", [11])


def test_standard_protocol_and_missing_folder(tmp_path: Path):
    root = write_fashion(tmp_path, train_per_class=2, test_per_class=1)
    train, test = read_fashion_mnist(root, "standard")
    assert len(train) == 20 and len(test) == 10
    with pytest.raises(UserError, match=r"dataset-fashion-mnist"):
        read_fashion_mnist(tmp_path / "nowhere")


@pytest.mark.skipif(not DEFAULT_ROOT.is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist_files():
    train, test = read_fashion_mnist(None, "unseen_classes")
    assert len(train) == 36000 and len(test) == 4000
    train, test = read_fashion_mnist(None, "standard")
    assert len(train) == 60000 and len(test) == 10000
