"""Retrieval study: Fashion-MNIST unseen classes, every loss × several seeds, each trained until
validation mAP@R stops improving.

Losses: roadmap, sup_ap, smooth_ap, sup_recall_at_k, happier (ranking losses of `itemrec.ranking`)
and pytorch-metric-learning's contrastive, multi_similarity and triplet. Each run is
`configs/retrieval/fashion_mnist_roadmap.yaml` with the loss swapped, the seed set, and early
stopping on validation mAP@R (`train.patience` epochs without improvement, never before
`train.min_epochs`, at most the epoch cap; the cosine schedule spans the cap). Runs log to MLflow
with tags naming the study, loss and seed; a finished run is not run again, so the study resumes
where it stopped. Reported: test mAP@R, H-AP, ASI, hit@1 as mean ± 95 % t-interval over seeds,
and, per pair of losses the papers order, whether the difference holds beyond seed noise.

    python -m benchmarks.study_retrieval [--losses ...] [--seeds 0 1 2] [--cap 30] [--dry-run]
"""

from __future__ import annotations

import argparse
import math
import sys

import itemrec.frontends  # noqa: F401  (registers the front ends that configs are validated by)
from benchmarks.harness import (
    ROOT,
    command,
    machine,
    markdown_table,
    p_value,
    parser,
    write_section,
    writes,
)
from benchmarks.study import (
    TAG,
    Job,
    bar_chart,
    cell,
    finished_runs,
    mean_ci,
    run_study,
    seconds_to_best,
    train_timed,
)

CONFIG = ROOT / "configs" / "retrieval" / "fashion_mnist_roadmap.yaml"
STUDY = "retrieval"
EXPERIMENT = "study_retrieval_fashion_mnist"
PNG = ROOT / "benchmarks" / "study_retrieval.png"
SECTION = "study-retrieval"
LOSSES = ("roadmap", "sup_ap", "smooth_ap", "sup_recall_at_k", "happier", "contrastive", "multi_similarity", "triplet")
RANKING = LOSSES[:5]
METRICS = ("map@r", "h_ap", "asi", "hit@1")
SELECT = "val/map_at_r"
DONE = "test/map_at_r"
CLAIMS = (  # (A, B, metric): the papers report A above B
    ("roadmap", "sup_ap", "map@r"), ("sup_ap", "smooth_ap", "map@r"), ("roadmap", "smooth_ap", "map@r"),
    ("roadmap", "multi_similarity", "map@r"), ("sup_ap", "multi_similarity", "map@r"), ("roadmap", "contrastive", "map@r"),
    ("roadmap", "triplet", "map@r"),
    ("happier", "roadmap", "h_ap"), ("happier", "sup_ap", "h_ap"), ("happier", "roadmap", "asi"), ("happier", "sup_ap", "asi"),
)


def jobs(losses, seeds) -> list[Job]:
    """Seed-major order: a first seed of every loss before the second seed of any."""
    return [Job(EXPERIMENT, {TAG + "name": STUDY, TAG + "loss": loss, TAG + "seed": str(seed)}) for seed in seeds for loss in losses]


def config_overrides(loss: str, seed: int, cap: int, patience: int, min_epochs: int, root: str | None, run_dir: str) -> list[str]:
    overrides = [
        f"loss={{name: {loss}}}", f"seed={seed}", f"name={EXPERIMENT}", f"train.epochs={cap}",
        f"train.patience={patience}", f"train.min_epochs={min_epochs}", f"train.run_dir={run_dir}",
        "train.val_metrics=[map@r]",  # the selection metric only, per epoch; the test split gets every metric
    ]
    return overrides + ([f"data.root={root}"] if root else [])


def execute(job: Job, args) -> None:
    from itemrec.experiment.config import load_config
    from retrieval.frontend import train

    loss, seed = job.tags[TAG + "loss"], int(job.tags[TAG + "seed"])
    config = load_config(CONFIG, config_overrides(loss, seed, args.cap, args.patience, args.min_epochs, args.data_root, args.run_dir))
    train_timed(train, config, job, args.tracking_uri, args.quiet)


def collect(done: dict, tracking_uri: str) -> dict[tuple[str, int], dict]:
    """`{(loss, seed): {"metrics", "best_epoch", "epochs", "seconds"}}` of the finished runs."""
    out = {}
    for key, run in done.items():
        t = {k.removeprefix(TAG): v for k, v in key}
        if t.get("name") != STUDY or t.get("loss") not in LOSSES:
            continue
        metrics = {m: float(run[f"metrics.test/{m.replace('@', '_at_')}"]) for m in METRICS
                   if f"metrics.test/{m.replace('@', '_at_')}" in run.index}
        best, epochs, seconds = seconds_to_best(run["run_id"], SELECT, tracking_uri)
        out[(t["loss"], int(t["seed"]))] = {"run": run["run_id"], "metrics": metrics, "best_epoch": best,
                                            "epochs": epochs, "seconds": seconds}
    return out


def values(results, loss: str, metric: str) -> list[float]:
    return [r["metrics"][metric] for (name, _), r in sorted(results.items()) if name == loss and metric in r["metrics"]]


def table(results) -> str:
    header = ["loss", "seeds", "epochs run (best)", "train s to best", *(f"test {m} %" for m in METRICS)]
    rows = []
    for loss in LOSSES:
        runs = [r for (name, _), r in results.items() if name == loss]
        if not runs:
            continue
        rows.append([
            f"**{loss}**" if loss in RANKING else loss, str(len(runs)),
            f"{mean_ci([r['epochs'] for r in runs])[0]:.0f} ({mean_ci([r['best_epoch'] or 0 for r in runs])[0]:.0f})",
            f"{mean_ci([r['seconds'] for r in runs])[0]:.0f}",
            *(cell(values(results, loss, m), scale=100, digits=2) for m in METRICS),
        ])
    return markdown_table(header, rows)


def welch(x: list[float], y: list[float]) -> tuple[float, float, float]:
    """Welch's t-test of mean(x) = mean(y): `(t, df, two-sided p)` with `t = (x̄ - ȳ) / √(s_x²/n_x +
    s_y²/n_y)` and Welch-Satterthwaite `df = (s_x²/n_x + s_y²/n_y)² / ((s_x²/n_x)²/(n_x-1) +
    (s_y²/n_y)²/(n_y-1))` (sample variances, ddof 1). No spread at all: p = 0 if the means differ, else 1."""
    from scipy import stats

    vx, vy = stats.tvar(x) / len(x), stats.tvar(y) / len(y)
    diff = sum(x) / len(x) - sum(y) / len(y)
    if vx + vy == 0:
        return (math.copysign(math.inf, diff), math.nan, 0.0) if diff else (0.0, math.nan, 1.0)
    t = diff / math.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    return t, df, float(2 * stats.t.sf(abs(t), df))


def ordering(results, a: str, b: str, metric: str = "map@r") -> list[str] | None:
    """Whether A > B holds beyond seed noise: Welch t-test over the seeds' test values (two-sided
    p < 0.05) — the runs of A and B with the same seed share nothing but the seed, so they are
    not paired. The cells of the claim's table row; None with fewer than 2 seeds of either."""
    x, y = values(results, a, metric), values(results, b, metric)
    if len(x) < 2 or len(y) < 2:
        return None
    diff = 100 * (mean_ci(x)[0] - mean_ci(y)[0])
    _, _, p = welch(x, y)
    if p < 0.05:
        verdict = "**holds**" if diff > 0 else "**reversed**"
    else:
        verdict = "not beyond noise"
    return [f"{a} > {b} ({metric})", f"{100 * mean_ci(x)[0]:.2f} vs {100 * mean_ci(y)[0]:.2f}", f"{diff:+.2f}", p_value(p), verdict]


def report(results, args, command: str, missing: list[Job] = ()) -> str:
    not_run = []
    if missing:
        by_seed: dict[str, list[str]] = {}
        for job in missing:
            by_seed.setdefault(job.tags[TAG + "seed"], []).append(job.tags[TAG + "loss"])
        not_run = ["", f"Not run yet ({len(missing)} runs of the full study; the command above resumes it and runs them):", "",
                   *(f"- seed {seed}: {', '.join(losses)}" for seed, losses in by_seed.items())]
    claims = [row for a, b, metric in CLAIMS if (row := ordering(results, a, b, metric))]
    lines = [markdown_table(["claim (metric)", "A vs B %", "A − B", "Welch p", "here"], claims, "lrrrl")] if claims else [
        "No ordering can be judged yet: a test over seeds needs at least 2 finished seeds of both losses."]
    return "\n".join([
        "## Study: image retrieval, multi-seed at convergence (Fashion-MNIST, unseen classes)",
        "",
        f"`{command}` — {machine()}",
        "",
        "Protocol of the image-retrieval section above (train on 6 classes, 10 % of their images for validation; test "
        "on the 4 unseen classes, every test image a query against the other 3,999; small CNN, 128-d, m-per-class "
        "batches of 128, 60 batches per epoch, AdamW lr 1e-3, cosine schedule over the epoch cap), "
        + (f"every run trains exactly {args.cap} epochs (the minimum equals the cap, so the patience of "
           f"{args.patience} never stops a run); " if args.min_epochs >= args.cap else
           f"with early stopping: each run stops once validation mAP@R has not improved for {args.patience} epochs, "
           f"never before epoch {args.min_epochs}, at most {args.cap} epochs; ")
        + "validation (mAP@R only) after every epoch, and the test metrics are those of the best validation epoch. "
        "± is the 95 % t-interval half-width over seeds (n−1 degrees of freedom). Ranking losses in bold; "
        "`train s to best` is training time up to the best epoch on this shared 2-core machine (noisy).",
        *(["", table(results), "", "The papers' orderings, tested here on each claim's test metric over seeds (Welch t-test, "
            "p < 0.05 needed):", "", *lines] if results else ["", "No run of this study has finished yet."]),
        *not_run,
    ])


def chart(results) -> bool:
    panels = []
    for metric in ("map@r", "h_ap"):
        bars = [(loss, [100 * v for v in values(results, loss, metric)], "tab:blue" if loss in RANKING else "tab:gray")
                for loss in LOSSES if values(results, loss, metric)]
        panels.append((f"Fashion-MNIST unseen classes: test {metric} %, mean ± 95% CI over seeds", bars))
    if not any(b for _, b in panels):
        return False
    bar_chart(panels, "%", PNG, "blue: ranking losses, grey: pytorch-metric-learning baselines")
    return True


def arguments() -> argparse.ArgumentParser:
    """The shared study flags (seeds, MLflow store, run folder, dry run, report only) and the
    study's losses and early-stopping settings."""
    out = parser(__doc__, seeds=[0, 1, 2], study=True, tracking_uri=f"sqlite:///{ROOT / 'mlflow' / 'study.db'}",
                 run_dir=str(ROOT / "runs"))
    out.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    out.add_argument("--cap", type=int, default=30, help="most epochs per run (default: %(default)s)")
    out.add_argument("--patience", type=int, default=4, help="epochs without a better validation mAP@R (default: %(default)s)")
    out.add_argument("--min-epochs", type=int, default=20, help="epochs always run (default: %(default)s)")
    out.add_argument("--data-root", default=None, help="folder of the Fashion-MNIST IDX files (default: the package's)")
    return out


def main(argv: list[str] | None = None) -> int:
    flags = arguments()
    args = flags.parse_args(argv)
    if args.min_epochs > args.cap:
        flags.error(f"--min-epochs {args.min_epochs} is above --cap {args.cap}")
    grid = jobs(args.losses, args.seeds)
    done = run_study(grid, args, lambda: finished_runs([EXPERIMENT], STUDY, args.tracking_uri, DONE),
                     lambda job: execute(job, args))
    if done is None:
        return 0
    results = collect(done, args.tracking_uri)
    line = command("study_retrieval", "--cap", args.cap, "--patience", args.patience, "--min-epochs", args.min_epochs)
    body = report(results, args, line, [job for job in jobs(LOSSES, [0, 1, 2]) if job.key not in done])
    print(body)
    if writes(args):
        if chart(results):
            body += f"\n\nBar chart (test mAP@R and H-AP, mean with 95 % CI whiskers): `benchmarks/{PNG.name}`."
        write_section(SECTION, body, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
