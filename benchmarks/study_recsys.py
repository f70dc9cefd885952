"""Recommendation study: every loss × model of the grid, several seeds, each run to early stopping.

Rows (uniform negatives unless named): LightGCN and MF × {BPR, sampled softmax, SupAP, ROADMAP,
Sup-NDCG}; LightGCN × {SupAP, ROADMAP} with PPR negatives (on ml-1m also ROADMAP with PPR negatives
past rank 600); NGCF × {BPR, ROADMAP}; EASE, ItemKNN, Pop. Every learned row is `configs/recsys/<ds>_lightgcn_supap_uniform.yaml` with the row's model,
loss, score and negatives (the ranking losses at τ 0.05, ρ 1, ROADMAP λ 0.1; BPR on dot scores;
sampled softmax at temperature 0.1 with 1,024 negatives, as `ml1m_lightgcn_softmax.yaml`); the
baselines are `configs/recsys/<ds>_{ease,itemknn,pop}.yaml`. Each run goes through `itemrec.recsys.train`
(early stopping on validation ndcg@20 with the study's patience, never before `MIN_EPOCHS`, up to
the epoch cap) and logs to MLflow with tags naming the study, dataset, protocol, row, seed and split
seed; a run already finished there is not run again, so the study resumes where it stopped.

Seeds: `--seeds` vary initialisation and sampling on split 0 (`data.split_seed: 0`); the LightGCN
rows (and the baselines, which cost seconds) also run on the splits `--split-seeds` with seed 0.
The inductive protocol (10 % + 10 % of users held out, embedded from 80 % of their history)
runs the same rows on the model seeds. Reported: test metrics as mean ± 95 % t-interval over
seeds, paired per-user tests (`itemrec.experiment.compare.paired_test`: paired t + Wilcoxon) per seed, and
the training + validation time up to the best epoch; each dataset gets its own RESULTS.md section
and `study_recsys_<dataset>.png`, so studying one dataset leaves the other's tables alone.

    python -m benchmarks.study_recsys --datasets ml-100k [--rows ...] [--seeds 0 1 2] [--dry-run]
    python -m benchmarks.study_recsys --report-only      # tables + chart from what is in MLflow
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.results import machine, write_section
from benchmarks.study import (
    TAG,
    WALL,
    Job,
    bar_chart,
    cell,
    finished_runs,
    history,
    markdown_table,
    mean_ci,
    run_jobs,
    seconds_to_best,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs" / "recsys"
STUDY = "recsys"
CHARTS = Path(__file__).resolve().parent  # one bar chart per dataset: study_recsys_<dataset>.png


def png(dataset: str) -> Path:
    return CHARTS / f"study_recsys_{dataset}.png"


def section(dataset: str) -> str:
    """RESULTS.md section of one dataset: a study of one dataset leaves the other's tables alone."""
    return f"study-recsys-{dataset}"
PREFIX = {"ml-100k": "ml100k", "ml-1m": "ml1m"}
PROTOCOLS = ("transductive", "inductive")
KS = ("ndcg@10", "ndcg@20", "recall@10", "recall@20")
SELECT = "val/ndcg_at_20"
DONE = "test/ndcg_at_10"
CAPS = {"ml-100k": 400, "ml-1m": 400}
"""Epoch cap per dataset (early stopping on validation ndcg@20 usually ends a run first). ml-100k
has one batch, so one Adam step, per epoch, ml-1m six: LightGCN + BPR was still improving at a cap of
150 on both (its validation ndcg@20 0.175 and rising at epoch 50 on ml-1m, where the ranking losses
stop within 30-60 epochs)."""
PATIENCE = {"ml-100k": 10, "ml-1m": 10}
MIN_EPOCHS = {"ml-100k": 30, "ml-1m": 30}
"""Early stopping never ends a learned run before this epoch (`train.min_epochs`): BPR's validation
ndcg@20 sits at the popularity level for its first ~20 epochs on ml-1m (6 Adam steps per epoch),
and a patience of 10 ended BPR runs there, at test ndcg@10 0.077."""

RANKING = {"sup_ap": "SupAP", "roadmap": "ROADMAP", "sup_ndcg": "Sup-NDCG"}
LOSSES = {
    "bpr": ({"name": "bpr"}, "dot", {}),
    "softmax": ({"name": "sampled_softmax", "temperature": 0.1}, "cosine", {"negatives_per_row": 1024}),
    "supap": ({"name": "sup_ap", "tau": 0.05, "rho": 1.0}, "cosine", {}),
    "roadmap": ({"name": "roadmap", "tau": 0.05, "rho": 1.0, "lam": 0.1}, "cosine", {}),
    "supndcg": ({"name": "sup_ndcg", "tau": 0.05, "rho": 1.0}, "cosine", {}),
}
LOSS_LABEL = {"bpr": "BPR", "softmax": "sampled softmax", "supap": "SupAP", "roadmap": "ROADMAP", "supndcg": "Sup-NDCG"}
MODEL_LABEL = {"lightgcn": "LightGCN", "mf": "MF", "ngcf": "NGCF", "ease": "EASE", "itemknn": "ItemKNN", "pop": "Pop"}


@dataclass(frozen=True)
class Row:
    """One line of the grid: a model, a loss (None for a baseline) and the negatives."""

    model: str
    loss: str | None = None
    negatives: str = "uniform"
    split_seeds: bool = field(default=False)
    ppr_skip: int | None = None  # PPR negatives: skip this many top-ranked items (default: the sampler's 100)
    datasets: tuple[str, ...] = ("ml-100k", "ml-1m")

    @property
    def name(self) -> str:
        if self.loss is None:
            return self.model
        ppr = "" if self.negatives != "ppr" else "_ppr" if self.ppr_skip is None else f"_ppr{self.ppr_skip}"
        return f"{self.model}_{self.loss}{ppr}"

    @property
    def label(self) -> str:
        if self.loss is None:
            return MODEL_LABEL[self.model]
        ppr = "" if self.negatives != "ppr" else ", PPR" if self.ppr_skip is None else f", PPR skip {self.ppr_skip}"
        return f"{MODEL_LABEL[self.model]}, {LOSS_LABEL[self.loss]}{ppr}"

    @property
    def ranking(self) -> bool:
        return self.loss in ("supap", "roadmap", "supndcg")


ROWS = (
    *(Row("lightgcn", loss, split_seeds=True) for loss in LOSSES),
    *(Row("mf", loss) for loss in LOSSES),
    Row("lightgcn", "supap", "ppr", split_seeds=True),
    Row("lightgcn", "roadmap", "ppr", split_seeds=True),
    # ml-1m's default PPR pool (ranks 101-600) holds 3x the uniform share of held-out positives
    # (benchmarks/ppr_false_negatives.py); ranks 601-1100 hold 1.1x.
    Row("lightgcn", "roadmap", "ppr", ppr_skip=600, datasets=("ml-1m",)),
    Row("ngcf", "bpr"),
    Row("ngcf", "roadmap"),
    *(Row(model, split_seeds=True) for model in ("ease", "itemknn", "pop")),
)
ROW = {row.name: row for row in ROWS}


def experiment(dataset: str) -> str:
    return f"study_recsys_{PREFIX[dataset]}"


def config_dict(
    row: Row, dataset: str, protocol: str, seed: int, split_seed: int, cap: int, patience: int, run_dir: str, min_epochs: int = 1
) -> dict:
    """The raw config of one run (validated by `itemrec.experiment.config.validate`)."""
    from itemrec.experiment.config import read_yaml

    prefix = PREFIX[dataset]
    if row.loss is None:
        raw = read_yaml(CONFIGS / f"{prefix}_{row.model}.yaml")
    else:
        raw = read_yaml(CONFIGS / f"{prefix}_lightgcn_supap_uniform.yaml")
        loss, score, sampling = LOSSES[row.loss]
        raw["model"] = {"name": row.model, "dim": 64, **({"layers": 3} if row.model in ("lightgcn", "ngcf") else {})}
        raw["loss"] = dict(loss)
        raw["sampling"] = {**raw["sampling"], "negatives": row.negatives, **sampling}
        if row.ppr_skip is not None:
            raw["sampling"]["ppr_skip"] = row.ppr_skip
        raw["train"] = {**raw["train"], "score": score, "epochs": cap, "patience": patience,
                        "min_epochs": min(min_epochs, cap), "run_dir": run_dir}
    raw["train"] = {**raw.get("train", {}), "run_dir": run_dir}
    raw["name"] = experiment(dataset)
    raw["seed"] = seed
    raw["data"] = {**raw["data"], "split_seed": split_seed}
    if protocol == "inductive":
        raw["data"] = {**raw["data"], "split": "inductive", "heldout": [0.1, 0.1], "fold_in": 0.8}
    return raw


def jobs(datasets, rows, seeds, split_seeds, protocols) -> list[Job]:
    """The study's runs in the order they run: per dataset, the transductive grid on the model
    seeds, then the split seeds, then the inductive grid."""
    out = []
    for dataset in datasets:
        for protocol in protocols:
            pairs = [(s, 0) for s in seeds]
            if protocol == "transductive":
                pairs += [(0, sp) for sp in split_seeds if sp != 0]
            for seed, split_seed in pairs:
                for name in rows:
                    row = ROW[name]
                    if dataset not in row.datasets or (split_seed != 0 and not row.split_seeds):
                        continue
                    if row.loss is None and seed != seeds[0]:  # baselines do not depend on the seed
                        continue
                    tags = {"name": STUDY, "dataset": dataset, "protocol": protocol, "row": name,
                            "seed": str(seed), "split_seed": str(split_seed)}
                    out.append(Job(experiment(dataset), {TAG + k: v for k, v in tags.items()}))
    return out


def stands(key, run, caps: dict[str, int], tracking_uri: str) -> bool:
    """Whether a finished run is the one the study makes now (`MIN_EPOCHS`, the epoch cap `caps`):
    a baseline; a learned run that early stopping ended at or after the minimum (neither a higher
    cap nor a lower minimum would have changed it: training is deterministic under its seeds); or
    one that ran the whole current cap. A run that stopped before the minimum, or ran to a
    different cap, is run again."""
    t = {k.removeprefix(TAG): v for k, v in key}
    if t.get("row") not in ROW or ROW[t["row"]].loss is None:
        return True
    cap = caps[t["dataset"]]
    ran = max(history(run["run_id"], "epoch_seconds", tracking_uri), default=0)
    logged = run.get("params.train.epochs")
    its_cap = int(logged) if isinstance(logged, str) else 0  # params are strings; NaN where none was logged
    if ran >= its_cap:  # the cap ended it
        return its_cap == cap
    return ran >= min(MIN_EPOCHS[t["dataset"]], cap)


def execute(job: Job, tracking_uri: str, run_dir: str, caps: dict[str, int], quiet: bool) -> None:
    from itemrec.experiment.config import validate
    from itemrec.recsys.train import train

    t = {k.removeprefix(TAG): v for k, v in job.tags.items()}
    raw = config_dict(ROW[t["row"]], t["dataset"], t["protocol"], int(t["seed"]), int(t["split_seed"]),
                      caps[t["dataset"]], PATIENCE[t["dataset"]], run_dir, MIN_EPOCHS[t["dataset"]])
    config = validate(raw, f"study row {t['row']}")
    started = time.perf_counter()
    run_id = train(config, tracking_uri=tracking_uri, quiet=quiet, tags=job.tags)
    from mlflow.tracking import MlflowClient

    MlflowClient().log_metric(run_id, WALL, time.perf_counter() - started)


# --------------------------------------------------------------------------- the report


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


def p_value(p: float) -> str:
    """`0.013`, `2.5e-30`; a p-value below the smallest float prints as `< 1e-300`, not `0`."""
    return f"{p:.2g}" if p > 0 else "< 1e-300"


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
    return markdown_table(header, body, [False] + [True] * (len(header) - 1))


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
    return markdown_table(header, body, [False] + [True] * (len(header) - 1))


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
        ranking = [f"{model}_{loss}" for loss in ("supap", "roadmap", "supndcg") if f"{model}_{loss}" in ROW]
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
    return markdown_table(header, rows, [False, False, True, True, True, True, True, True, False]), notes


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
                     f"(one-sample t over its {len(best)} seeds, p = {p:.2g})")
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
        parts += ["", f"### Not run in this session ({len(missing)} runs of the full grid)", "",
                  "The command above resumes the study and runs them:", "", *missing_lines(missing, full)]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-1m"], choices=list(PREFIX))
    parser.add_argument("--rows", nargs="+", default=[r.name for r in ROWS], choices=[r.name for r in ROWS], metavar="ROW")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="model / sampling seeds (split 0)")
    parser.add_argument("--split-seeds", nargs="*", type=int, default=[0, 1, 2], help="split seeds of the LightGCN rows and baselines")
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    parser.add_argument("--cap", type=int, nargs="*", default=None, help="epoch cap per dataset (in --datasets order)")
    parser.add_argument("--tracking-uri", default=f"sqlite:///{ROOT / 'mlflow' / 'study.db'}")
    parser.add_argument("--run-dir", default=str(ROOT / "runs"))
    parser.add_argument("--dry-run", action="store_true", help="list the runs that would run, run nothing")
    parser.add_argument("--report-only", action="store_true", help="write the tables and chart, run nothing")
    parser.add_argument("--no-write", action="store_true", help="print the report, leave RESULTS.md and the PNG alone")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    caps = dict(CAPS)
    if args.cap:
        if len(args.cap) != len(args.datasets):
            parser.error("--cap takes one epoch cap per dataset of --datasets")
        caps.update(zip(args.datasets, args.cap))
    grid = jobs(args.datasets, args.rows, args.seeds, args.split_seeds, args.protocols)
    def finished() -> dict:
        runs = finished_runs([experiment(d) for d in args.datasets], STUDY, args.tracking_uri, DONE)
        return {key: run for key, run in runs.items() if stands(key, run, caps, args.tracking_uri)}

    done = finished()
    if not args.report_only:
        run_jobs(grid, done, lambda job: execute(job, args.tracking_uri, args.run_dir, caps, args.quiet), args.dry_run)
        if args.dry_run:
            return 0
        done = finished()
    results = collect(done, args.tracking_uri)
    full = jobs(args.datasets, [r.name for r in ROWS], [0, 1, 2], [0, 1, 2], list(PROTOCOLS))
    for dataset in args.datasets:  # one section and one chart per dataset
        command = f"python -m benchmarks.study_recsys --datasets {dataset}" + (
            f" --cap {caps[dataset]}" if args.cap else "")
        missing = [j for j in full if j.key not in done and j.tags[TAG + "dataset"] == dataset]
        body = report(results, [dataset], caps, args.tracking_uri, command, missing,
                      [j for j in full if j.tags[TAG + "dataset"] == dataset])
        print(body)
        if args.no_write or not any(k[0] == dataset for k in results):
            continue
        if chart(results, dataset):
            body += f"\n\nBar chart (test ndcg@10, mean with 95 % CI whiskers): `benchmarks/{png(dataset).name}`."
        write_section(section(dataset), body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
