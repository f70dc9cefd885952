"""New, empty MLflow sqlite stores for tests, without paying for MLflow's table creation each time.

MLflow creates a sqlite store's tables by running its schema migrations, about 2 CPU seconds per
new store (more in a fresh process). `mlflow_store(path)` lets MLflow do that once per test process,
in a template store, and copies that file to `path`: a real store, empty, at MLflow's current
schema, as MLflow itself would have left it.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

_template: Path | None = None


def _made_by_mlflow() -> Path:
    global _template
    if _template is None:
        from mlflow.tracking import MlflowClient

        folder = Path(tempfile.mkdtemp(prefix="itemrec-mlflow-template-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        store = folder / "mlflow.db"
        MlflowClient(f"sqlite:///{store}").search_experiments()  # creates the tables
        _template = store
    return _template


def mlflow_store(path: Path) -> str:
    """The tracking URI of an MLflow sqlite store at `path`, created empty unless it exists."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_made_by_mlflow(), path)
    return f"sqlite:///{path}"
