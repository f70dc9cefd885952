"""A recommendation run records its training data as the MLflow run's dataset: name, source,
a digest of the split, and users, items and interactions per split that match the data."""

from __future__ import annotations

import csv
import json

from itemrec.experiment.config import load_config
from itemrec.recsys.data import NAMED_DATASETS
from itemrec.recsys.frontend import train
from itemrec.recsys.pipeline import dataset_info, load_data
from tests.recsys.test_train import write_config

FAST = {"model": {"name": "mf", "dim": 8}, "loss": {"name": "bpr"}, "sampling": {"negatives": "uniform"}}


def test_a_run_logs_its_dataset_with_the_sizes_of_each_split(workdir):
    import mlflow

    path = workdir / "inter.csv"
    config = load_config(write_config(workdir, train={"epochs": 2}, **FAST))
    run_id = train(config, quiet=True, stop_after=1)
    assert train(config, quiet=True, resume=run_id) == run_id  # the resumed run logs it again: still one

    (logged,) = mlflow.get_run(run_id).inputs.dataset_inputs
    dataset = logged.dataset
    assert dataset.name == str(path) and dataset.source_type == "local"
    assert json.loads(dataset.source) == {"uri": path.resolve().as_uri()}
    assert {(t.key, t.value) for t in logged.tags} == {("mlflow.data.context", "training")}

    with path.open() as f:
        rows = list(csv.DictReader(f))
    profile = json.loads(dataset.profile)
    assert profile["users"] == len({r["user_id"] for r in rows}) == 80
    assert profile["items"] == len({r["item_id"] for r in rows}) == 50
    assert profile["interactions"] == len(rows)
    data = load_data(config, quiet=True)
    assert (profile["train_interactions"], profile["val_interactions"], profile["test_interactions"]) == (
        data.train.nnz, data.val.nnz, data.test.nnz,
    )
    assert data.train.nnz + data.val.nnz + data.test.nnz == len(rows)
    assert profile["split"] == "random" and profile["split_seed"] == config.seed
    assert dataset.digest == dataset_info(config, data).digest


def test_the_digest_follows_the_split_and_a_named_dataset_has_its_url(workdir):
    config = load_config(write_config(workdir, **FAST))
    data = load_data(config, quiet=True)
    info = dataset_info(config, data)
    assert info.digest == dataset_info(config, load_data(config, quiet=True)).digest  # the same data
    other_split = load_config(write_config(workdir, **FAST), ["data.split_seed=11"])
    assert dataset_info(other_split, load_data(other_split, quiet=True)).digest != info.digest

    named = load_config(write_config(workdir, **FAST), ["data.source=ml-100k"])  # nothing is fetched
    info = dataset_info(named, data)
    assert (info.name, info.source) == ("ml-100k", NAMED_DATASETS["ml-100k"].downloads[0].url)
    assert info.source.startswith("https://")
