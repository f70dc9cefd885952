"""Reaching EASE on ml-1m: the best ranking-loss config over training seeds, against EASE, with error bars.

Trains `configs/recsys/ml1m_best_ranking_loss.yaml` with each of `--seeds` (initialisation,
interaction dropout and sampling; `data.split_seed: 0`, the split EASE is fitted on) to early
stopping, and EASE once (`configs/recsys/ml1m_ease.yaml`). `--variants` adds screened settings
(`VARIANTS`: config overrides) on the same split. Every run goes through `itemrec.recsys.train`, logs to
MLflow with `study.*` tags (study, variant, seed) and is not rerun once finished there, so the
script resumes where it stopped.

Written to RESULTS.md (section `recsys-ease-seeds`): per run the best validation ndcg@10 / recall@10,
the test metrics of the best-validation checkpoint, epochs and the median seconds per training
epoch; per variant the test mean ± 95 % t-interval over seeds and its gap to EASE; paired per-user
tests against EASE (`itemrec.experiment.compare.paired_test`: paired t + Wilcoxon), per seed and for the
per-user mean over the seeds; validation ndcg@10 at matched epochs for the variants.

    python -m benchmarks.ease_gap                      # seeds 0 1 2 of the config + EASE
    python -m benchmarks.ease_gap --variants constant_lr               # the config before lr_decay
    python -m benchmarks.ease_gap --variants negatives_2048 --seeds 0
    python -m benchmarks.ease_gap --report-only
    python -m benchmarks.ease_gap --dry-run                   # list the runs that would run
"""

from __future__ import annotations

import inspect
import math
import statistics
import sys

import numpy as np

import itemrec.frontends  # noqa: F401  (registers the front ends that configs are validated by)
from benchmarks.harness import (
    ROOT,
    command,
    machine,
    markdown_table,
    p_value,
    parser,
    publish,
)
from benchmarks.study import TAG, Job, finished_runs, history, mean_ci, run_study

CONFIG = ROOT / "configs" / "recsys" / "ml1m_best_ranking_loss.yaml"
EASE_CONFIG = ROOT / "configs" / "recsys" / "ml1m_ease.yaml"
STUDY = "ease_gap"
SECTION = "recsys-ease-seeds"
DONE = "test/ndcg_at_10"
METRICS = ("ndcg@10", "recall@10")
VARIANTS = {
    "config": [],
    "constant_lr": ["train.lr_decay=1"],
    "negatives_2048": ["train.lr_decay=1", "sampling.negatives_per_row=2048"],
}
"""The config and the settings screened on validation against it: name -> config overrides.
`constant_lr` is the config before its learning-rate decay (0.92 per epoch) was chosen."""
MATCHED = (5, 10, 15, 20, 25, 30)
"""Epochs at which the variants' validation ndcg@10 is compared."""


def key(metric: str) -> str:
    """MLflow's name of a metric: `ndcg@10` -> `ndcg_at_10`."""
    return metric.replace("@", "_at_")


def jobs(variants, seeds) -> list[Job]:
    out = [Job("ml1m_ease", {TAG + "name": STUDY, TAG + "variant": "ease", TAG + "seed": "0"})]
    for variant in variants:
        for seed in seeds:
            out.append(Job(CONFIG.stem, {TAG + "name": STUDY, TAG + "variant": variant, TAG + "seed": str(seed)}))
    return out


def execute(job: Job, tracking_uri: str | None, quiet: bool) -> None:
    from itemrec.experiment.config import load_config
    from itemrec.recsys.frontend import train

    variant, seed = job.tags[TAG + "variant"], int(job.tags[TAG + "seed"])
    if variant == "ease":
        config = load_config(EASE_CONFIG)
    else:
        config = load_config(CONFIG, [*VARIANTS[variant], f"seed={seed}", "data.split_seed=0"])
    train(config, tracking_uri=tracking_uri, quiet=quiet, tags=job.tags)


def pooled_paired(seed_runs: list[np.ndarray], ease: np.ndarray) -> tuple[float, float, float]:
    """Paired test of the per-user mean over seeds against EASE, over the same users in the same
    order: `(mean difference, paired t p-value, Wilcoxon p-value)`; `seed_runs` are `[users]` arrays."""
    from itemrec.experiment.compare import paired_pvalues

    pooled = np.mean(np.stack(seed_runs).astype(np.float64), axis=0)
    t_p, w_p = paired_pvalues(pooled, ease)
    return float((pooled - ease).mean()), t_p, w_p


def ease_val(run_id: str, tracking_uri: str | None) -> dict[str, float]:
    """EASE's validation metrics (a baseline run logs only its test metrics)."""
    from itemrec.experiment.checkpoint import resolve_checkpoint
    from itemrec.experiment.runtime import progress
    from itemrec.recsys.evaluate import cosine_scores, evaluate
    from itemrec.recsys.pipeline import restore

    state, _ = resolve_checkpoint(run_id, tracking_uri)
    config, data, model = restore(state, run_id)
    with progress() as bar:
        result = evaluate(model, data, "val", "transductive", config.eval.ks, cosine_scores(config, model), config.eval.batch_users, bar)
    return result.metrics


def report(done: dict, tracking_uri: str | None, command: str) -> str:
    import polars as pl

    from itemrec.experiment.compare import paired_test, per_user

    runs = {}
    for tags, run in done.items():
        t = {k.removeprefix(TAG): v for k, v in tags}
        if t.get("name") == STUDY:
            runs[(t["variant"], int(t["seed"]))] = run
    if ("ease", 0) not in runs:
        return "EASE has not run yet."
    ease_run = runs[("ease", 0)]["run_id"]
    ease_test = {m: float(runs[("ease", 0)][f"metrics.test/{key(m)}"]) for m in METRICS}
    ease_valm = ease_val(ease_run, tracking_uri)
    lines = [
        f"`{command}` — {machine()}",
        "",
        f"Each row is `itemrec train {CONFIG.relative_to(ROOT)} seed=S data.split_seed=0` (plus the variant's "
        "overrides) to early stopping on validation ndcg@10 (patience 5, cap 60 epochs); test metrics are "
        "those of the best-validation epoch. s / epoch: median training time of an epoch (validation "
        "excluded), one torch thread, on a machine shared with other jobs.",
        "",
    ]
    from itemrec.experiment.config import load_config
    from itemrec.recsys.models import MODELS

    spec = load_config(EASE_CONFIG).model
    lam = (spec.model_extra or {}).get("lam", inspect.signature(MODELS["ease"]).parameters["lam"].default)
    rows = [[f"EASE (λ {lam:g}), closed form", "—", "fit", f"{ease_valm['ndcg@10']:.4f}", f"{ease_valm['recall@10']:.4f}",
             f"{ease_test['ndcg@10']:.4f}", f"{ease_test['recall@10']:.4f}", "—"]]
    curves, per_variant = {}, {}
    for (variant, seed), run in sorted(runs.items()):
        if variant == "ease":
            continue
        val = history(run["run_id"], f"val/{key('ndcg@10')}", tracking_uri)
        val_recall = history(run["run_id"], f"val/{key('recall@10')}", tracking_uri)
        seconds = history(run["run_id"], "epoch_seconds", tracking_uri)
        best = max(val, key=lambda step: (val[step], -step))
        curves[(variant, seed)] = val
        test = {m: float(run[f"metrics.test/{key(m)}"]) for m in METRICS}
        per_variant.setdefault(variant, []).append((seed, run["run_id"], test))
        rows.append([variant, str(seed), f"{max(val)} ({best})", f"{val[best]:.4f}", f"{val_recall[best]:.4f}",
                     f"{test['ndcg@10']:.4f}", f"{test['recall@10']:.4f}", f"{statistics.median(seconds.values()):.0f}"])
    lines += [markdown_table(["run", "seed", "epochs (best)", "val ndcg@10", "val recall@10", "test ndcg@10",
                              "test recall@10", "s / epoch"], rows), ""]

    summary = []
    for variant, seeds in per_variant.items():
        cells = [variant, str(len(seeds))]
        for m in METRICS:
            mean, half = mean_ci([test[m] for _, _, test in seeds])
            cells.append(f"{mean:.4f} ± {half:.4f}" if not math.isnan(half) else f"{mean:.4f}")
            cells.append(f"{mean - ease_test[m]:+.4f}")
        summary.append(cells)
    lines += ["Test, mean ± 95 % t-interval over the seeds (the interval covers training randomness on this "
              "one split; EASE is deterministic):", "",
              markdown_table(["variant", "seeds", "ndcg@10", "vs EASE", "recall@10", "vs EASE"], summary), ""]

    tests = []
    ease_users = per_user(ease_run, "test", tracking_uri)
    for variant, seeds in per_variant.items():
        for m in METRICS:
            for seed, run_id, _ in seeds:
                t = paired_test(run_id, ease_run, m, "test", tracking_uri)
                tests.append([variant, f"seed {seed}", m, f"{t.users:,}", f"{t.mean_a:.4f} vs {t.mean_b:.4f}",
                              f"{t.diff:+.4f} ({t.ci[0]:+.4f} .. {t.ci[1]:+.4f})", p_value(t.t_pvalue), p_value(t.wilcoxon_pvalue)])
            if len(seeds) > 1:
                frames = [per_user(run_id, "test", tracking_uri).select("user", pl.col(m).alias(str(i)))
                          for i, (_, run_id, _) in enumerate(seeds)]
                joined = ease_users.select("user", pl.col(m).alias("ease"))
                for frame in frames:
                    joined = joined.join(frame, on="user")
                diff, t_p, w_p = pooled_paired([joined[str(i)].to_numpy() for i in range(len(frames))], joined["ease"].to_numpy())
                mean_seeds = float(np.mean([joined[str(i)].to_numpy().mean() for i in range(len(frames))]))
                tests.append([variant, f"mean of {len(seeds)} seeds per user", m, f"{joined.height:,}",
                              f"{mean_seeds:.4f} vs {joined['ease'].mean():.4f}", f"{diff:+.4f}", p_value(t_p), p_value(w_p)])
    lines += ["Paired per-user tests against EASE on the test users (A = the ranking-loss run, B = EASE; "
              "difference with its 95 % bootstrap interval over users):", "",
              markdown_table(["variant", "A", "metric", "users", "A vs B", "A − B (95 % CI)", "paired t p", "Wilcoxon p"], tests), ""]

    if len(per_variant) > 1:
        matched = []
        for (variant, seed), val in sorted(curves.items()):
            matched.append([variant, str(seed), *(f"{val[e]:.4f}" if e in val else "—" for e in MATCHED),
                            f"{max(val.values()):.4f}"])
        lines += ["Validation ndcg@10 at matched epochs (choices are made here, never on test):", "",
                  markdown_table(["variant", "seed", *(f"epoch {e}" for e in MATCHED), "best"], matched), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    arguments = parser(__doc__, seeds=[0, 1, 2], study=True)
    arguments.add_argument("--variants", nargs="+", default=["config"], choices=list(VARIANTS))
    args = arguments.parse_args(argv)
    experiments = ["ml1m_ease", CONFIG.stem]
    done = run_study(jobs(args.variants, args.seeds), args, lambda: finished_runs(experiments, STUDY, args.tracking_uri, DONE),
                     lambda job: execute(job, args.tracking_uri, args.quiet))
    if done is None:
        return 0
    publish(SECTION, report(done, args.tracking_uri, command("ease_gap")), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
