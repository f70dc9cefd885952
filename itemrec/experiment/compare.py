"""`itemrec compare`: a table of runs from MLflow, their curves, confidence intervals, paired tests.

The table shows the params that differ between the selected runs and the requested final
metrics; it is printed and written as CSV and Markdown. Plots: the validation curves of each run
and a bar chart of each metric with per-user bootstrap 95% confidence intervals (from the
per-user metrics every recommendation run saves). `--a RUN --b RUN` adds a paired test over the
users both runs evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

from itemrec.experiment import tracking
from itemrec.experiment.errors import UserError

PER_USER = "per_user/per_user_{split}_transductive.parquet"
RUN_NAME = "run name"
"""The table column holding each run's MLflow run name."""


def number(value: float) -> str:
    """A metric as shown in tables: 4 significant digits (`0.01057`, `0.2625`, `12.35`)."""
    return f"{value:.4g}"


@dataclass
class Comparison:
    table: pl.DataFrame  # one row per run: run, name, differing params, metrics
    metrics: list[str]  # the metric columns of `table`
    files: list[Path]


def _runs(experiment: str | None, filter_string: str | None, tracking_uri: str | None):
    mlflow = tracking.connect(tracking_uri)
    try:
        if experiment:
            if mlflow.get_experiment_by_name(experiment) is None:
                raise UserError(f"--experiment {experiment!r}: no such MLflow experiment")
            frame = mlflow.search_runs(experiment_names=[experiment], filter_string=filter_string or "")
        else:
            frame = mlflow.search_runs(search_all_experiments=True, filter_string=filter_string or "")
    except UserError:
        raise
    except Exception as err:
        raise UserError(f"--filter {filter_string!r}: {str(err).splitlines()[0]}") from None
    frame = frame[frame["status"] == "FINISHED"] if len(frame) else frame
    return frame


def select(experiment: str | None, filter_string: str | None, metrics: list[str], split: str, tracking_uri: str | None) -> Comparison:
    """The runs and the table of their differing params and `split` metrics."""
    runs = _runs(experiment, filter_string, tracking_uri)
    if not len(runs):
        raise UserError("no finished runs match (check --experiment / --filter)")
    columns = {m: f"metrics.{split}/{tracking.metric_key(m)}" for m in metrics}
    missing = [m for m, c in columns.items() if c not in runs.columns]
    if missing:
        known = sorted({c.split("/", 1)[1].replace("_at_", "@") for c in runs.columns if c.startswith(f"metrics.{split}/")})
        raise UserError(f"--metrics: unknown metric {missing[0]!r} (known: {', '.join(known)})")
    runs = runs[runs[list(columns.values())].notna().any(axis=1)]
    if not len(runs):
        raise UserError(f"no matching run has final {split} metrics")
    logged = {c: ["" if not isinstance(v, str) else v for v in runs[c]] for c in runs.columns if c.startswith("params.")}
    params = [c for c, values in logged.items() if len(set(values)) > 1]  # "": a run that did not log it
    data = {
        "run": runs["run_id"].tolist(),
        RUN_NAME: [str(e) for e in runs.get("tags.mlflow.runName", runs["run_id"])],
    }
    for c in params:
        data[c.removeprefix("params.")] = logged[c]
    for m, c in columns.items():
        data[m] = runs[c].astype(float).tolist()
    table = pl.DataFrame(data).sort(metrics[0], descending=True)
    return Comparison(table, list(metrics), [])


def markdown(table: pl.DataFrame) -> str:
    def cell(value) -> str:
        return number(value) if isinstance(value, float) else str(value)

    head = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.iter_rows()]
    return "\n".join([head, rule, *rows]) + "\n"


def print_table(comparison: Comparison) -> None:
    table = Table(title=f"{comparison.table.height} runs")
    for column in comparison.table.columns:
        table.add_column(column, justify="right" if column in comparison.metrics else "left")
    for row in comparison.table.iter_rows():
        table.add_row(*(number(v) if isinstance(v, float) else (str(v)[:12] if i == 0 else str(v)) for i, v in enumerate(row)))
    console = Console()
    (console if console.is_terminal else Console(width=160)).print(table)


def bar_labels(comparison: Comparison, width: int = 40) -> dict[str, str]:
    """Run id -> what tells the run apart: its differing params (`loss.tau=0.05, train.lr=0.01`),
    else its run name; clipped to `width` characters, made unique with the run-id prefix."""
    table = comparison.table
    params = [c for c in table.columns if c not in ("run", RUN_NAME, *comparison.metrics)]
    labels = {}
    for row in table.iter_rows(named=True):
        text = ", ".join(f"{c}={row[c]}" for c in params) if params else row[RUN_NAME]
        labels[row["run"]] = text if len(text) <= width else text[: width - 1] + "…"
    counts = {label: list(labels.values()).count(label) for label in labels.values()}
    return {run: f"{label} ({run[:6]})" if counts[label] > 1 else label for run, label in labels.items()}


def per_user(run_id: str, split: str, tracking_uri: str | None) -> pl.DataFrame | None:
    """The run's per-user metrics on `split`, or None if it saved none."""
    try:
        return pl.read_parquet(tracking.download_artifact(run_id, PER_USER.format(split=split), tracking_uri))
    except UserError:
        return None


def bootstrap_ci(values: np.ndarray, rounds: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(rounds, len(values)))].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def plot(comparison: Comparison, split: str, out: Path, tracking_uri: str | None) -> list[Path]:
    """Validation curves and bootstrap-CI bars, as PNG files in `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking.connect(tracking_uri).get_tracking_uri())
    files = []
    names = bar_labels(comparison)
    metric = comparison.metrics[0]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for run in comparison.table["run"]:
        history = client.get_metric_history(run, tracking.metric_key(f"val/{metric}"))
        if history:
            ax.plot([h.step for h in history], [h.value for h in history], marker="o", ms=3, label=names[run])
    ax.set(xlabel="epoch", ylabel=f"val {metric}", title="validation curves")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    files.append(out / "validation_curves.png")
    fig.tight_layout()
    fig.savefig(files[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(comparison.metrics), figsize=(4 + 3 * len(comparison.metrics), 4.5), squeeze=False)
    for ax, m in zip(axes[0], comparison.metrics):
        labels, means, lows, highs = [], [], [], []
        for run in comparison.table["run"]:
            users = per_user(run, split, tracking_uri)
            if users is None or m not in users.columns:
                continue
            values = users[m].to_numpy()
            lo, hi = bootstrap_ci(values)
            labels.append(names[run])
            means.append(values.mean())
            lows.append(values.mean() - lo)
            highs.append(hi - values.mean())
        ax.bar(labels, means, yerr=[lows, highs], capsize=4, color="tab:blue", alpha=0.8)
        ax.set(title=f"{split} {m} (95% bootstrap CI)")
        ax.tick_params(axis="x", rotation=30)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
    files.append(out / "metrics_ci.png")
    fig.tight_layout()
    fig.savefig(files[-1], dpi=110)
    plt.close(fig)
    return files


@dataclass
class PairedTest:
    metric: str
    users: int
    mean_a: float
    mean_b: float
    diff: float
    ci: tuple[float, float]
    t_pvalue: float
    wilcoxon_pvalue: float


def paired_pvalues(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Two-sided p-values of the paired t-test and the Wilcoxon signed-rank test of `x - y`, both
    `[users]`; `(1.0, 1.0)` when they are equal everywhere. Computed in float64: per-user metrics
    are stored as float32, whose p-values underflow to 0 below about 1e-45."""
    from scipy import stats

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    d = x - y
    if not np.any(d != 0):
        return 1.0, 1.0
    return float(stats.ttest_rel(x, y).pvalue), float(stats.wilcoxon(d).pvalue)


def paired_test(run_a: str, run_b: str, metric: str, split: str, tracking_uri: str | None) -> PairedTest:
    """Paired t-test and Wilcoxon signed-rank test of `metric` over the users both runs scored."""
    a, b = per_user(run_a, split, tracking_uri), per_user(run_b, split, tracking_uri)
    for run, frame in ((run_a, a), (run_b, b)):
        if frame is None:
            raise UserError(f"run {run}: has no per-user {split} metrics to test")
        if metric not in frame.columns:
            raise UserError(f"run {run}: no per-user metric {metric!r}")
    joined = a.select("user", pl.col(metric).alias("a")).join(b.select("user", pl.col(metric).alias("b")), on="user")
    if joined.height < 2:
        raise UserError(f"runs {run_a} and {run_b} share fewer than 2 evaluated users; not comparable")
    x, y = joined["a"].to_numpy().astype(np.float64), joined["b"].to_numpy().astype(np.float64)
    d = x - y
    t_p, w_p = paired_pvalues(x, y)
    return PairedTest(metric, joined.height, float(x.mean()), float(y.mean()), float(d.mean()), bootstrap_ci(d), t_p, w_p)


def compare(
    *,
    experiment: str | None = None,
    filter_string: str | None = None,
    metrics: list[str] | None = None,
    split: str = "test",
    out: Path = Path("comparison"),
    run_a: str | None = None,
    run_b: str | None = None,
    tracking_uri: str | None = None,
) -> Comparison:
    """Select runs, print and write the table, plot, and optionally test run A against run B."""
    metrics = metrics or ["ndcg@20", "recall@20"]
    comparison = select(experiment, filter_string, metrics, split, tracking_uri)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    comparison.table.write_csv(out / "runs.csv")
    (out / "runs.md").write_text(markdown(comparison.table))
    comparison.files = [out / "runs.csv", out / "runs.md", *plot(comparison, split, out, tracking_uri)]
    print_table(comparison)
    if (run_a is None) != (run_b is None):
        raise UserError("--a and --b go together")
    if run_a is not None:
        lines = []
        for m in metrics:
            test = paired_test(run_a, run_b, m, split, tracking_uri)
            lines.append(
                f"{m}: A {test.mean_a:.4f} vs B {test.mean_b:.4f} over {test.users} users; "
                f"A-B {test.diff:+.4f} (95% CI {test.ci[0]:+.4f} .. {test.ci[1]:+.4f}); "
                f"paired t p={test.t_pvalue:.3g}, Wilcoxon p={test.wilcoxon_pvalue:.3g}"
            )
        (out / "paired_test.txt").write_text("\n".join(lines) + "\n")
        comparison.files.append(out / "paired_test.txt")
        Console().print("\n".join(lines))
    return comparison
