"""Fixtures shared by the recommendation tests."""

import pytest

from tests.recsys.test_train import write_interactions
from tests.stores import mlflow_store


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working folder with a generated `inter.csv` and an MLflow store of its own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store(tmp_path / "mlflow.db"))
    write_interactions(tmp_path / "inter.csv")
    return tmp_path
