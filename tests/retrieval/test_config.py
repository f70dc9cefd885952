"""The retrieval config: each key checked once, in its section, with one line naming it."""

import pytest
import torch
import yaml

import itemrec.frontends  # noqa: F401  (registers the front ends load_config dispatches to)
from itemrec.experiment.config import load_config, to_yaml
from itemrec.experiment.errors import UserError
from retrieval.config import DATASETS, RetrievalConfig
from retrieval.evaluate import retrieval_metrics
from retrieval.metric_names import HIT_KS, METRIC_NAMES

BASE = {
    "task": "retrieval",
    "data": {"dataset": "fashion_mnist", "val_fraction": 0.1},
    "sampler": {"name": "m_per_class", "m": 8},
    "model": {"backbone": "small_cnn", "dim": 16},
    "loss": {"name": "roadmap", "lam": 0.2},
    "train": {"epochs": 2, "batch_size": 32, "select_metric": "h_ap", "val_metrics": ["hit@1", "ap"]},
}
KNOWN = ", ".join(sorted(METRIC_NAMES))


def write(tmp_path, raw, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def load_error(tmp_path, overrides):
    """The one-line error of loading BASE with `overrides`, after its file name."""
    path = write(tmp_path, BASE)
    with pytest.raises(UserError) as err:
        load_config(path, overrides)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return "exp.yaml: " + message.removeprefix(f"{path}: ")


def test_unknown_key_is_named(tmp_path):
    assert load_error(tmp_path, ["train.select=ap"]) == "exp.yaml: train.select: unknown key"


def test_bad_select_metric_is_rejected_at_load(tmp_path):
    assert load_error(tmp_path, ["train.select_metric=mapr"]) == (
        f"exp.yaml: train.select_metric: 'mapr' is not one of {KNOWN}"
    )
    assert KNOWN.startswith("ap, asi, h_ap, hit@1, hit@16")


def test_bad_val_metrics_are_rejected_at_load(tmp_path):
    assert load_error(tmp_path, ["train.val_metrics=[ap, recall@1]"]) == (
        f"exp.yaml: train.val_metrics: 'recall@1' is not one of {KNOWN}"
    )
    assert load_error(tmp_path, ["train.val_metrics=[mAP, hit@3]"]) == (
        f"exp.yaml: train.val_metrics: 'mAP', 'hit@3' are not one of {KNOWN}"
    )


def test_bad_dataset_lists_the_datasets(tmp_path):
    message = load_error(tmp_path, ["data.dataset=mnist"])
    assert message.startswith("exp.yaml: data.dataset: Input should be 'csv', 'image_folder'")
    assert DATASETS[0] == "csv" and "fashion_mnist" in DATASETS


def test_validation_metric_names(tmp_path):
    config = load_config(write(tmp_path, BASE))
    assert config.validation_metric_names() == {"hit@1", "ap", "h_ap"}
    every = load_config(write(tmp_path, BASE), ["train.val_metrics=null"])
    assert every.validation_metric_names() == set(METRIC_NAMES)
    only_select = load_config(write(tmp_path, BASE), ["train.val_metrics=[]"])
    assert only_select.validation_metric_names() == {"h_ap"}


def test_assignment_is_checked_too():
    config = RetrievalConfig(task="retrieval", data={"dataset": "csv"})
    with pytest.raises(ValueError, match="'mapr' is not one of ap, asi"):
        config.train.select_metric = "mapr"
    assert config.train.select_metric == "map@r"


def test_metric_names_are_what_evaluation_computes():
    embeddings = torch.nn.functional.normalize(torch.randn(12, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1, 2, 0, 1, 2])
    assert set(retrieval_metrics(embeddings, labels, chunk=5)) == set(METRIC_NAMES)
    assert [f"hit@{k}" for k in HIT_KS] == [name for name in METRIC_NAMES if name.startswith("hit@")]


def test_a_good_config_round_trips(tmp_path):
    config = load_config(write(tmp_path, BASE))
    again = load_config(write(tmp_path, yaml.safe_load(to_yaml(config)), "again.yaml"))
    assert again.model_dump() == config.model_dump()
    assert again.train.select_metric == "h_ap" and again.train.val_metrics == ["hit@1", "ap"]
    assert again.loss.params == {"lam": 0.2} and again.sampler.m == 8
