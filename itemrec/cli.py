"""The `itemrec` command line. Sub-command groups live next to the code they drive.

Each command imports what it needs (torch, MLflow, polars, ...) when it runs, so that `--help`,
`version` and mistakes in the arguments answer at once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from itemrec.experiment.errors import UserError
from itemrec.help_text import epilog
from itemrec.recsys.data.cli import data_app

app = typer.Typer(
    name="itemrec",
    help="Ranking losses for recommendation and image retrieval: train, evaluate, tune, compare.",
    epilog=epilog("itemrec train configs/recsys/ml100k_lightgcn_log_dcg.yaml"),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_app, name="data", epilog=epilog("itemrec data info ml-100k", "docs/guides/quickstart-recommendation.md"))


@app.callback()
def _root() -> None:
    """Ranking losses for recommendation and image retrieval: train, evaluate, tune, compare."""


def _large_tensors_ahead() -> None:
    """For the commands that build large tensors (training, scoring every item): large
    temporaries recycled by the allocator, not mapped afresh each time."""
    from itemrec.experiment.memory import keep_freed_memory

    keep_freed_memory()


@app.command(epilog=epilog("itemrec version"))
def version() -> None:
    """Print the installed itemrec version."""
    from itemrec import __version__

    typer.echo(__version__)


TrackingUri = Annotated[
    str | None,
    typer.Option("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow)"),
]


def _front_ends() -> None:
    """Register the front ends (`itemrec.frontends`): imported by the commands that need them, so
    that `--help` answers without loading torch."""
    import itemrec.frontends  # noqa: F401


@app.command(
    context_settings={"allow_extra_args": False},
    epilog=epilog("itemrec train configs/recsys/ml100k_lightgcn_supap.yaml loss.tau=0.05", "docs/guides/quickstart-recommendation.md"),
)
def train(
    config: Annotated[Path, typer.Argument(help="YAML config (configs/...)")],
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted overrides, e.g. loss.tau=0.05")] = None,
    resume: Annotated[str | None, typer.Option(help="run id or checkpoint to continue from")] = None,
    from_study: Annotated[str | None, typer.Option("--from-study", help="retrain the best trial of this Optuna study")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL of --from-study (default: sqlite under ./mlflow)")] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Train a model from a config; logs the run to MLflow and prints its metrics and run id."""
    _large_tensors_ahead()
    _front_ends()
    from itemrec.experiment.config import load_config
    from itemrec.experiment.frontend import front_end
    from itemrec.experiment.loop import train as train_loop

    overrides = list(overrides or [])
    if from_study:
        from itemrec.experiment.tune import best_overrides

        overrides = best_overrides(config, from_study, storage) + overrides
    cfg = load_config(config, overrides)
    train_loop(front_end(cfg.task), cfg, tracking_uri=tracking_uri, resume=resume)


@app.command(epilog=epilog("itemrec evaluate RUN_ID --protocol inductive", "docs/guides/protocols.md"))
def evaluate(
    run: Annotated[str, typer.Argument(help="MLflow run id or checkpoint path")],
    split: Annotated[str, typer.Option(help="val or test")] = "test",
    protocol: Annotated[str, typer.Option(help="transductive, inductive or both (recommendation)")] = "both",
    tracking_uri: TrackingUri = None,
) -> None:
    """Evaluate a trained model (from its run id or checkpoint) and print its metrics."""
    _large_tensors_ahead()
    if split not in ("val", "test"):
        raise UserError(f"--split: must be val or test, got {split!r}")
    _front_ends()
    from itemrec.experiment.checkpoint import resolve_checkpoint
    from itemrec.experiment.frontend import front_end

    checkpoint, run_id = resolve_checkpoint(run, tracking_uri)
    front_end(checkpoint.task, run).evaluate_command(
        checkpoint, run_id, split=split, protocol=protocol, tracking_uri=tracking_uri
    )


@app.command(epilog=epilog("itemrec recommend RUN_ID --user 196 -k 10", "docs/guides/serving.md"))
def recommend(
    run: Annotated[str, typer.Argument(help="MLflow run id or checkpoint path")],
    user: Annotated[str | None, typer.Option(help="a known user id (the dataset's own id)")] = None,
    items: Annotated[str | None, typer.Option(help="comma-separated item ids of a new user")] = None,
    all_users: Annotated[bool, typer.Option("--all-users", help="every user's top-k into --out (batch job)")] = False,
    out: Annotated[Path | None, typer.Option(help="with --all-users: output file (.parquet, or .csv)")] = None,
    k: Annotated[int, typer.Option("-k", help="how many items")] = 10,
    tracking_uri: TrackingUri = None,
) -> None:
    """Top-k recommendations from a trained recommendation run.

    For a known user (--user), for a new user from their items without retraining (--items), or
    for every user (--all-users --out recs.parquet: columns user, rank, item, score).
    """
    _large_tensors_ahead()
    if k < 1:
        raise UserError(f"-k: must be >= 1, got {k}")
    if sum((user is not None, items is not None, all_users)) != 1:
        raise UserError("give exactly one of --user ID, --items ID,ID,... or --all-users --out FILE")
    if all_users != (out is not None):
        raise UserError("--all-users and --out go together")
    from itemrec.recsys.recommend import print_recommendations, write_all_users

    rec = _recommender(run, tracking_uri)
    if all_users:
        rows = write_all_users(rec, k, out)
        typer.echo(f"wrote {rows:,} recommendations ({k} per user) to {out}")
        return
    if user is not None:
        recs = rec.for_user(user, k)
        title = f"top {k} for user {user}"
    else:
        item_list = [i.strip() for i in items.split(",") if i.strip()]
        recs = rec.for_new_user(item_list, k)
        title = f"top {k} for a new user ({len(item_list)} items)"
    print_recommendations(recs, title)


def _recommender(run: str, tracking_uri: str | None):
    """The run's exported MLflow model when it has one (fetched once, cached per run id), else its
    checkpoint with the data re-read; a checkpoint path always takes the second way."""
    from itemrec.experiment.checkpoint import resolve_checkpoint
    from itemrec.recsys.recommend import Recommender

    if not Path(run).expanduser().exists() and not run.endswith((".pt", ".pth")):
        from itemrec.experiment import tracking

        try:
            folder = tracking.download_artifact(run, f"{tracking.MODEL_ARTIFACT}/artifacts/recommender", tracking_uri)
        except UserError as err:
            if "has no artifact" not in str(err):
                raise
        else:
            return Recommender.load(folder)
    checkpoint, run_id = resolve_checkpoint(run, tracking_uri)
    if checkpoint.task != "recsys":
        raise UserError(f"{run}: a {checkpoint.task} run; recommend needs a recommendation run")
    return Recommender.from_checkpoint(checkpoint, run_id or "checkpoint")


@app.command(epilog=epilog("itemrec search RUN_ID --image query.png -k 8", "docs/guides/quickstart-retrieval.md"))
def search(
    run: Annotated[str, typer.Argument(help="MLflow run id or checkpoint path of a retrieval run")],
    image: Annotated[Path, typer.Option(help="query image file")],
    k: Annotated[int, typer.Option("-k", help="how many neighbours")] = 8,
    out: Annotated[Path | None, typer.Option(help="PNG grid of the query and its neighbours")] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Nearest gallery images of a query image (image retrieval); prints them and writes a PNG grid."""
    _large_tensors_ahead()
    from retrieval.search import search_command

    search_command(run, image, k, out, tracking_uri)


@app.command(epilog=epilog("itemrec tune configs/recsys/ml100k_lightgcn_supap_tune.yaml", "docs/guides/tuning.md"))
def tune(
    config: Annotated[Path, typer.Argument(help="YAML config with a tune: section")],
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted overrides applied to every trial")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL (default: sqlite under ./mlflow); PostgreSQL for many machines")] = None,
    study: Annotated[str | None, typer.Option(help="study name (default: the config name); rerun to resume")] = None,
    n_trials: Annotated[int | None, typer.Option("--n-trials", help="total trials of the study (default: tune.n_trials)")] = None,
    workers: Annotated[int, typer.Option(help="local worker processes sharing the storage")] = 1,
    no_summary: Annotated[bool, typer.Option("--no-summary", hidden=True)] = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Search the config's tune.space with Optuna (TPE + pruning); each trial is a nested MLflow run."""
    _large_tensors_ahead()
    _front_ends()
    from itemrec.experiment.tune import tune as run_study

    result = run_study(
        config, list(overrides or []), storage=storage, study_name=study, n_trials=n_trials,
        workers=workers, tracking_uri=tracking_uri, summary=not no_summary,
    )
    if not no_summary:
        typer.echo(f"study {result['study']}: {result['trials']} trials {result['states']}")
        if "best_value" in result:
            typer.echo(f"best trial {result['best_trial']}: {result['best_value']:.4f} with {result['best_params']}")


@app.command(epilog=epilog("itemrec compare --experiment ml100k_lightgcn_supap_tune", "docs/guides/tuning.md"))
def compare(
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment (default: all)")] = None,
    filter: Annotated[str | None, typer.Option("--filter", help="MLflow search filter, e.g. \"params.`loss.name` = 'sup_ap'\"")] = None,
    metrics: Annotated[str, typer.Option(help="comma-separated final metrics")] = "ndcg@20,recall@20",
    split: Annotated[str, typer.Option(help="test or val")] = "test",
    out: Annotated[Path, typer.Option(help="folder for runs.csv, runs.md and the plots")] = Path("comparison"),
    a: Annotated[str | None, typer.Option("--a", help="run A of a paired test")] = None,
    b: Annotated[str | None, typer.Option("--b", help="run B of a paired test")] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Compare runs: differing params and metrics as a table (terminal, CSV, Markdown), plots, paired tests."""
    from itemrec.experiment.compare import compare as run_compare

    names = [m.strip() for m in metrics.split(",") if m.strip()]
    if not names:
        raise UserError("--metrics: give at least one metric, e.g. ndcg@20")
    result = run_compare(
        experiment=experiment, filter_string=filter, metrics=names, split=split, out=out,
        run_a=a, run_b=b, tracking_uri=tracking_uri,
    )
    typer.echo(f"wrote {', '.join(str(f) for f in result.files)}")


def main() -> None:
    """Console entry point: a user error becomes one line on stderr and exit code 2."""
    try:
        app()
    except UserError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
