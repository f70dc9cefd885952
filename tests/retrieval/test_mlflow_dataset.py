"""An image-retrieval run records its training data as the MLflow run's dataset: name, source,
a digest of the splits, and classes and images per split that match the data."""

from __future__ import annotations

import json

from itemrec.experiment.config import load_config
from retrieval.config import RetrievalConfig
from retrieval.frontend import train
from retrieval.splits import dataset_info, load_splits
from tests.retrieval.conftest import write_fashion
from tests.retrieval.test_train import write_config
from tests.stores import mlflow_store

TRAIN_PER_CLASS, TEST_PER_CLASS = 24, 12  # write_fashion's defaults: 10 classes
TEST_CLASSES = 4  # the config's protocol: unseen_classes, test classes 3, 6, 7, 8


def test_a_run_logs_its_dataset_with_the_classes_and_images_of_each_split(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)
    root = write_fashion(tmp_path / "fashion")
    config: RetrievalConfig = load_config(write_config(tmp_path), ["train.epochs=1"])
    run_id = train(config, tracking_uri=mlflow_store(tmp_path / "mlflow.db"))

    (logged,) = mlflow.get_run(run_id).inputs.dataset_inputs
    dataset = logged.dataset
    assert (dataset.name, dataset.source_type) == ("fashion_mnist", "local")
    assert json.loads(dataset.source) == {"uri": root.resolve().as_uri()}
    assert {(t.key, t.value) for t in logged.tags} == {("mlflow.data.context", "training")}

    seen = 10 - TEST_CLASSES
    held = round(TRAIN_PER_CLASS * config.data.val_fraction)  # per seen class, for validation
    assert json.loads(dataset.profile) == {
        "levels": 2,
        "train_images": seen * (TRAIN_PER_CLASS - held), "train_classes": seen,
        "val_images": seen * held, "val_classes": seen,
        "test_images": TEST_CLASSES * TEST_PER_CLASS, "test_classes": TEST_CLASSES,
        "protocol": "unseen_classes", "val_fraction": config.data.val_fraction,
    }
    splits = load_splits(config.data, config.model.backbone, config.seed)
    assert dataset.digest == dataset_info(config.data, splits).digest
    other = load_splits(config.data.model_copy(update={"val_fraction": 0.5}), config.model.backbone, config.seed)
    assert dataset_info(config.data, other).digest != dataset.digest
