"""The code that defines a recommendation run's MLflow model (models from code: MLflow runs this
file to build the model, so nothing is unpickled). See `itemrec.recsys.serving`."""

import mlflow
from itemrec.recsys.serving import RecommenderModel

mlflow.models.set_model(RecommenderModel())
