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
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from itemrec.experiment.tracking import MODEL_ARTIFACT
from itemrec.recsys.recommend import Recommender

DEFAULT_K = 10


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class RecommenderModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper of `Recommender`: rows of `user` or `items` in, top-k `items` and `scores` out."""

    def load_context(self, context) -> None:
        self.recommender = Recommender.load(context.artifacts["recommender"])

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        k = int((params or {}).get("k", DEFAULT_K))
        rows = model_input.to_dict("records") if isinstance(model_input, pd.DataFrame) else list(model_input)
        out = []
        for row in rows:
            user, items = row.get("user"), row.get("items")
            if not _missing(user):
                recs = self.recommender.for_user(user, k)
                user_id = user
            elif items is not None and not _missing(items):
                recs = self.recommender.for_new_user(list(items), k)
                user_id = None
            else:
                raise ValueError("each row needs a 'user' (a known user id) or 'items' (a new user's item ids)")
            out.append({"user": user_id, "items": [i for i, _ in recs], "scores": [s for _, s in recs]})
        return out


def log_recommender(recommender: Recommender, folder: Path) -> None:
    """Export `recommender` under `folder` and log it as the active run's MLflow model (`MODEL_ARTIFACT`).

    The requirements are given, not inferred (inference would load the model in a subprocess
    and resolve packages over the network): this package, torch and mlflow at their versions.
    """
    import importlib.metadata as md

    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec

    export = recommender.export(folder / "recommender")
    requirements = [f"{name}=={md.version(name)}" for name in ("itemrec", "torch", "mlflow")]
    signature = ModelSignature(inputs=None, params=ParamSchema([ParamSpec("k", "long", DEFAULT_K)]))
    mlflow.pyfunc.log_model(
        name=MODEL_ARTIFACT,
        python_model=str(Path(__file__).with_name("serving_model.py")),
        artifacts={"recommender": str(export)},
        pip_requirements=requirements,
        signature=signature,
    )
