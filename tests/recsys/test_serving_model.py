"""The model-from-code file that MLflow runs to build a recommendation run's model, and that
model's `predict` without a server: answers in request order, ids in the dataset's own type, a bad
request a `BadRequest` (HTTP 400) with a one-line message."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import polars as pl
import pytest
import scipy.sparse as sp

from itemrec.recsys import serving
from itemrec.recsys.data import IdMap
from itemrec.recsys.recommend import Recommender
from itemrec.recsys.serving import DEFAULT_K, BadRequest, RecommenderModel


def test_the_logged_code_file_exists_next_to_serving():
    assert Path(serving.__file__).with_name("serving_model.py").is_file()


def test_running_the_file_sets_a_recommender_model(monkeypatch):
    import mlflow.models.model as model_module

    monkeypatch.setattr(model_module, "__mlflow_model__", None, raising=False)
    runpy.run_path(str(Path(serving.__file__).with_name("serving_model.py")))
    assert isinstance(model_module.__mlflow_model__, RecommenderModel)


class FakeRecommender:
    """Known ids from small id maps; top-k answers that show which call made them."""

    def __init__(self, users: list, items: list) -> None:
        self.users = IdMap.from_ids("user", pl.Series(users))
        self.items = IdMap.from_ids("item", pl.Series(items))
        seen = np.ones((len(users), len(items)), np.float32)
        seen[-1] = 0  # the last user (in sorted order) has no training interactions
        self.seen = sp.csr_matrix(seen)

    def for_user(self, user, k):
        return [(f"{user}-{rank}", 1.0 / (rank + 1)) for rank in range(k)]

    def for_new_user(self, items, k):
        return [("+".join(map(str, items)), float(k))]


def model_with_fake(users=("u1", "u3", "u12", "u99"), items=(7, 9, 11)) -> RecommenderModel:
    model = RecommenderModel()
    model.recommender = FakeRecommender(list(users), list(items))
    return model


def test_predict_answers_known_and_new_users_in_request_order():
    # a DataFrame of mixed rows holds NaN where a row has no `user` or no `items`
    rows = pd.DataFrame.from_records([{"user": "u3"}, {"items": [7, 9]}, {"user": "u12"}])
    answer = model_with_fake().predict(None, rows, params={"k": 2})
    assert answer == [
        {"user": "u3", "items": ["u3-0", "u3-1"], "scores": [1.0, 0.5]},
        {"user": None, "items": ["7+9"], "scores": [2.0]},
        {"user": "u12", "items": ["u12-0", "u12-1"], "scores": [1.0, 0.5]},
    ]
    assert len(model_with_fake().predict(None, [{"user": "u1"}])[0]["items"]) == DEFAULT_K == 10


def test_ids_come_back_in_the_datasets_type_in_every_batch_shape():
    model = model_with_fake(users=[196, 200, 999], items=[7, 9, 11])
    mixed = pd.DataFrame.from_records([{"user": 196}, {"items": [7, "9"]}, {"user": 200}])
    assert mixed["user"].dtype == float  # 196 arrives as 196.0
    answer = model.predict(None, mixed, params={"k": 1})
    assert [row["user"] for row in answer] == [196, None, 200]
    assert all(type(row["user"]) is int for row in (answer[0], answer[2]))
    assert answer[1]["items"] == ["7+9"]
    assert model.predict(None, pd.DataFrame.from_records([{"user": "196"}]), params={"k": 1})[0]["user"] == 196
    strings = model_with_fake(users=["10", "20", "30"], items=["a", "b"])
    assert strings.predict(None, pd.DataFrame.from_records([{"user": 10}]), params={"k": 1})[0]["user"] == "10"


@pytest.mark.parametrize(
    ("rows", "params", "message"),
    [
        ([{"user": 999999}], None, "user 999999: not in this run's data"),
        ([{"user": "999999"}], None, "user '999999': not in this run's data"),
        ([{"user": 999999}, {"items": [7]}], None, "user 999999: not in this run's data"),  # sent, not 999999.0
        ([{"user": 196.5}], None, "user 196.5: not in this run's data"),
        ([{"items": []}], None, "items: give at least one item id"),
        ([{"items": [7, 12345]}], None, "item 12345: not in this run's data"),
        ([{"items": 7}], None, "items: give a list of item ids, got 7"),
        ([{"user": 196}], {"k": 0}, "k: must be >= 1"),
        ([{"user": 196}], {"k": -3}, "k: must be >= 1"),
        ([{"user": 999}], None, "user 999: no training interactions; send their item ids as 'items' instead"),
        ([{"user": None, "items": None}], None, "each row needs a 'user' (a known user id) or 'items' (a new user's item ids)"),
        ([{"user": 196, "items": [7]}], None, "each row takes 'user' or 'items', not both"),
        ([], None, "dataframe_records: give at least one row"),
    ],
)
def test_a_bad_request_raises_a_400_with_a_one_line_message(rows, params, message):
    model = model_with_fake(users=[196, 200, 999], items=[7, 9, 11])
    with pytest.raises(BadRequest) as caught:
        model.predict(None, pd.DataFrame.from_records(rows) if rows else pd.DataFrame(), params=params)
    error = caught.value
    assert error.message == message and "\n" not in error.message
    assert error.get_http_status_code() == 400
    body = json.loads(error.serialize_as_json())
    assert body["error_code"] == "INVALID_PARAMETER_VALUE" and body["message"] == message and "stack_trace" not in body


def test_a_bad_request_keeps_its_message_when_the_server_prefixes_it():
    error = BadRequest("k: must be >= 1")
    error.message = "Failed to predict data '...'. \nError: " + error.message  # what the scoring server does
    assert error.message == "k: must be >= 1"


def test_load_context_loads_the_exported_recommender(monkeypatch):
    loaded = []
    monkeypatch.setattr(Recommender, "load", staticmethod(lambda path: loaded.append(path) or "recommender"))
    model = RecommenderModel()
    model.load_context(SimpleNamespace(artifacts={"recommender": "/runs/1/model/artifacts/recommender"}))
    assert model.recommender == "recommender" and loaded == ["/runs/1/model/artifacts/recommender"]
