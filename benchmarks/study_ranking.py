"""The best ranking loss against SL and SL@20 on IR-Benchmark, LightGCN: the goal table.

Three cells per dataset and seed, LightGCN on the benchmark's protocol: SL and SL@20 with their
published settings (`configs/recsys/irb/<dataset>_lightgcn_{sl,slk20}.yaml`) and the ranking loss
the diagnosis ranks best on validation, Log-DCG@20 + SL@20 (centered Log-DCG@20 plus SL@20's own term),
with Health's setting on Health and Electronic and SL@20's own on Gowalla, with 2,000 negatives per
positive, as Gowalla's validation split chose (`configs/recsys/irb/<dataset>_lightgcn_best_ranking.yaml`). The runs are `benchmarks.study_losses`
cells (its tags, experiments, store and records), so a cell run by either script counts for both;
the records keep each paired run's per-user test NDCG@20, and a fresh clone restores them.

The report, RESULTS.md section "The best ranking loss against SL and SL@20 (IR-Benchmark,
LightGCN)": per dataset the three losses' test Recall@20 / NDCG@20 (mean ± 95 % t-interval over
the seeds run) beside the published SL and SL@20, then per seed the paired test over the test
users of the ranking loss's NDCG@20 against SL@20's and SL's (mean difference, paired t-test p).
The goal: at or above SL@20 beyond noise on two datasets, above SL on all three.

    python -m benchmarks.study_ranking [--datasets health electronic gowalla] [--seeds 0 1 2] [--dry-run]
        [--losses best_ranking slk20 sl]     # a subset of the cells, e.g. one per process
    python -m benchmarks.study_ranking --report-only
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence

import itemrec.frontends  # noqa: F401  (registers the front ends that configs are validated by)
from benchmarks import study_losses as sl
from benchmarks.harness import (
    ROOT,
    command,
    machine,
    markdown_table,
    p_value,
    parser,
    publish,
)
from benchmarks.study import TAG, cell, finished_runs, run_study

SECTION = "study-ranking"
TITLE = "The best ranking loss against SL and SL@20 (IR-Benchmark, LightGCN)"
LOSSES = {"sl": "SL", "slk20": "SL@20", "best_ranking": "Log-DCG@20 + SL@20"}
RANKING = "best_ranking"


def jobs(datasets: Sequence[str], seeds: Sequence[int], losses: Sequence[str] = tuple(LOSSES)):
    """The cells of `losses`, seed-major, the ranking loss first in each (its references may be done already)."""
    ordered = [loss for loss in (RANKING, "slk20", "sl") if loss in losses]
    return [job for s in seeds for d in datasets for job in sl.jobs([d], ["lightgcn"], ordered, [s])]


def collect(done: dict) -> dict[tuple[str, str, int], dict]:
    """`{(dataset, loss, seed): {"run", "recall", "ndcg"}}` of the finished LightGCN cells."""
    out = {}
    for key, run in done.items():
        t = {k.removeprefix(TAG): v for k, v in key}
        if t.get("model") == "lightgcn" and t.get("loss") in LOSSES and t.get("rows", "users") == "users":
            out[(t["dataset"], t["loss"], int(t["seed"]))] = {
                "run": run["run_id"], "recall": float(run.get("metrics.test/recall_at_20", math.nan)),
                "ndcg": float(run[f"metrics.{sl.DONE}"]),
            }
    return out


def paired(results: dict, tracking_uri: str) -> dict[tuple[str, str, int], tuple[float, float, int]]:
    """`{(dataset, other loss, seed): (mean difference, t-test p, users)}` of the ranking loss's
    per-user test NDCG@20 against SL@20's and SL's, for each seed where both ran."""
    from itemrec.experiment.compare import paired_test

    out = {}
    for (dataset, loss, seed), ours in sorted(results.items()):
        if loss != RANKING:
            continue
        for other in ("slk20", "sl"):
            theirs = results.get((dataset, other, seed))
            if theirs:
                test = paired_test(ours["run"], theirs["run"], "ndcg@20", "test", tracking_uri)
                out[(dataset, other, seed)] = (test.diff, test.t_pvalue, test.users)
    return out


def report(results: dict, tests: dict, references: dict, line: str, seeds: Sequence[int]) -> str:
    parts = [f"## {TITLE}", "", f"`{line}` — {machine()}", "",
             "Cells of `benchmarks.study_losses` (LightGCN, the benchmark's protocol, 200 epochs, the best validation "
             "epoch tested): SL and SL@20 with their published settings, and Log-DCG@20 + SL@20 "
             "(`configs/recsys/irb/<dataset>_lightgcn_best_ranking.yaml`: each positive's centered Log-DCG@20 term "
             "w (log log2(2 + ρ) − log log2 22) plus SL@20's w log ρ, lr 0.01; T 0.2, τ_w 2.5, T_β 20 on Health and "
             "Electronic, chosen on Health's validation split; on Gowalla SL@20's own T 0.1, τ_w 0.75, T_β 5 and 2,000 "
             "negatives per positive instead of 1,000, chosen on its validation split). Test values: mean ± 95 % t-interval over the seeds run. "
             "Paired tests: the ranking loss's per-user test NDCG@20 minus the other loss's, over the test users, "
             "same seed; p of the paired t-test."]
    for dataset, label in sl.DATASETS.items():
        rows = []
        for loss, name in LOSSES.items():
            runs = [results[(dataset, loss, s)] for s in seeds if (dataset, loss, s) in results]
            ref = references.get((dataset, "lightgcn", loss))
            published = f"{ref['recall@20']:.4f} / {ref['ndcg@20']:.4f}" if ref else "—"
            rows.append([name, published, str(len(runs)), cell([r["recall"] for r in runs]) if runs else "not run",
                         cell([r["ndcg"] for r in runs]) if runs else "not run"])
        parts += ["", f"### {label}", "", markdown_table(["loss", "published R@20 / N@20", "n", "R@20", "N@20"], rows, "lrrrr")]
        lines = []
        for s in seeds:
            for other in ("slk20", "sl"):
                if (dataset, other, s) in tests:
                    diff, p, users = tests[(dataset, other, s)]
                    lines.append([str(s), f"{LOSSES[RANKING]} − {LOSSES[other]}", f"{diff:+.4f}", p_value(p), f"{users:,}"])
        if lines:
            parts += ["", markdown_table(["seed", "paired test of test NDCG@20", "mean difference", "p", "users"],
                                         lines, "llrrr")]
    return "\n".join(parts)


def arguments():
    out = parser(__doc__, seeds=list(sl.SEEDS), study=True, tracking_uri=f"sqlite:///{ROOT / 'mlflow' / 'study.db'}",
                 run_dir=str(ROOT / "runs"))
    out.add_argument("--datasets", nargs="+", default=list(sl.DATASETS), choices=list(sl.DATASETS))
    out.add_argument("--losses", nargs="+", default=list(LOSSES), choices=list(LOSSES),
                     help="the cells to train (default: all three); the report shows every finished one")
    return out


def main(argv: list[str] | None = None, train: Callable | None = None) -> int:
    """The comparison; `train` replaces `itemrec.recsys.frontend.train` (tests)."""
    args = arguments().parse_args(argv)
    grid = jobs(args.datasets, args.seeds, args.losses)
    folder = sl.restore_records(args)

    def finished() -> dict:
        return sl.current(finished_runs([sl.experiment(d) for d in sl.DATASETS], sl.STUDY, args.tracking_uri, sl.DONE),
                          args.run_dir)

    def run(job) -> None:
        sl.execute(job, args.tracking_uri, args.run_dir, args.quiet, train)
        sl.save_records(args.tracking_uri, folder)

    done = run_study(grid, args, finished, run, lambda job: sl.cell_config(job, args.run_dir))
    if done is None:
        return 0
    results = collect(done)
    sl.save_records(args.tracking_uri, folder)
    publish(SECTION, report(results, paired(results, args.tracking_uri), sl.published(), command("study_ranking"),
                            sorted(set(sl.SEEDS) | set(args.seeds))), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
