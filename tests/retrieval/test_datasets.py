"""Readers on small files written here, and every bad-input error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import savemat

from itemrec.experiment.errors import UserError
from retrieval import datasets as D
from retrieval.config import DataSection
from retrieval.splits import load_splits
from tests.retrieval.conftest import write_image


def test_csv_reader_with_header_and_coarse_labels(tmp_path: Path):
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        write_image(tmp_path / "img" / name)
    (tmp_path / "train.csv").write_text("path,label,category\nimg/a.jpg,chair1,chair\nimg/b.jpg,chair2,chair\n\nimg/c.jpg,lamp1,lamp\n")
    records = D.read_csv(tmp_path / "train.csv")
    assert records.labels == [("chair1", "chair"), ("chair2", "chair"), ("lamp1", "lamp")]
    assert records.paths[0] == tmp_path / "img" / "a.jpg"


def test_csv_without_header_and_bad_rows(tmp_path: Path):
    (tmp_path / "ok.csv").write_text("x.jpg,3\ny.jpg,4\n")
    assert D.read_csv(tmp_path / "ok.csv").labels == [("3",), ("4",)]
    (tmp_path / "nolabel.csv").write_text("path,label\nx.jpg,3\ny.jpg,\n")
    with pytest.raises(UserError, match=r"nolabel.csv:3: missing label column"):
        D.read_csv(tmp_path / "nolabel.csv")
    (tmp_path / "header.csv").write_text("path\nx.jpg\n")
    with pytest.raises(UserError, match=r"header has no label column"):
        D.read_csv(tmp_path / "header.csv")
    (tmp_path / "ragged.csv").write_text("x.jpg,1,a\ny.jpg,2\n")
    with pytest.raises(UserError, match=r"ragged.csv:2: 1 label columns, earlier rows have 2"):
        D.read_csv(tmp_path / "ragged.csv")


def test_image_folder_with_and_without_split_folders(tmp_path: Path):
    for split, cls in (("train", "cat"), ("train", "dog"), ("test", "fox")):
        write_image(tmp_path / "a" / split / cls / "1.png")
    train, test = D.read_image_folder(tmp_path / "a")
    assert [lab for lab in train.labels] == [("cat",), ("dog",)] and test.labels == [("fox",)]
    for cls in ("c1", "c2", "c3", "c4"):
        write_image(tmp_path / "b" / cls / "x.jpg")
        write_image(tmp_path / "b" / cls / "y.jpg")
    train, test = D.read_image_folder(tmp_path / "b")
    assert {lab[0] for lab in train.labels} == {"c1", "c2"} and {lab[0] for lab in test.labels} == {"c3", "c4"}
    assert len(train) == 4


def test_sop_reader(tmp_path: Path):
    header = "image_id class_id super_class_id path\n"
    (tmp_path / "Ebay_train.txt").write_text(header + "1 1 1 bicycle_final/1.JPG\n2 1 1 bicycle_final/2.JPG\n3 2 3 chair_final/3.JPG\n")
    (tmp_path / "Ebay_test.txt").write_text(header + "4 9 2 cabinet_final/4.JPG\n")
    train, test = D.read_sop(tmp_path)
    assert train.labels == [(1, 1), (1, 1), (2, 3)] and test.labels == [(9, 2)]
    assert train.paths[2] == tmp_path / "chair_final/3.JPG"
    (tmp_path / "Ebay_test.txt").write_text(header + "4 9 cabinet_final/4.JPG\n")
    with pytest.raises(UserError, match=r"Ebay_test.txt:2"):
        D.read_sop(tmp_path)


def test_cub_reader_splits_at_class_100(tmp_path: Path):
    (tmp_path / "images.txt").write_text("1 001.Black_footed_Albatross/a.jpg\n2 100.Brown_Pelican/b.jpg\n3 101.White_Pelican/c.jpg\n4 200.Common_Yellowthroat/d.jpg\n")
    (tmp_path / "image_class_labels.txt").write_text("1 1\n2 100\n3 101\n4 200\n")
    train, test = D.read_cub(tmp_path)
    assert train.labels == [(1,), (100,)] and test.labels == [(101,), (200,)]
    assert train.paths[0] == tmp_path / "images" / "001.Black_footed_Albatross/a.jpg"


def test_cars196_reader_from_mat(tmp_path: Path):
    dtype = [("relative_im_path", "O"), ("class", "O"), ("test", "O")]
    rows = [("car_ims/000001.jpg", 1, 0), ("car_ims/000002.jpg", 98, 1), ("car_ims/000003.jpg", 99, 0), ("car_ims/000004.jpg", 196, 1)]
    annotations = np.array([tuple(np.array([[v]]) if not isinstance(v, str) else np.array([v]) for v in r) for r in rows], dtype=dtype)
    savemat(tmp_path / "cars_annos.mat", {"annotations": annotations[None, :]})
    train, test = D.read_cars196(tmp_path)
    assert train.labels == [(1,), (98,)] and test.labels == [(99,), (196,)]
    assert test.paths[1] == tmp_path / "car_ims/000004.jpg"


def test_inaturalist_json_and_txt(tmp_path: Path):
    data = {
        "images": [{"id": 10, "file_name": "train_val2018/Plantae/5/a.jpg"}, {"id": 11, "file_name": "train_val2018/Aves/7/b.jpg"}],
        "annotations": [{"image_id": 10, "category_id": 5}, {"image_id": 11, "category_id": 7}],
        "categories": [{"id": 5, "name": "x", "supercategory": "Plantae"}, {"id": 7, "name": "y", "supercategory": "Aves"}],
    }
    (tmp_path / "train2018.json").write_text(json.dumps(data))
    records = D.read_inaturalist(tmp_path / "train2018.json", tmp_path / "root")
    assert records.labels == [(5, "Plantae"), (7, "Aves")]
    assert records.paths[0] == tmp_path / "root" / "train_val2018/Plantae/5/a.jpg"
    (tmp_path / "split.txt").write_text("train_val2018/Plantae/5/a.jpg\ntrain_val2018/Aves/7/b.jpg\n")
    assert D.read_inaturalist(tmp_path / "split.txt").labels == [("5", "Plantae"), ("7", "Aves")]
    del data["annotations"][1]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"image 11 has no annotation"):
        D.read_inaturalist(tmp_path / "bad.json")


def test_features_pt_npz_npy(tmp_path: Path):
    feats, labels = torch.randn(5, 3), torch.tensor([0, 0, 1, 1, 2])
    torch.save({"features": feats, "labels": labels}, tmp_path / "f.pt")
    r = D.read_features(tmp_path / "f.pt")
    assert torch.equal(r.features, feats) and r.labels == [(0,), (0,), (1,), (1,), (2,)]
    np.save(tmp_path / "g.npy", feats.numpy())
    np.save(tmp_path / "g.labels.npy", np.stack([labels.numpy(), labels.numpy() // 2], 1))
    assert D.read_features(tmp_path / "g.npy").labels[4] == (2, 1)
    np.save(tmp_path / "h.npy", feats.numpy())
    with pytest.raises(UserError, match=r"missing label file h.labels.npy"):
        D.read_features(tmp_path / "h.npy")


def test_missing_files_listed_and_counted(tmp_path: Path, capsys):
    write_image(tmp_path / "a.jpg")
    records = D.Records(labels=[(0,), (1,), (2,)], paths=[tmp_path / "a.jpg", tmp_path / "gone1.jpg", tmp_path / "gone2.jpg"], source="train.csv")
    with pytest.raises(UserError, match=r"train.csv: 2 image file\(s\) missing: .*gone1.jpg, .*gone2.jpg"):
        D.check_files(records, "error", "skip")
    kept = D.check_files(records, "drop", "skip")
    assert kept.labels == [(0,)] and kept.dropped == {"missing": 2, "unreadable": 0}
    assert "dropped 2 missing" in capsys.readouterr().out


def test_unreadable_images_skipped_with_count_or_fatal(tmp_path: Path):
    write_image(tmp_path / "good.png")
    (tmp_path / "broken.jpg").write_bytes(b"not an image at all")
    records = D.Records(labels=[(0,), (1,)], paths=[tmp_path / "good.png", tmp_path / "broken.jpg"], source="s")
    kept = D.check_files(records, "error", "skip")
    assert kept.paths == [tmp_path / "good.png"] and kept.dropped["unreadable"] == 1
    with pytest.raises(UserError, match=r"1 unreadable image\(s\): .*broken.jpg"):
        D.check_files(records, "error", "error")


def test_hierarchy_must_be_a_tree():
    D.check_tree([("a", "x"), ("b", "x"), ("c", "y")], "s")
    with pytest.raises(UserError, match=r"not a tree: label 'b' \(level 0\) is under both 'x' and 'y'"):
        D.check_tree([("a", "x"), ("b", "x"), ("b", "y")], "s")


def test_encode_labels_puts_training_classes_first():
    train, test = D.encode_labels([("10", "b"), ("2", "a")], [("1", "c"), ("2", "a")])
    assert train.tolist() == [[1, 1], [0, 0]]  # numeric order: 2 < 10
    assert test.tolist() == [[2, 2], [0, 0]]


def test_load_splits_from_csv_with_validation_holdout(tmp_path: Path):
    lines = ["path,label,group"]
    for c in range(4):
        for i in range(10):
            write_image(tmp_path / f"{c}_{i}.png", value=20 * c + i)
            lines.append(f"{c}_{i}.png,{c},{c // 2}")
    (tmp_path / "all.csv").write_text("\n".join(lines))
    data = DataSection(dataset="csv", root=tmp_path, train_file=Path("all.csv"), test_file=Path("all.csv"), val_fraction=0.2, image_size=16)
    splits = load_splits(data, "resnet18")
    assert len(splits.train) == 32 and len(splits.val) == 8 and len(splits.test) == 40
    x, y, index = splits.train[0]
    assert x.shape == (3, 16, 16) and y.shape == (2,) and index == 0
    assert splits.num_levels == 2 and splits.num_train_classes == 4
