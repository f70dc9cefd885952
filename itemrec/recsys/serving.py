"""A trained recommender as an MLflow model, so that `mlflow models serve` answers over HTTP.

Every recommendation run logs one under the artifact path `model` (`log_recommender`): a pyfunc
model defined from code (`itemrec/recsys/serving_model.py`, no pickled Python object) whose artifact is
an exported `Recommender` (weights, config, training matrix, id maps). Serve it with

    mlflow models serve -m runs:/RUN_ID/model --env-manager local -p 5001

(in the environment itemrec is installed in, activated or with its `bin/` first on PATH: MLflow
starts the server as `uvicorn`, found by name on PATH), and ask it with a JSON body of rows, each
either a known user or a new user's items:

    {"dataframe_records": [{"user": 196}, {"items": [50, 172, 181]}], "params": {"k": 10}}

The answer (`predictions`) holds one object per request row: `user` (null for a new user), `items` (the top-k
item ids, in the dataset's own ids) and their `scores`, equal to what `itemrec recommend` prints.
Ids come back in the dataset's own type whatever the request's shape (`"196"` or `196.0` for an
integer id answers `196`). A bad request answers HTTP 400 and a one-line `message`, e.g.
`{"error_code": "INVALID_PARAMETER_VALUE", "message": "user 999999: not in this run's data"}`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import polars as pl
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from itemrec.experiment.errors import UserError
from itemrec.experiment.tracking import MODEL_ARTIFACT
from itemrec.recsys.recommend import Recommender

DEFAULT_K = 10


class BadRequest(MlflowException):
    """A request the model cannot answer: the scoring server answers HTTP 400 with `message` alone.

    The server prepends the whole input to the message of any `MlflowException` raised by
    `predict` (and attaches a stack trace to any other exception); this one keeps its first
    message, so the answer is `{"error_code": "INVALID_PARAMETER_VALUE", "message": ...}`.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, value: str) -> None:
        if not hasattr(self, "_message"):
            self._message = value


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _own_id(ids: pl.Series, value: Any) -> Any:
    """`value` as an id of the dataset's own type (`ids.dtype`); None when it cannot be one.

    A JSON number may arrive as a float (a column holding NaN for rows without it) or as a
    string; both become the integer id when the dataset's ids are integers.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if ids.dtype.is_integer():
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                return None
        return value if isinstance(value, int) else None
    if ids.dtype == pl.String:
        return value if isinstance(value, str) else str(value) if isinstance(value, int) else None
    cast = pl.Series([value]).cast(ids.dtype, strict=False)
    return None if cast.null_count() else cast.to_list()[0]


def _as_sent(value: Any) -> Any:
    """A request's id for a message: as the client sent it (196, not the 196.0 of a mixed batch)."""
    if isinstance(value, np.generic):
        value = value.item()
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _as_k(params: dict[str, Any] | None) -> int:
    k = (params or {}).get("k", DEFAULT_K)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise BadRequest(f"k: must be an integer, got {k!r}")
    if k < 1:
        raise BadRequest("k: must be >= 1")
    return int(k)


class RecommenderModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper of `Recommender`: rows of `user` or `items` in, top-k `items` and `scores` out.

    A bad request (an unknown id, an empty item list, `k` < 1, a row with neither or both keys)
    raises `BadRequest` before anything is computed: HTTP 400 with a one-line message.
    """

    def load_context(self, context) -> None:
        self.recommender = Recommender.load(context.artifacts["recommender"])

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        k = _as_k(params)
        rows = model_input.to_dict("records") if isinstance(model_input, pd.DataFrame) else list(model_input)
        if not rows:
            raise BadRequest("dataframe_records: give at least one row")
        requests = [self._request(row) for row in rows]
        out = []
        for user, items in requests:
            try:
                recs = self.recommender.for_user(user, k) if user is not None else self.recommender.for_new_user(items, k)
            except UserError as err:
                raise BadRequest(str(err)) from None
            out.append({"user": user, "items": [i for i, _ in recs], "scores": [s for _, s in recs]})
        return out

    def _request(self, row: dict[str, Any]) -> tuple[Any, list | None]:
        """`(user, None)` for a known user or `(None, items)` for a new one, ids in the dataset's type."""
        user, items = row.get("user"), row.get("items")
        has_items = items is not None and not _missing(items)
        if _missing(user) and not has_items:
            raise BadRequest("each row needs a 'user' (a known user id) or 'items' (a new user's item ids)")
        if not _missing(user) and has_items:
            raise BadRequest("each row takes 'user' or 'items', not both")
        if not _missing(user):
            return self._known_user(user), None
        if isinstance(items, (str, bytes)) or not hasattr(items, "__len__"):
            raise BadRequest(f"items: give a list of item ids, got {items!r}")
        if len(items) == 0:
            raise BadRequest("items: give at least one item id")
        own = []
        for item in items:
            value = _own_id(self.recommender.items.ids, item)
            if value is None or not self._knows(self.recommender.items, value):
                raise BadRequest(f"item {_as_sent(item)!r}: not in this run's data")
            own.append(value)
        return None, own

    def _known_user(self, user: Any) -> Any:
        value = _own_id(self.recommender.users.ids, user)
        if value is None or not self._knows(self.recommender.users, value):
            raise BadRequest(f"user {_as_sent(user)!r}: not in this run's data")
        index = int(self.recommender.users.to_index([value])[0])
        if self.recommender.seen[index].nnz == 0:
            raise BadRequest(f"user {value!r}: no training interactions; send their item ids as 'items' instead")
        return value

    @staticmethod
    def _knows(ids, value: Any) -> bool:
        try:
            ids.to_index([value])
        except UserError:
            return False
        return True


def pinned_requirements(version: Callable[[str], str] | None = None) -> list[str]:
    """This package, torch and mlflow at their installed versions, as pip requirements.

    MLflow counts as installed as `mlflow` or as `mlflow-skinny`; a distribution that is not
    installed (this package run from a source tree) is left out rather than guessed.
    """
    import importlib.metadata as md

    version = version or md.version
    out = []
    for names in (("itemrec",), ("torch",), ("mlflow", "mlflow-skinny")):
        for name in names:
            try:
                out.append(f"{name}=={version(name)}")
                break
            except md.PackageNotFoundError:
                continue
    return out


def log_recommender(recommender: Recommender, folder: Path) -> None:
    """Export `recommender` under `folder` and log it as the active run's MLflow model (`MODEL_ARTIFACT`).

    The requirements are given, not inferred (inference would load the model in a subprocess
    and resolve packages over the network): `pinned_requirements()`.
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec

    export = recommender.export(folder / "recommender")
    requirements = pinned_requirements()
    signature = ModelSignature(inputs=None, params=ParamSchema([ParamSpec("k", "long", DEFAULT_K)]))
    mlflow.pyfunc.log_model(
        name=MODEL_ARTIFACT,
        python_model=str(Path(__file__).with_name("serving_model.py")),
        artifacts={"recommender": str(export)},
        pip_requirements=requirements,
        signature=signature,
    )
