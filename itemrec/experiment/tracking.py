"""MLflow conventions shared by every front end (DESIGN.md §6).

One experiment per config name; params = the flattened config; metrics per epoch with `step`;
artifacts = resolved config, id maps, checkpoint, final metrics, plots. The default store is
`mlflow/` in the working directory (sqlite + artifacts folder); `MLFLOW_TRACKING_URI` or an
explicit URI (`--tracking-uri`) points at a server instead.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from itemrec.errors import UserError

DEFAULT_DIR = Path("mlflow")


def metric_key(name: str) -> str:
    """MLflow-safe metric name: `val/ndcg@20` -> `val/ndcg_at_20`."""
    return name.replace("@", "_at_")


def resolve_uri(uri: str | None = None) -> str:
    """Explicit URI, else `MLFLOW_TRACKING_URI`, else sqlite under `./mlflow/`."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    DEFAULT_DIR.mkdir(exist_ok=True)
    return f"sqlite:///{(DEFAULT_DIR / 'mlflow.db').resolve()}"


def _quiet() -> None:
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="mlflow")


def connect(uri: str | None = None):
    """Point MLflow at the store and return the `mlflow` module."""
    _quiet()
    import mlflow

    resolved = resolve_uri(uri)
    mlflow.set_tracking_uri(resolved)
    return mlflow


def experiment_id(name: str, uri: str | None = None) -> str:
    """Get or create the experiment `name`; local stores keep artifacts under `mlflow/artifacts`."""
    mlflow = connect(uri)
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    artifacts = None
    if mlflow.get_tracking_uri().startswith("sqlite:"):
        artifacts = (DEFAULT_DIR / "artifacts" / name).resolve().as_uri()
    return mlflow.create_experiment(name, artifact_location=artifacts)


@contextmanager
def run(
    experiment: str,
    *,
    uri: str | None = None,
    run_name: str | None = None,
    run_id: str | None = None,
    nested: bool = False,
    tags: dict[str, str] | None = None,
) -> Iterator[Any]:
    """Start (or resume, with `run_id`) an MLflow run; yields the active run."""
    mlflow = connect(uri)
    try:
        exp = experiment_id(experiment, uri)
        active = mlflow.start_run(
            run_id=run_id, experiment_id=None if run_id else exp, run_name=run_name, nested=nested, tags=tags
        )
    except Exception as err:  # an unreachable server or a broken store is the user's to fix
        raise UserError(f"MLflow store {mlflow.get_tracking_uri()}: {err}") from None
    with active:
        yield active


def log_params(params: dict[str, Any]) -> None:
    """Log flat params, values stringified and clipped to MLflow's limit."""
    import mlflow

    clean = {k: ("" if v is None else str(v))[:6000] for k, v in params.items()}
    mlflow.log_params(clean)


def log_metrics(metrics: dict[str, float], step: int | None = None, prefix: str = "") -> None:
    import mlflow

    mlflow.log_metrics({metric_key(prefix + k): float(v) for k, v in metrics.items()}, step=step)


def find_run(run_id: str, uri: str | None = None):
    """The MLflow run `run_id`, or a UserError naming it."""
    mlflow = connect(uri)
    try:
        return mlflow.get_run(run_id)
    except Exception:
        raise UserError(f"run {run_id!r}: not found in MLflow store {mlflow.get_tracking_uri()}") from None


def download_artifact(run_id: str, path: str, uri: str | None = None) -> Path:
    """Local path of one artifact of a run (downloaded if the store is remote)."""
    mlflow = connect(uri)
    find_run(run_id, uri)
    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path))
    except Exception:
        raise UserError(f"run {run_id}: has no artifact {path!r}") from None
