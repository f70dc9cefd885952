"""Recommendation losses on IR-Benchmark: Table 2 of the SL@K paper (Yang et al., KDD 2025), measured
over several seeds and set beside the published numbers.

Each cell (dataset, model, loss, seed) trains `configs/recsys/irb/<dataset>_<model>_<loss>.yaml`
(datasets health, electronic, gowalla; models mf, lightgcn; losses bpr, llpauc, sl, bsl, psl and
slk20, SL@20) with `seed` set to the cell's seed, through `itemrec.recsys.frontend.train`: the
benchmark's fixed split with 10 % of each user's training rows as validation, the published
hyper-parameters, 200 epochs, validation NDCG@20 every 5 epochs, the best validation epoch tested.
Runs log to MLflow (experiment `study_losses_<dataset>`) with tags naming the study, dataset, model,
loss and seed. A cell whose run FINISHED there with its test metrics is done and not run again, so a
rerun continues where the study stopped; a run that did not finish (its process killed, or
failed) is continued from its last checkpoint, the same run, and one process at a time trains a
cell, so two studies run side by side skip each other's cells (`benchmarks.study.run_jobs`); a
finished run whose logged training keys (model, loss, sampling, train) differ from its cell's
config now does not count: a config changed since is trained again.

The report, the RESULTS.md section "Recommendation losses on IR-Benchmark (SL@K paper, Table 2)":
per dataset and model one row per loss with the published test Recall@20 / NDCG@20 (from
`benchmarks/reference_results.yaml`), the measured mean ± 95 % t-interval over the seeds run (n
shown), the relative difference to the published value, the best epoch of each seed and the
training seconds per epoch; cells not run are listed as not run. The chart
`benchmarks/study_losses.png` sets measured NDCG@20 (mean, 95 % CI whiskers) beside the published one.
Finished runs are kept in `benchmarks/records/losses.jsonl` and written back into an empty store before
anything runs (`benchmarks.records`). Offline datasets: `ITEMREC_MIRROR=/path/to/ir-benchmark`.

    python -m benchmarks.study_losses [--datasets health electronic gowalla] [--models mf lightgcn]
        [--losses bpr sl bsl psl llpauc slk20] [--seeds 0 1 2] [--dry-run]
    python -m benchmarks.study_losses --report-only      # the tables + chart from what is in MLflow
    python -m benchmarks.study_losses --rows pairs --datasets health   # the same cells on pair batches

The softmax-family and LLPAUC configs train on batches of 64 users (a row: the user's training
positives and 1,000 uniform negatives shared by them; the loss weighs every (user, positive) pair
alike, as the benchmark does). `--rows pairs` trains the same cells on the benchmark's own batches,
1,024 (user, positive) pairs each with its own 1,000 negatives, as separate runs (tag
`study.rows=pairs`); the report sets the two side by side where both ran.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import itemrec.frontends  # noqa: F401  (registers the front ends that configs are validated by)
from benchmarks import records
from benchmarks.harness import ROOT, command, parser, publish, shown, writes
from benchmarks.study import (
    TAG,
    Job,
    finished_runs,
    history,
    outdated,
    run_study,
    seconds_to_best,
    train_timed,
)
from benchmarks.study_losses_report import (
    DATASETS,
    LOSSES,
    MODELS,
    PNG,
    SEEDS,
    Result,
    chart,
    published,
    report,
)

CONFIGS = ROOT / "configs" / "recsys" / "irb"
STUDY = "losses"
SECTION = "study-losses"
SELECT = "val/ndcg_at_20"
DONE = "test/ndcg_at_20"

# --------------------------------------------------------------------------- the grid


ROWS = TAG + "rows"
"""The tag of a cell trained on the benchmark's own batches (`--rows pairs`); absent: the configs'."""
PAIR_BATCHES = ["sampling.unit=interaction", "train.batch_size=1024"]
"""The benchmark's batches: 1,024 (user, positive) pairs, each with its own negatives. The configs'
softmax-family and LLPAUC cells train on batches of 64 users instead, a row's negatives shared by
its positives and the pairs weighted alike (BPR's configs already use these pair batches)."""


def experiment(dataset: str) -> str:
    return f"study_losses_{dataset}"


def config_path(dataset: str, model: str, loss: str) -> Path:
    return CONFIGS / f"{dataset}_{model}_{loss}.yaml"


def jobs(datasets: Sequence[str], models: Sequence[str], losses: Sequence[str], seeds: Sequence[int],
         rows: str = "users") -> list[Job]:
    """The study's runs in the order they run, seed-major: every cell of a seed before the next
    seed, so a complete table of one seed comes first. `rows="pairs"`: the same cells (BPR's
    aside, which trains on pairs anyway) on the benchmark's batches of pairs (`PAIR_BATCHES`)."""
    extra = {ROWS: "pairs"} if rows == "pairs" else {}
    return [
        Job(experiment(d), {TAG + "name": STUDY, TAG + "dataset": d, TAG + "model": m, TAG + "loss": loss,
                            TAG + "seed": str(s), **extra})
        for s in seeds for d in datasets for m in models for loss in losses if not (extra and loss == "bpr")
    ]


def rows_of(job: Job) -> str:
    """`"pairs"` for a cell on the benchmark's batches of pairs, else `"users"` (the configs')."""
    return "pairs" if job.tags.get(ROWS) == "pairs" else "users"


def unpack(job: Job) -> tuple[str, str, str, int]:
    """`(dataset, model, loss, seed)` of a job."""
    t = {k.removeprefix(TAG): v for k, v in job.tags.items()}
    return t["dataset"], t["model"], t["loss"], int(t["seed"])


def cell_config(job: Job, run_dir: str):
    """The validated config of one run: its cell's config file with the run's seed, the study's
    experiment name and the checkpoint folder `run_dir` (and `PAIR_BATCHES` for a pairs cell)."""
    from itemrec.experiment.config import load_config

    dataset, model, loss, seed = unpack(job)
    batches = PAIR_BATCHES if rows_of(job) == "pairs" else []
    return load_config(config_path(dataset, model, loss),
                       [f"seed={seed}", f"name={job.experiment}", f"train.run_dir={run_dir}", *batches])


def execute(job: Job, tracking_uri: str, run_dir: str, quiet: bool, train: Callable | None = None) -> str:
    """Train one cell (`train`: `itemrec.recsys.frontend.train` unless given) and log its wall time."""
    if train is None:
        from itemrec.recsys.frontend import train
    return train_timed(train, cell_config(job, run_dir), job, tracking_uri, quiet)


PAIRED = ("sl", "slk20", "best_ranking")
"""The LightGCN cells whose per-user test NDCG@20 the records keep, for `benchmarks.study_ranking`'s
paired tests (`best_ranking`: `<dataset>_lightgcn_best_ranking.yaml`, run by that script)."""


def restore_records(args) -> Path:
    """Write the records the store lacks into it (see `benchmarks.records`); the records folder."""
    folder = records.folder_for(args.results)
    records.restore(STUDY, args.tracking_uri, DONE, folder=folder)
    return folder


def save_records(tracking_uri: str, folder: Path) -> None:
    records.save(STUDY, [experiment(d) for d in DATASETS], tracking_uri, DONE, per_user=("ndcg@20",), folder=folder,
                 where=lambda t: t.get(TAG + "model") == "lightgcn" and t.get(TAG + "loss") in PAIRED)


# --------------------------------------------------------------------------- runs that still count

def current(done: dict, run_dir: str) -> dict:
    """`done` without the runs whose cell's config changed what is trained since they ran (their
    cells run again); runs of a cell without a config (a loss dropped from the grid) are kept."""
    out = {}
    for key, run in done.items():
        tags = dict(key)
        job = Job(experiment(tags.get(TAG + "dataset", "")), tags)
        try:
            dataset, model, loss, _ = unpack(job)
        except (KeyError, ValueError):
            out[key] = run
            continue
        if not config_path(dataset, model, loss).is_file() or not outdated(run, cell_config(job, run_dir)):
            out[key] = run
    return out


# --------------------------------------------------------------------------- re-evaluation

EVAL_PARAM = "eval.exclude_val_at_test"
EVAL_TAG = "reevaluated." + EVAL_PARAM
"""A re-evaluated run's value (MLflow parameters cannot change, so a tag overrides the parameter)."""


def stale(run, job_config) -> bool:
    """Whether a finished run's test metrics were computed with another test exclusion than its
    cell's config asks for now (runs before the key existed logged no such parameter: True)."""
    logged = run.get(f"tags.{EVAL_TAG}")
    if not isinstance(logged, str):
        logged = run.get(f"params.{EVAL_PARAM}")
    return not isinstance(logged, str) or logged != str(job_config.eval.exclude_val_at_test)


def reevaluate(run_id: str, tracking_uri: str, exclude_val: bool) -> dict[str, float]:
    """Test a finished run again from its best checkpoint, with `eval.exclude_val_at_test =
    exclude_val`, and log the new test metrics and per-user table over the old ones (training
    is untouched: the ranking of the same model changes, not the model)."""
    import tempfile
    from pathlib import Path

    import mlflow
    from itemrec.experiment import tracking
    from itemrec.experiment.checkpoint import resolve_checkpoint
    from itemrec.recsys.evaluate import cosine_scores, evaluate
    from itemrec.recsys.pipeline import restore

    checkpoint, _ = resolve_checkpoint(run_id, tracking_uri)
    config, data, model = restore(checkpoint, run_id)
    result = evaluate(model, data, "test", "transductive", config.eval.ks, cosine_scores(config, model),
                      config.eval.batch_users, exclude_val=exclude_val)
    tracking.connect(tracking_uri)
    with mlflow.start_run(run_id=run_id), tempfile.TemporaryDirectory() as folder:
        tracking.log_metrics(result.metrics, prefix="test/")
        per_user = Path(folder) / "per_user_test_transductive.parquet"
        result.per_user.write_parquet(per_user)
        tracking.log_artifact(per_user, "per_user")
        mlflow.set_tag(EVAL_TAG, str(exclude_val))
    return result.metrics


def refresh_stale(done: dict, grid: list[Job], run_dir: str, tracking_uri: str) -> int:
    """Re-evaluate every finished run of `grid` whose test exclusion is not its config's; the count."""
    count = 0
    for job in grid:
        run = done.get(job.key)
        if run is None:
            continue
        config = cell_config(job, run_dir)
        if stale(run, config):
            metrics = reevaluate(run["run_id"], tracking_uri, config.eval.exclude_val_at_test)
            print(f"re-evaluated {job.describe()}: test ndcg@20 {metrics['ndcg@20']:.4f} "
                  f"({EVAL_PARAM}={config.eval.exclude_val_at_test})")
            count += 1
    return count


# --------------------------------------------------------------------------- results


def collect(done: dict, tracking_uri: str, rows: str = "users") -> dict[tuple[str, str, str, int], Result]:
    """`{(dataset, model, loss, seed): Result}` of the study's finished runs on `rows` batches."""
    out = {}
    for key, run in done.items():
        t = {k.removeprefix(TAG): v for k, v in key}
        if t.get("name") != STUDY or t.get("loss") not in LOSSES or t.get("model") not in MODELS:
            continue
        if t.get("rows", "users") != rows:
            continue
        best, _, _ = seconds_to_best(run["run_id"], SELECT, tracking_uri)
        epochs = history(run["run_id"], "epoch_seconds", tracking_uri)
        out[(t["dataset"], t["model"], t["loss"], int(t["seed"]))] = Result(
            float(run.get("metrics.test/recall_at_20", math.nan)), float(run[f"metrics.{DONE}"]), best,
            sum(epochs.values()) / len(epochs) if epochs else math.nan,
        )
    return out


# --------------------------------------------------------------------------- the command


def arguments() -> argparse.ArgumentParser:
    out = parser(__doc__, seeds=list(SEEDS), study=True, tracking_uri=f"sqlite:///{ROOT / 'mlflow' / 'study.db'}",
                 run_dir=str(ROOT / "runs"))
    out.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    out.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    out.add_argument("--losses", nargs="+", default=["bpr", "sl", "bsl", "psl", "llpauc", "slk20"], choices=list(LOSSES))
    out.add_argument("--rows", choices=["users", "pairs"], default="users",
                     help="train the cells on the configs' batches of users (default) or on the benchmark's "
                          "batches of (user, positive) pairs, kept apart and compared in the report")
    return out


def main(argv: list[str] | None = None, train: Callable | None = None) -> int:
    """The study; `train` replaces `itemrec.recsys.frontend.train` (tests)."""
    args = arguments().parse_args(argv)
    grid = jobs(args.datasets, args.models, args.losses, args.seeds, args.rows)
    folder = restore_records(args)

    def finished() -> dict:
        return current(finished_runs([experiment(d) for d in DATASETS], STUDY, args.tracking_uri, DONE), args.run_dir)

    def run(job: Job) -> None:
        execute(job, args.tracking_uri, args.run_dir, args.quiet, train)
        save_records(args.tracking_uri, folder)

    done = run_study(grid, args, finished, run, lambda job: cell_config(job, args.run_dir))
    if done is None:
        return 0
    if refresh_stale(done, grid, args.run_dir, args.tracking_uri):
        done = finished()
    save_records(args.tracking_uri, folder)
    results, pairs = collect(done, args.tracking_uri), collect(done, args.tracking_uri, "pairs")
    references = published()
    drawn = writes(args) and chart(results, references, PNG)
    publish(SECTION, report(results, references, command("study_losses"), sorted(set(SEEDS) | set(args.seeds)),
                            shown(PNG) if drawn else None, pairs), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
