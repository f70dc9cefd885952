"""The model-from-code file that MLflow runs to build a recommendation run's model."""

from __future__ import annotations

import runpy
from pathlib import Path

from itemrec.recsys import serving
from itemrec.recsys.serving import RecommenderModel


def test_the_logged_code_file_exists_next_to_serving():
    assert Path(serving.__file__).with_name("serving_model.py").is_file()


def test_running_the_file_sets_a_recommender_model(monkeypatch):
    import mlflow.models.model as model_module

    monkeypatch.setattr(model_module, "__mlflow_model__", None, raising=False)
    runpy.run_path(str(Path(serving.__file__).with_name("serving_model.py")))
    assert isinstance(model_module.__mlflow_model__, RecommenderModel)
