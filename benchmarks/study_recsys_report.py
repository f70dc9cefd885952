"""The recommendation study's report: its finished runs collected from MLflow, the tables (test
metrics over seeds, paired per-user tests), the summary lines and the bar chart of a dataset."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import ROOT, machine, markdown_table, p_value
from benchmarks.study import TAG, WALL, Job, bar_chart, cell, history, mean_ci, seconds_to_best
from benchmarks.study_recsys_grid import (
    KS,
    MIN_EPOCHS,
    MODEL_LABEL,
    PATIENCE,
    ROW,
    ROWS,
    SELECT,
    STUDY,
    Row,
)

CHARTS = ROOT / "benchmarks"  # one bar chart per dataset: study_recsys_<dataset>.png


def png(dataset: str) -> Path:
    """The bar chart of one dataset."""
    return CHARTS / f"study_recsys_{dataset}.png"


@dataclass
class Result:
    run_id: str
    metrics: dict[str, float]
    best_epoch: int | None
    epochs: int
    to_best: float
    wall: float


def collect(done: dict, tracking_uri: str) -> dict[tuple[str, str, str, int, int], Result]:
    """`{(dataset, protocol, row, seed, split seed): Result}` of every finished study run."""
    out = {}
    for key, run in done.items():
        t = {k.removeprefix(TAG): v for k, v in key}
        if t.get("name") != STUDY or t.get("row") not in ROW:
            continue
        metrics = {
            c.removeprefix("metrics.").replace("_at_", "@"): float(run[c])
            for c in run.index if c.startswith("metrics.test") and not math.isnan(float(run[c]))
        }
        best, epochs, to_best = seconds_to_best(run["run_id"], SELECT, tracking_uri)
        wall = float(run.get(f"metrics.{WALL}", math.nan))
        out[(t["dataset"], t["protocol"], t["row"], int(t["seed"]), int(t["split_seed"]))] = Result(
            run["run_id"], metrics, best, epochs, to_best, wall
        )
    return out


def values(results, dataset, protocol, row, metric, seeds=None, split=False) -> list[float]:
    """The metric over the model seeds on split 0 (or, `split=True`, over the split seeds at seed 0)."""
    out = []
    for (d, p, r, seed, sp), res in sorted(results.items()):
        if (d, p, r) != (dataset, protocol, row) or metric not in res.metrics:
            continue
        if (split and seed == 0) or (not split and sp == 0 and (seeds is None or seed in seeds)):
            out.append(res.metrics[metric])
    return out


def transductive_table(results, dataset: str) -> str:
    header = ["row", "runs", "epochs run (best)", "to best s", *(f"test {k}" for k in KS), "ndcg@10 over split seeds"]
    body = []
    for row in ROWS:
        runs = [r for (d, p, n, _, sp), r in results.items() if (d, p, n, sp) == (dataset, "transductive", row.name, 0)]
        if not runs:
            continue
        epochs = "fit" if row.loss is None else f"{mean_ci([r.epochs for r in runs])[0]:.0f} ({mean_ci([r.best_epoch or 0 for r in runs])[0]:.0f})"
        to_best = f"{mean_ci([r.wall for r in runs])[0]:.0f} (fit+test)" if row.loss is None else f"{mean_ci([r.to_best for r in runs])[0]:.0f}"
        split = values(results, dataset, "transductive", row.name, "test/ndcg@10", split=True)
        body.append([
            row.label, str(len(runs)), epochs, to_best,
            *(cell(values(results, dataset, "transductive", row.name, f"test/{k}")) for k in KS),
            f"{cell(split)} (n={len(split)})" if row.split_seeds and len(split) > 1 else "—",
        ])
    return markdown_table(header, body)


def inductive_table(results, dataset: str) -> str:
    header = ["row", "runs", "epochs run (best)", "known users ndcg@10", "known users recall@20",
              *(f"held-out users {k}" for k in KS)]
    body = []
    for row in ROWS:
        known = values(results, dataset, "inductive", row.name, "test/ndcg@10")
        if not known:
            continue
        runs = [r for (d, p, n, _, sp), r in results.items() if (d, p, n, sp) == (dataset, "inductive", row.name, 0)]
        epochs = "fit" if row.loss is None else f"{mean_ci([r.epochs for r in runs])[0]:.0f} ({mean_ci([r.best_epoch or 0 for r in runs])[0]:.0f})"
        body.append([
            row.label, str(len(known)), epochs, cell(known), cell(values(results, dataset, "inductive", row.name, "test/recall@20")),
            *(cell(values(results, dataset, "inductive", row.name, f"test_inductive/{k}")) for k in KS),
        ])
    return markdown_table(header, body)


def best_val(results, dataset, protocol, names, tracking_uri) -> str | None:
    """Of the rows `names`, the one with the best mean (over seeds, split 0) validation ndcg@20
    at its best epoch: the selection uses validation only."""
    scores = {}
    for name in names:
        runs = [r for (d, p, n, _, sp), r in results.items() if (d, p, n, sp) == (dataset, protocol, name, 0)]
        if runs:
            scores[name] = mean_ci([max(history(r.run_id, SELECT, tracking_uri).values(), default=math.nan) for r in runs])[0]
    scores = {k: v for k, v in scores.items() if not math.isnan(v)}
    return max(scores, key=scores.get) if scores else None


def paired(results, dataset, protocol, a: str, b: str, metric: str, split: str, tracking_uri) -> list[str] | None:
    """One table row: A vs B per seed (same seed, same split, same users), per-user paired tests."""
    from itemrec.experiment.compare import paired_test

    seeds = sorted({s for (d, p, n, s, sp) in results if (d, p, n, sp) == (dataset, protocol, a, 0)}
                   & {s for (d, p, n, s, sp) in results if (d, p, n, sp) == (dataset, protocol, b, 0)})
    if not seeds:
        return None
    tests = [paired_test(results[(dataset, protocol, a, s, 0)].run_id, results[(dataset, protocol, b, s, 0)].run_id,
                         metric, split, tracking_uri) for s in seeds]
    diffs = [t.diff for t in tests]
    same_sign = all(d > 0 for d in diffs) or all(d < 0 for d in diffs)
    worst_t, worst_w = max(t.t_pvalue for t in tests), max(t.wilcoxon_pvalue for t in tests)
    holds = same_sign and worst_t < 0.05 and worst_w < 0.05
    verdict = ("**A better**" if diffs[0] > 0 else "**B better**") if holds else "not beyond noise"
    return [
        f"{ROW[a].label} vs {ROW[b].label}", metric, str(len(seeds)), f"{tests[0].users:,}",
        f"{mean_ci([t.mean_a for t in tests])[0]:.4f} vs {mean_ci([t.mean_b for t in tests])[0]:.4f}",
        " / ".join(f"{d:+.4f}" for d in diffs), p_value(worst_t), p_value(worst_w), verdict,
    ]


def tests_table(results, dataset: str, tracking_uri: str, protocol: str = "transductive") -> tuple[str, list[str]]:
    """Best ranking loss (on validation) vs BPR and vs sampled softmax per model; PPR vs uniform."""
    rows, notes = [], []
    for model in ("lightgcn", "mf", "ngcf"):
        ranking = [row.name for row in ROWS if row.model == model and row.ranking and row.negatives == "uniform"]
        best = best_val(results, dataset, protocol, ranking, tracking_uri)
        if best is None:
            continue
        notes.append(f"best ranking loss on {MODEL_LABEL[model]} (mean validation ndcg@20): {ROW[best].label}")
        for other in (f"{model}_bpr", f"{model}_softmax"):
            if other in ROW:
                for metric in ("ndcg@10", "recall@20"):
                    row = paired(results, dataset, protocol, best, other, metric, "test", tracking_uri)
                    if row:
                        rows.append(row)
    ppr_rows = [row.name for row in ROWS if row.model == "lightgcn" and row.negatives == "ppr"]
    for name in ppr_rows:
        uniform = f"lightgcn_{ROW[name].loss}"
        for metric in ("ndcg@10", "recall@20"):
            row = paired(results, dataset, protocol, name, uniform, metric, "test", tracking_uri)
            if row:
                rows.append(row)
    header = ["A vs B", "metric", "seeds", "users", "mean A vs B", "A − B per seed", "max t p", "max Wilcoxon p", "verdict"]
    return markdown_table(header, rows, "llrrrrrrl"), notes


def summary_lines(results, dataset: str) -> list[str]:
    """The learned rows ranked by mean test ndcg@10 (split 0), and the best one against EASE (a
    one-sample t-test of its seeds against EASE's seed-independent value)."""
    from scipy import stats

    learned = {row.name: values(results, dataset, "transductive", row.name, "test/ndcg@10") for row in ROWS if row.loss}
    ranked = sorted((name for name, v in learned.items() if v), key=lambda name: -mean_ci(learned[name])[0])
    if not ranked:
        return []
    lines = ["- learned rows by mean test ndcg@10: " + ", ".join(
        f"{ROW[name].label} {mean_ci(learned[name])[0]:.4f} (n={len(learned[name])})" for name in ranked)]
    ease = values(results, dataset, "transductive", "ease", "test/ndcg@10")
    best = learned[ranked[0]]
    if ease and len(best) > 1:
        p = float(stats.ttest_1samp(best, ease[0]).pvalue)
        lines.append(f"- best learned row ({ROW[ranked[0]].label}) − EASE: {mean_ci(best)[0] - ease[0]:+.4f} "
                     f"(one-sample t over its {len(best)} seeds, p = {p_value(p)})")
    return lines


COLOURS = {"ranking": "tab:blue", "bpr": "tab:orange", "softmax": "tab:green", "baseline": "tab:gray"}


def colour(row: Row) -> str:
    return COLOURS["ranking" if row.ranking else row.loss if row.loss in COLOURS else "baseline"]


def chart(results, dataset: str) -> bool:
    panels = []
    for protocol, metric, what in (("transductive", "test/ndcg@10", "test ndcg@10"),
                                   ("inductive", "test_inductive/ndcg@10", "held-out users ndcg@10")):
        bars = [(row.label, v, colour(row)) for row in ROWS
                if (v := values(results, dataset, protocol, row.name, metric))]
        panels.append((f"{dataset}, {protocol}: {what}, mean ± 95% CI over seeds", bars))
    if not any(bars for _, bars in panels):
        return False
    bar_chart(panels, "ndcg@10", png(dataset), "blue: ranking losses, orange: BPR, green: sampled softmax, grey: non-learned")
    return True


def missing_lines(missing: list[Job], full: list[Job]) -> list[str]:
    """The full grid's runs not finished, grouped: `- ml-1m, transductive, seed 1: LightGCN, BPR; ...`
    (`every row of the grid (17)` when none of a group ran)."""
    def groups(jobs_):
        out: dict[tuple[str, str, str], list[str]] = {}
        for job in jobs_:
            t = {k.removeprefix(TAG): v for k, v in job.tags.items()}
            what = f"split seed {t['split_seed']}" if t["split_seed"] != "0" else f"seed {t['seed']}"
            out.setdefault((t["dataset"], t["protocol"], what), []).append(ROW[t["row"]].label)
        return out

    total = groups(full)
    return [
        f"- {d}, {p}, {what}: " + (f"every row of the grid ({len(labels)})" if len(labels) == len(total[(d, p, what)]) else "; ".join(labels))
        for (d, p, what), labels in groups(missing).items()
    ]


def report(results, datasets, caps: dict[str, int], tracking_uri: str, command: str, missing: list[Job] = (), full: list[Job] = ()) -> str:
    parts = [
        f"## Study: recommendation on {', '.join(datasets)}, multi-seed at convergence",
        "",
        f"`{command}` — {machine()}",
        "",
        "Every learned row: 64-d embeddings (LightGCN and NGCF 3 layers), rows of 64 sampled positives + 256 "
        "negatives (1,024 for sampled softmax, temperature 0.1), Adam lr 0.01, L2 1e-4, cosine scores for the "
        "ranking losses and softmax, dot for BPR; SupAP / ROADMAP / Sup-NDCG at τ 0.05, ρ 1 (ROADMAP λ 0.1); PPR "
        "negatives with the sampling defaults (half of each row's negatives hard, drawn from the users' PPR ranking "
        "past its top 100, refreshed every 5 epochs). Early stopping on validation ndcg@20; "
        + ", ".join(f"{d}: patience {PATIENCE[d]}, never before epoch {min(MIN_EPOCHS[d], caps[d])}, epoch cap {caps[d]}"
                    for d in datasets)
        + "; the test metrics are those of the best validation epoch. Seeds vary initialisation and sampling on "
        "split 0; the last column varies the split (seeds 0-2 of the 80/10/10 per-user split, model seed 0). "
        "± is the 95 % t-interval half-width over seeds (t with n−1 degrees of freedom); the non-learned baselines "
        "do not depend on the seed (one run). `to best s` is training + validation time up to the best epoch on "
        "this shared 2-core machine (noisy: other jobs ran at the same time, and the runs of earlier days ran "
        "at load averages up to 15 on slower code, when an ml-100k epoch took 5-8 s against 0.3-0.6 s now; "
        "compare times within a day's runs only). Read `epochs run (best)` with the "
        "metrics: best = cap means the run was still improving when the cap stopped it. The minimum number of "
        "epochs keeps early stopping out of BPR's early plateau (its validation ndcg@20 peaks at epoch 2-3 at the "
        "popularity level and climbs again only after ~20 epochs on ml-1m); a run that ended before it under an "
        "older protocol is run again, one that ran longer is the same run under both.",
    ]
    for dataset in datasets:
        if not any(k[0] == dataset for k in results):
            continue
        parts += ["", f"### {dataset}, transductive (all users known)", "", transductive_table(results, dataset), "",
                  *summary_lines(results, dataset)]
        table, notes = tests_table(results, dataset, tracking_uri)
        parts += ["", f"Paired per-user tests on {dataset} test users (`itemrec compare --a A --b B`: paired t and "
                  "Wilcoxon signed-rank over the users both runs scored), one test per seed, A and B trained with the "
                  "same seed on the same split. Verdict: A better / B better only when every seed has the same sign "
                  "and both tests give p < 0.05 in every seed.", "", *(f"- {n}" for n in notes), "", table]
        if any(k[0] == dataset and k[1] == "inductive" for k in results):
            parts += ["", f"### {dataset}, inductive split (10 % + 10 % of users held out of training)", "",
                      "Known users: the remaining users' own 80/10/10 split (transductive protocol); held-out users: "
                      "embedded from 80 % of their history without retraining, scored on the rest.", "",
                      inductive_table(results, dataset)]
    if missing:
        parts += ["", f"### Not run yet ({len(missing)} runs of the full grid)", "",
                  "The command above resumes the study and runs them:", "", *missing_lines(missing, full)]
    return "\n".join(parts)
