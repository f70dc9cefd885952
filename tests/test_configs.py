"""Every config shipped in `configs/` parses and validates (a broken example is a broken promise)."""

from pathlib import Path

import pytest

import itemrec.frontends  # noqa: F401  (registers the front ends that configs are validated by)
from itemrec.experiment.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))


def test_there_are_configs():
    assert len(CONFIGS) > 50


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[2])))
def test_config_validates(path):
    config = load_config(path)
    assert config.task in ("recsys", "retrieval")
