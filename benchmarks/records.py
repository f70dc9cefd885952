"""A study's finished runs, kept in the repository so that its report outlives the MLflow store.

A study's MLflow store (`mlflow/study.db`) is local and git-ignored: a fresh clone has none, and a
report rendered from an empty store would drop every row measured elsewhere. So each study saves
its FINISHED runs to `benchmarks/records/<study>.jsonl` (one JSON object per run, sorted by its
tags, so a diff shows the runs added or changed): the run's experiment, name, times, tags,
parameters, final metrics, the per-epoch history of the metrics its report reads (`HISTORY`),
and, for a study that asks, each user's test metrics at the cutoffs it names (a Parquet file
beside it, `benchmarks/records/<study>/<tags>.parquet`).

`restore` writes the records missing from a store back into it as FINISHED runs, with the same
tags, parameters, metrics, histories and per-user artifact, so a study resumes on a fresh machine
where it stopped on another (a restored cell is done and never trained again), its report
counts every run, and `itemrec compare` pairs restored runs with new ones. A restored run is
tagged `itemrec.restored_from` with the records file. `save` merges: a run of the store replaces
the record with the same tags, and a record the store lacks is kept.

`merge` (also `python -m benchmarks.records merge SOURCE`) brings records saved on another
machine into this folder, e.g. those of `benchmarks.side_by_side` on a GPU machine.

Model checkpoints are not records; a restored run cannot be re-evaluated or resumed, only
reported and compared.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from benchmarks import harness
from benchmarks.harness import ROOT
from benchmarks.study import TAG, finished_runs

FOLDER = ROOT / "benchmarks" / "records"
HISTORY = ("val/ndcg_at_20", "val/ndcg_at_10", "epoch_seconds", "eval_seconds")
"""The metrics whose per-epoch history a record keeps (the reports read the best validation
epoch and the seconds per epoch from them); the others keep their final value."""
PER_USER = "per_user/per_user_test_transductive.parquet"
RESTORED = "itemrec.restored_from"


def folder_for(results: Path) -> Path:
    """Where a study keeps its records: `records/` beside the results file its report goes to."""
    return Path(results).parent / "records"


def path_of(study: str, folder: Path = FOLDER) -> Path:
    return folder / f"{study}.jsonl"


def _key(experiment: str, tags: dict[str, str]) -> tuple:
    return (experiment, tuple(sorted((k, v) for k, v in tags.items() if k.startswith(TAG))))


def _slug(tags: dict[str, str]) -> str:
    parts = [f"{k.removeprefix(TAG)}-{v}" for k, v in sorted(tags.items()) if k.startswith(TAG) and k != TAG + "name"]
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", "_".join(parts)) or "run"


def load(path: Path) -> list[dict]:
    """The records of one file (none if it does not exist)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _record(client, run, experiment: str, history: Sequence[str]) -> dict:
    """One finished run (a row of `mlflow.search_runs`) as a record."""
    def columns(prefix: str) -> dict:
        out = {}
        for column in run.index:
            if column.startswith(prefix):
                value = run[column]
                if isinstance(value, str) or (isinstance(value, float) and not math.isnan(value)):
                    out[column.removeprefix(prefix)] = value
        return out

    tags = {k: v for k, v in columns("tags.").items() if not k.startswith("mlflow.") and k != RESTORED}
    metrics = {k: float(v) for k, v in columns("metrics.").items()}
    curves = {}
    for key in history:
        if key in metrics:
            points = sorted((m.step, m.value) for m in client.get_metric_history(run["run_id"], key))
            curves[key] = [[int(s), float(v)] for s, v in points]
    return {
        "experiment": experiment, "run_name": run.get("tags.mlflow.runName") or "",
        "start_time": int(run["start_time"].timestamp() * 1000), "end_time": int(run["end_time"].timestamp() * 1000),
        "tags": tags, "params": columns("params."), "metrics": metrics, "history": curves,
    }


def save(study: str, experiments: Iterable[str], tracking_uri: str, done_metric: str, *,
         per_user: Sequence[str] = (), where: Callable[[dict[str, str]], bool] | None = None,
         folder: Path = FOLDER) -> Path:
    """Merge the store's FINISHED runs of `study` into its records file and return its path.
    `per_user`: the per-user test metrics (e.g. `["ndcg@20", "recall@20"]`) kept beside it, for
    every run or, with `where`, for the runs whose tags it accepts."""
    from mlflow.tracking import MlflowClient

    from itemrec.experiment import tracking

    path = path_of(study, folder)
    records = {_key(r["experiment"], r["tags"]): r for r in load(path)}
    experiments = list(dict.fromkeys(experiments))
    client = MlflowClient(tracking.connect(tracking_uri).get_tracking_uri())
    runs = finished_runs(experiments, study, tracking_uri, done_metric)
    if runs:
        mlflow = tracking.connect(tracking_uri)
        names = {mlflow.get_experiment_by_name(e).experiment_id: e
                 for e in experiments if mlflow.get_experiment_by_name(e) is not None}
    for run in runs.values():
        record = _record(client, run, names[run["experiment_id"]], HISTORY)
        key = _key(record["experiment"], record["tags"])
        if per_user and (where is None or where(record["tags"])):
            kept = records.get(key, {})
            same_run = (kept.get("start_time"), kept.get("end_time")) == (record["start_time"], record["end_time"])
            if same_run and kept.get("per_user") and (path.parent / kept["per_user"]).is_file():
                record["per_user"] = kept["per_user"]  # written by an earlier save: not fetched again
            else:
                record["per_user"] = _save_per_user(run["run_id"], record, per_user, path, tracking_uri)
        records[key] = record
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(records[k], sort_keys=True) for k in sorted(records)]
    write_atomically(path, "".join(line + "\n" for line in lines))
    return path


def merge(source: Path, folder: Path = FOLDER) -> dict[str, int]:
    """Merge the records files of folder `source` (records saved on another machine, e.g. by
    `benchmarks.side_by_side`) into `folder`, their per-user tables copied beside them: a source
    record replaces the one with the same experiment and tags, the others are kept. Per study,
    the number of records added or changed."""
    counts = {}
    for path in sorted(Path(source).glob("*.jsonl")):
        target = folder / path.name
        kept = {_key(r["experiment"], r["tags"]): r for r in load(target)}
        changed = 0
        for record in load(path):
            if record.get("per_user"):
                copy = folder / record["per_user"]
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path.parent / record["per_user"], copy)
            key = _key(record["experiment"], record["tags"])
            changed += kept.get(key) != record
            kept[key] = record
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(target, "".join(json.dumps(kept[k], sort_keys=True) + "\n" for k in sorted(kept)))
        counts[path.stem] = changed
    return counts


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename, so that another study
    process reading the file (two studies share `losses.jsonl`) never sees half of it."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text)
    os.replace(partial, path)


def _save_per_user(run_id: str, record: dict, metrics: Sequence[str], path: Path, tracking_uri: str) -> str | None:
    import polars as pl

    from itemrec.experiment import tracking
    from itemrec.experiment.errors import UserError

    target = path.with_suffix("") / f"{_slug(record['tags'])}.parquet"
    try:
        frame = pl.read_parquet(tracking.download_artifact(run_id, PER_USER, tracking_uri))
    except UserError:
        return str(target.relative_to(path.parent)) if target.is_file() else None
    target.parent.mkdir(parents=True, exist_ok=True)
    keep = ["user", *[m for m in metrics if m in frame.columns]]
    frame.select(keep).with_columns(pl.col(keep[1:]).cast(pl.Float32)).write_parquet(target, compression="zstd")
    return str(target.relative_to(path.parent))


def restore(study: str, tracking_uri: str, done_metric: str, *, folder: Path = FOLDER, say=print) -> int:
    """Write the records of `study` that the store lacks (no FINISHED run with the same tags)
    into it as FINISHED runs, say how many (when any); the number written."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from itemrec.experiment import tracking

    path = path_of(study, folder)
    records = load(path)
    if not records:
        return 0
    experiments = list(dict.fromkeys(r["experiment"] for r in records))
    present = {(e, key) for e in experiments for key in finished_runs([e], study, tracking_uri, done_metric)}
    client = MlflowClient(tracking.connect(tracking_uri).get_tracking_uri())
    written = 0
    for record in records:
        if _key(record["experiment"], record["tags"]) in present:
            continue
        experiment = tracking.experiment_id(record["experiment"], tracking_uri)
        tags = {**record["tags"], RESTORED: str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)}
        run = client.create_run(experiment, start_time=record["start_time"], tags=tags, run_name=record["run_name"] or None)
        run_id = run.info.run_id
        stamp = record["end_time"]
        metrics = [Metric(k, v, stamp, 0) for k, v in record["metrics"].items() if k not in record["history"]]
        metrics += [Metric(k, v, stamp, s) for k, points in record["history"].items() for s, v in points]
        params = [Param(k, v) for k, v in record["params"].items()]
        for i in range(0, max(len(metrics), len(params)), 100):
            client.log_batch(run_id, metrics=metrics[i:i + 100], params=params[i:i + 100], tags=[])
        if record.get("per_user"):
            _restore_per_user(client, run_id, path.parent / record["per_user"])
        client.set_terminated(run_id, "FINISHED", end_time=record["end_time"])
        written += 1
    if written:
        say(f"{written} finished runs restored from {path}")
    return written


def _restore_per_user(client, run_id: str, source: Path) -> None:
    import tempfile

    folder, name = PER_USER.rsplit("/", 1)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / name
        shutil.copyfile(source, copy)
        client.log_artifact(run_id, str(copy), artifact_path=folder)


def main(argv: list[str] | None = None) -> int:
    parser = harness.parser(__doc__, results=False)
    parser.add_argument("command", choices=["merge"], help="merge the *.jsonl records (and per-user tables) of SOURCE into --into")
    parser.add_argument("source", type=Path)
    parser.add_argument("--into", type=Path, default=FOLDER, help="the records folder (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.source.is_dir() or not any(args.source.glob("*.jsonl")):
        raise SystemExit(f"records: no *.jsonl records in {args.source}")
    for study, count in merge(args.source, args.into).items():
        print(f"{study}: {count} records added or changed in {args.into / (study + '.jsonl')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
