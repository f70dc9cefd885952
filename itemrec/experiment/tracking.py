"""MLflow conventions shared by every front end (DESIGN.md §6).

One experiment per config name; params = the flattened config; metrics per epoch with `step`;
the training data as the run's dataset input (`log_dataset`); artifacts = resolved config, id
maps, checkpoint, final metrics, plots. The default store is `mlflow/` in the working directory
(sqlite + artifacts folder); `MLFLOW_TRACKING_URI` or an explicit URI (`--tracking-uri`) points
at a server instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: no lock; open a new store from one process first
    fcntl = None

from itemrec.experiment.errors import UserError

DEFAULT_DIR = Path("mlflow")

EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
"""The experiment tag that makes the MLflow 3 UI open an experiment in its model-training view
(runs, metrics, models) rather than its GenAI view (traces)."""

MODEL_ARTIFACT = "model"
"""Where every recommendation run logs its MLflow model (`itemrec.recsys.serving`): `runs:/RUN_ID/model`."""

NOTE = "mlflow.note.content"
"""The run tag the MLflow UI shows (and edits) as the run's description."""


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
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bar per downloaded file


def connect(uri: str | None = None):
    """Point MLflow at the store and return the `mlflow` module."""
    _quiet()
    import mlflow

    resolved = resolve_uri(uri)
    _create_sqlite_store(resolved)
    mlflow.set_tracking_uri(resolved)
    return mlflow


_CREATED: set[str] = set()


def _create_sqlite_store(uri: str) -> None:
    """Open a SQLite store once per process, holding a lock file beside it (`<db>.lock`): processes
    that open a new store at the same moment (two studies, tuning workers) would each create its
    tables, and all but one would fail."""
    if not uri.startswith("sqlite:///") or uri in _CREATED:
        return
    from mlflow.tracking import MlflowClient

    path = Path(uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f"{path.name}.lock", "a") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        MlflowClient(uri).search_experiments(max_results=1)  # creates or migrates the tables
    _CREATED.add(uri)


def experiment_id(name: str, uri: str | None = None) -> str:
    """Get or create the experiment `name`; local stores keep artifacts under `mlflow/artifacts`."""
    mlflow = connect(uri)
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        if EXPERIMENT_KIND[0] not in found.tags:
            mlflow.MlflowClient().set_experiment_tag(found.experiment_id, *EXPERIMENT_KIND)
        return found.experiment_id
    artifacts = None
    if mlflow.get_tracking_uri().startswith("sqlite:"):
        artifacts = (DEFAULT_DIR / "artifacts" / name).resolve().as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=artifacts, tags=dict([EXPERIMENT_KIND]))
    except mlflow.exceptions.MlflowException:
        # another process (a second tuning worker, a torchrun rank) created it since we looked
        found = mlflow.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def run_name(config_name: str, model: str, loss: str, seed: int) -> str:
    """`ml1m_lightgcn_roadmap lightgcn+roadmap s0 11-24 14:05 3f2a`: what the run is, when it
    started, and 4 random hex digits (drawn outside the seeded RNGs) so no two runs share a name."""
    stamp = time.strftime("%m-%d %H:%M")
    return f"{config_name} {model}+{loss} s{seed} {stamp} {uuid.uuid4().hex[:4]}"


def describe(title: str, sections: dict[str, Any]) -> str:
    """A Markdown description of a run (`NOTE`): a title line, then one bullet per config section."""
    lines = [f"**{title}**", ""]
    for key, value in sections.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items() if v is not None)
        lines.append(f"- **{key}**: {value}")
    return "\n".join(lines)


@contextmanager
def run(
    experiment: str,
    *,
    uri: str | None = None,
    run_name: str | None = None,
    run_id: str | None = None,
    nested: bool = False,
    tags: dict[str, str] | None = None,
    description: str | None = None,
) -> Iterator[Any]:
    """Start (or resume, with `run_id`) an MLflow run; yields the active run.

    `description` becomes the run's description in the MLflow UI (the `NOTE` tag).
    """
    mlflow = connect(uri)
    if description is not None:
        tags = {**(tags or {}), NOTE: description}
    try:
        # A run reopened by id names its own experiment, whatever experiment is active in this process.
        exp = mlflow.get_run(run_id).info.experiment_id if run_id else experiment_id(experiment, uri)
        if run_id:
            mlflow.set_experiment(experiment_id=exp)
        active = mlflow.start_run(run_id=run_id, experiment_id=exp, run_name=run_name, nested=nested, tags=tags)
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


def log_text(text: str, name: str) -> None:
    """Log `text` as the artifact file `name` of the active run."""
    import mlflow

    mlflow.log_text(text, name)


def log_artifact(path: str | Path, folder: str | None = None) -> None:
    """Log the local file `path` into the active run's artifacts (under `folder` if given)."""
    import mlflow

    mlflow.log_artifact(str(path), artifact_path=folder)


@dataclass(frozen=True)
class DatasetInfo:
    """The data a run trains on, as MLflow's dataset tracking records it (`log_dataset`).

    - `name`: what the data is, e.g. `ml-100k`, `irb/amazon2014-health`, `fashion_mnist`.
    - `source`: where it was read from: a URL (`http(s)://...`) or a local path.
    - `digest`: a short hash of the data as split for training (`digest_arrays`); two runs on the
      same data share one dataset in the experiment, and a different split gets another one.
    - `profile`: sizes and settings (users, items, interactions per split; classes and images per
      split), shown as the dataset's profile.
    """

    name: str
    source: str
    digest: str
    profile: dict[str, Any] = field(default_factory=dict)


def digest_arrays(*arrays: Any) -> str:
    """10 hex digits of the sha256 of the arrays' dtypes, shapes and contents, in order."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:10]


def dataset_source(source: str):
    """MLflow's `DatasetSource` for a URL (`HTTPDatasetSource`) or a local path (the `local`
    source, with the path's absolute `file://` URI)."""
    from mlflow.data.dataset_source_registry import get_dataset_source_from_json
    from mlflow.data.http_dataset_source import HTTPDatasetSource

    if re.match(r"https?://", source):
        return HTTPDatasetSource(url=source)
    uri = Path(source).expanduser().resolve().as_uri()
    return get_dataset_source_from_json(json.dumps({"uri": uri}), source_type="local")


DATASET_TRIES = 3
"""Attempts at logging a run's dataset (`log_dataset`) before its error is raised."""
LOST_RACE = re.compile(r"unique|duplicate key|integrity", re.IGNORECASE)
"""What the store says when another run inserted the same dataset first (sqlite: `UNIQUE
constraint failed`; PostgreSQL: `duplicate key value violates unique constraint`)."""


def log_dataset(dataset: DatasetInfo, context: str = "training") -> None:
    """Log `dataset` as an input of the active run (`mlflow.log_input`), tagged with `context`.

    The MLflow UI lists it in the runs table's Datasets column and on the run's page, where a
    click shows its source, digest and profile. Logging it again is a no-op (same name and digest).
    Runs that log one dataset at the same moment all succeed: a try that loses the store's race
    for the dataset's row is made again (`DATASET_TRIES`).
    """
    from mlflow.data.meta_dataset import MetaDataset

    import mlflow

    profile = dict(dataset.profile)

    class ProfiledDataset(MetaDataset):
        """MLflow's metadata-only dataset (no data logged), with a profile."""

        @property
        def profile(self) -> dict[str, Any]:
            return profile

        def to_dict(self) -> dict[str, str]:
            return {**super().to_dict(), "profile": json.dumps(profile)}

    logged = ProfiledDataset(dataset_source(dataset.source), name=dataset.name, digest=dataset.digest)
    for attempt in range(DATASET_TRIES):
        try:
            mlflow.log_input(logged, context=context)
            return
        except mlflow.exceptions.MlflowException as error:
            # MLflow looks the dataset up, then inserts it: a run in another process (a tuning
            # worker started at the same moment) inserted it in between, and this insert broke
            # the experiment's unique key. That row exists now, so the next try links to it.
            # Any other error is raised at once.
            if attempt == DATASET_TRIES - 1 or not LOST_RACE.search(str(error)):
                raise


def find_run(run_id: str, uri: str | None = None):
    """The MLflow run `run_id`, or a UserError naming it."""
    mlflow = connect(uri)
    try:
        return mlflow.get_run(run_id)
    except Exception:
        raise UserError(f"run {run_id!r}: not found in MLflow store {mlflow.get_tracking_uri()}") from None


def download_artifact(run_id: str, path: str, uri: str | None = None) -> Path:
    """Local path of one artifact (file or folder) of a run.

    A finished run's artifacts never change, so they are kept in a cache per run id
    (`$ITEMREC_DATA/runs/<run id>/`, see `itemrec.experiment.paths.cache_root`) and fetched once.
    """
    import shutil
    import tempfile

    from itemrec.experiment.paths import cache_root

    cached = cache_root() / "runs" / run_id / path
    if cached.exists():
        return cached  # without importing MLflow
    mlflow = connect(uri)
    run = find_run(run_id, uri)
    try:
        with tempfile.TemporaryDirectory(dir=_mkdir(cache_root() / "runs")) as tmp:
            local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=tmp))
            if run.info.status != "FINISHED":  # may still change: no cache
                keep = Path(tempfile.mkdtemp(prefix=f"{run_id}-"))
                return Path(shutil.move(str(local), keep / local.name))
            cached.parent.mkdir(parents=True, exist_ok=True)
            if not cached.exists():
                os.replace(local, cached)
            return cached
    except UserError:
        raise
    except Exception:
        raise UserError(f"run {run_id}: has no artifact {path!r}") from None


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
