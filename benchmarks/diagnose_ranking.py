"""Why the SupRank losses lose on IR-Benchmark: one change at a time from a base, measured.

The base is `configs/recsys/irb_ranking/health_lightgcn_sup_ndcg.yaml`: Sup-NDCG (τ 0.05, ρ 1,
lr 0.01, each user weighted alike) with LightGCN on Amazon2014-Health in the benchmark's protocol
(cosine scores, batches of 64 users each with its training positives and 1,000 uniform negatives,
at most 200 epochs, validation NDCG@20 every 5 epochs, stopping after 8 validations without a
better one, the best validation epoch tested with the benchmark's evaluation). Each ablation changes one thing (`ABLATIONS`: the temperature τ, the
slope ρ, the learning rate, the weighting of users, positives per row, cosine or dot scores, the
metric surrogated, the calibration term) or is a reference row (SL and SL@20 with their published
settings, Log-DCG), or combines two changes that helped, or is a design that adds SL@K's top-K weight to a ranking surrogate (Log-DCG@20,
with and without the weights' gradient; SL@20 without it; Sup-NDCG@20), or varies the best of them,
Log-DCG@20 centered: its temperature, learning rate and β refresh; PSL's tanh bound inside it; the
rank its weight's gradient changes sign at (`loss.anchor`); PPR hard negatives. Runs log to MLflow (experiment `diagnose_ranking`) with tags naming the
ablation and the seed; a finished run is not run again, so the script resumes where it stopped,
and a run whose training keys changed since is run again, as in `benchmarks.study_losses`.

Finished runs are kept in `benchmarks/records/ranking-diagnosis.jsonl` and written back into an empty
store before anything runs (`benchmarks.records`), so a fresh clone resumes and reports them.
The report, RESULTS.md section "Ranking losses on IR-Benchmark: the diagnosis": one row per
ablation with what it changes, the best validation NDCG@20 and its epoch, test Recall@20 /
NDCG@20 (mean ± 95 % CI over the seeds run) and the change of validation NDCG@20 against the
base; the chart `benchmarks/diagnose_ranking.png` sets validation NDCG@20 side by side.

    python -m benchmarks.diagnose_ranking [--ablations base lr_0.1 ...] [--seeds 0] [--dry-run]
    python -m benchmarks.diagnose_ranking --report-only
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import itemrec.frontends  # noqa: F401  (registers the front ends that configs are validated by)
from benchmarks import records
from benchmarks.harness import (
    ROOT,
    command,
    machine,
    markdown_table,
    parser,
    publish,
    shown,
    writes,
)
from benchmarks.study import (
    TAG,
    Job,
    bar_chart,
    cell,
    finished_runs,
    history,
    mean_ci,
    outdated,
    run_study,
    train_timed,
)

CONFIGS = ROOT / "configs" / "recsys"
BASE = CONFIGS / "irb_ranking" / "health_lightgcn_sup_ndcg.yaml"
LOG_DCG_K = CONFIGS / "irb_ranking" / "health_lightgcn_log_dcg_k20.yaml"
SUP_NDCG_K = CONFIGS / "irb_ranking" / "health_lightgcn_sup_ndcg_k20.yaml"
LAMBDA_K = CONFIGS / "irb_ranking" / "health_lightgcn_lambda_loss_k20.yaml"
STUDY = "ranking-diagnosis"
EXPERIMENT = "diagnose_ranking"
SECTION = "ranking-diagnosis"
TITLE = "Ranking losses on IR-Benchmark: the diagnosis"
PNG = ROOT / "benchmarks" / "diagnose_ranking.png"
SEEDS = (0,)
SHARED = ("train.patience=8",)
"""Every run stops after 8 validations (40 epochs) without a better validation NDCG@20: the
ranking losses peak early, and a run costs what its useful epochs cost."""
SELECT = "val/ndcg_at_20"
DONE = "test/ndcg_at_20"
PER_USER = ("ndcg@20", "recall@20")
"""The per-user test metrics kept in the records (`itemrec compare`'s paired tests read them)."""

ABLATIONS: dict[str, tuple[Path, tuple[str, ...], str]] = {
    "base": (BASE, (), "Sup-NDCG, τ 0.05, ρ 1, lr 0.01, users weighted alike"),
    "defaults": (BASE, ("loss.tau=0.01", "loss.rho=100"), "the SupRank classes' defaults (image retrieval's), τ 0.01, ρ 100"),
    "tau_0.01": (BASE, ("loss.tau=0.01",), "τ 0.01"),
    "tau_0.2": (BASE, ("loss.tau=0.2",), "τ 0.2"),
    "tau_0.5": (BASE, ("loss.tau=0.5",), "τ 0.5"),
    "tau_1": (BASE, ("loss.tau=1.0",), "τ 1"),
    "rho_10": (BASE, ("loss.rho=10",), "ρ 10"),
    "lr_0.1": (BASE, ("train.lr=0.1",), "lr 0.1 (SL's)"),
    "lr_0.001": (BASE, ("train.lr=0.001",), "lr 0.001"),
    "interaction": (BASE, ("loss.weighting=interaction",), "(user, positive) pairs weighted alike, as SL"),
    "positives_16": (BASE, ("sampling.positives_per_row=16",), "16 sampled positives per row, not all"),
    "dot": (BASE, ("train.score=dot",), "dot-product scores"),
    "sup_ap": (BASE, ("loss.name=sup_ap",), "SupAP (the AP surrogate) instead of NDCG's"),
    "roadmap": (BASE, ("loss.name=roadmap",), "ROADMAP: SupAP + the calibration term (λ 0.1)"),
    "tau_0.2_lr_0.001": (BASE, ("loss.tau=0.2", "train.lr=0.001"), "τ 0.2 and lr 0.001 (two changes)"),
    "tau_0.2_interaction": (BASE, ("loss.tau=0.2", "loss.weighting=interaction"), "τ 0.2 and pairs weighted alike (two changes)"),
    "sl": (CONFIGS / "irb" / "health_lightgcn_sl.yaml", (), "reference: SL, τ 0.2, lr 0.1 (published)"),
    "slk20": (CONFIGS / "irb" / "health_lightgcn_slk20.yaml", (), "reference: SL@20 (published settings)"),
    "log_dcg": (CONFIGS / "irb_ranking" / "health_lightgcn_log_dcg.yaml", (), "Log-DCG, T 0.2, lr 0.1"),
    "slk20_detached": (CONFIGS / "irb" / "health_lightgcn_slk20.yaml", ("loss.detach_weights=true",),
                       "SL@20 with its top-K weights detached"),
    "log_dcg_k20": (LOG_DCG_K, (), "Log-DCG@20, SL@20's settings, weights detached"),
    "log_dcg_k20_centered": (LOG_DCG_K, ("loss.centered=true",), "Log-DCG@20, weights with their gradient, term - log log2(2 + K)"),
    "log_dcg_k20_centered_tau_w_1": (LOG_DCG_K, ("loss.centered=true", "loss.tau_w=1.0"),
                                     "Log-DCG@20 centered, a steeper weight, τ_w 1"),
    "log_dcg_k20_centered_tau_w_0.5": (LOG_DCG_K, ("loss.centered=true", "loss.tau_w=0.5"),
                                       "Log-DCG@20 centered, τ_w 0.5"),
    "log_dcg_k20_centered_tau_w_5": (LOG_DCG_K, ("loss.centered=true", "loss.tau_w=5.0"),
                                     "Log-DCG@20 centered, a flatter weight, τ_w 5"),
    "log_dcg_k20_centered_t_0.1": (LOG_DCG_K, ("loss.centered=true", "loss.temperature=0.1"),
                                   "Log-DCG@20 centered, temperature T 0.1"),
    "log_dcg_k20_centered_t_0.3": (LOG_DCG_K, ("loss.centered=true", "loss.temperature=0.3"),
                                   "Log-DCG@20 centered, temperature T 0.3"),
    "log_dcg_k20_centered_t_0.25": (LOG_DCG_K, ("loss.centered=true", "loss.temperature=0.25"),
                                    "Log-DCG@20 centered, temperature T 0.25"),
    "log_dcg_k20_centered_lr_0.05": (LOG_DCG_K, ("loss.centered=true", "train.lr=0.05"),
                                     "Log-DCG@20 centered, lr 0.05"),
    "log_dcg_k20_centered_lr_0.003": (LOG_DCG_K, ("loss.centered=true", "train.lr=0.003"),
                                      "Log-DCG@20 centered, lr 0.003"),
    "log_dcg_k20_centered_refresh_5": (LOG_DCG_K, ("loss.centered=true", "loss.refresh_every=5"),
                                       "Log-DCG@20 centered, β refreshed every 5 epochs"),
    "log_dcg_k20_centered_tanh": (LOG_DCG_K, ("loss.centered=true", "loss.activation=tanh", "loss.temperature=0.1"),
                                  "Log-DCG@20 centered, PSL's tanh bound inside, T 0.1 (c 2)"),
    "log_dcg_k20_centered_tanh_t_0.125": (LOG_DCG_K, ("loss.centered=true", "loss.activation=tanh", "loss.temperature=0.125"),
                                          "Log-DCG@20 centered, PSL's tanh bound inside, T 0.125 (c 2)"),
    "log_dcg_k20_centered_anchor_1": (LOG_DCG_K, ("loss.centered=true", "loss.anchor=1"),
                                      "Log-DCG@20 centered at rank 1 (the weight gives up below it), not K"),
    "log_dcg_k20_centered_anchor_5": (LOG_DCG_K, ("loss.centered=true", "loss.anchor=5"),
                                      "Log-DCG@20 centered at rank 5, not K"),
    "log_dcg_k20_centered_anchor_100": (LOG_DCG_K, ("loss.centered=true", "loss.anchor=100"),
                                        "Log-DCG@20 centered at rank 100, not K"),
    "log_dcg_k20_centered_ppr_0.2": (LOG_DCG_K, ("loss.centered=true", "sampling.negatives=ppr", "sampling.hard_ratio=0.2"),
                                     "Log-DCG@20 centered, 20 % PPR hard negatives (ranks 101-500 of the user's PPR)"),
    "log_dcg_k20_centered_ppr_0.5": (LOG_DCG_K, ("loss.centered=true", "sampling.negatives=ppr", "sampling.hard_ratio=0.5"),
                                     "Log-DCG@20 centered, 50 % PPR hard negatives (ranks 101-500 of the user's PPR)"),
    "log_dcg_k20_centered_positives_above": (LOG_DCG_K, ("loss.centered=true", "loss.positives_above=true"),
                                             "Log-DCG@20 centered, the row's positives above each one counted (DCG's rank)"),
    "log_dcg_k20_centered_softmax_0.25": (LOG_DCG_K, ("loss.centered=true", "loss.softmax_mix=0.25"),
                                          "Log-DCG@20 centered plus 0.25 × SL's term log ρ (offset at rank K likewise)"),
    "log_dcg_k20_centered_softmax_1": (LOG_DCG_K, ("loss.centered=true", "loss.softmax_mix=1.0"),
                                       "Log-DCG@20 centered plus SL's term log ρ (offset at rank K likewise)"),
    "log_dcg_k20_centered_softmax_1000": (LOG_DCG_K, ("loss.centered=true", "loss.softmax_mix=1000"),
                                          "SL@20 centered: 1,000 × SL's term (Adam sees no scale), w (log ρ − log K)"),
    "log_dcg_k20_centered_slk_0.25": (LOG_DCG_K, ("loss.centered=true", "loss.softmax_mix=0.25", "loss.mix_centered=false"),
                                      "Log-DCG@20 centered plus 0.25 × SL@20's own term w log ρ (not centered)"),
    "log_dcg_k20_centered_slk_1": (LOG_DCG_K, ("loss.centered=true", "loss.softmax_mix=1.0", "loss.mix_centered=false"),
                                   "Log-DCG@20 centered plus SL@20's own term w log ρ (not centered)"),
    "sup_ndcg_k20": (SUP_NDCG_K, (), "Sup-NDCG@20: SL@20's top-K weight on Sup-NDCG's gains, τ 0.2, τ_w 2.5"),
    "sup_ndcg_k20_tau_w_0.5": (SUP_NDCG_K, ("loss.tau_w=0.5",), "Sup-NDCG@20 with a sharper top-K weight, τ_w 0.5"),
    "lambda_loss_k20": (LAMBDA_K, (), "LambdaLoss@20: pairs weighted by their NDCG@20 swap, T 0.1, lr 0.01"),
    "lambda_loss_k20_t_0.2": (LAMBDA_K, ("loss.temperature=0.2",), "LambdaLoss@20, a flatter logistic, T 0.2"),
    "lambda_loss_k20_dot": (LAMBDA_K, ("train.score=dot", "loss.temperature=1.0", "train.lr=0.001", "train.weight_decay=1e-6"),
                            "LambdaLoss@20 in BPR's regime: dot scores, T 1, lr 0.001, weight decay 1e-6"),
}
"""name: (config, overrides, what it changes or is)."""


def jobs(ablations: Sequence[str], seeds: Sequence[int]) -> list[Job]:
    """One run per ablation and seed, seed-major."""
    return [Job(EXPERIMENT, {TAG + "name": STUDY, TAG + "ablation": a, TAG + "seed": str(s)}) for s in seeds for a in ablations]


def job_config(job: Job, run_dir: str):
    """The validated config of a run: its ablation's config and overrides, the seed, the experiment."""
    from itemrec.experiment.config import load_config

    path, overrides, _ = ABLATIONS[job.tags[TAG + "ablation"]]
    return load_config(path, [*SHARED, *overrides, f"seed={job.tags[TAG + 'seed']}", f"name={EXPERIMENT}", f"train.run_dir={run_dir}"])


def execute(job: Job, tracking_uri: str, run_dir: str, quiet: bool, train: Callable | None = None) -> str:
    if train is None:
        from itemrec.recsys.frontend import train
    return train_timed(train, job_config(job, run_dir), job, tracking_uri, quiet)


def finished(tracking_uri: str, run_dir: str) -> dict:
    """The finished runs whose ablation still exists with the same training keys."""
    out = {}
    for key, run in finished_runs([EXPERIMENT], STUDY, tracking_uri, DONE).items():
        tags = dict(key)
        if tags.get(TAG + "ablation") in ABLATIONS and not outdated(run, job_config(Job(EXPERIMENT, tags), run_dir)):
            out[key] = run
    return out


def collect(done: dict, tracking_uri: str) -> dict[str, list[dict[str, float]]]:
    """`{ablation: [{"val", "epoch", "recall", "ndcg"} per seed]}`."""
    out: dict[str, list[dict[str, float]]] = {}
    for key, run in done.items():
        tags = dict(key)
        curve = history(run["run_id"], SELECT, tracking_uri)
        epoch, val = max(curve.items(), key=lambda kv: kv[1]) if curve else (math.nan, math.nan)
        out.setdefault(tags[TAG + "ablation"], []).append({
            "val": val, "epoch": epoch, "recall": float(run.get("metrics.test/recall_at_20", math.nan)),
            "ndcg": float(run[f"metrics.{DONE}"]),
        })
    return out


def report(results: dict[str, list[dict[str, float]]], line: str, chart_path: str | None = None) -> str:
    base = mean_ci([r["val"] for r in results.get("base", [])])[0]
    rows = []
    for name, (_, _, what) in ABLATIONS.items():
        runs = results.get(name, [])
        if not runs:
            rows.append([name, what, "0", "not run", "—", "—", "—", "—"])
            continue
        val = [r["val"] for r in runs]
        change = f"{100 * (mean_ci(val)[0] - base) / base:+.0f} %" if base == base and name != "base" else "—"
        rows.append([name, what, str(len(runs)), cell(val), ", ".join(str(int(r["epoch"])) for r in runs),
                     cell([r["recall"] for r in runs]), cell([r["ndcg"] for r in runs]), change])
    header = ["ablation", "what changes", "n", "best val N@20", "best epoch", "test R@20", "test N@20", "val vs base"]
    parts = [f"## {TITLE}", "", f"`{line}` — {machine()}", "",
             f"Base: `{BASE.relative_to(ROOT)}` (Sup-NDCG with LightGCN on Amazon2014-Health, the benchmark's protocol "
             "with batches of 64 users, 1,000 uniform negatives per row, at most 200 epochs, validation NDCG@20 "
             "every 5 epochs, stopping after 8 validations without a better one (every row, the references too), "
             "the best validation epoch tested). Each row changes one thing from the base, or is a "
             "reference row with its own config. Values: mean ± 95 % t-interval over the seeds run (none for one "
             "seed); `val vs base`: the change of the mean best validation NDCG@20 against the base's (each seed carves "
             "its own validation split, so rows over other seeds than the base's compare less closely).",
             "", markdown_table(header, rows, "llrrrrrr")]
    if chart_path:
        parts += ["", f"Chart (best validation NDCG@20 per ablation): `{chart_path}`."]
    return "\n".join(parts)


def chart(results: dict[str, list[dict[str, float]]], path: Path = PNG) -> bool:
    bars = [(name, [r["val"] for r in results[name]], "tab:gray" if name in ("sl", "slk20") else "tab:blue")
            for name in ABLATIONS if results.get(name)]
    if not bars:
        return False
    bar_chart([("Health, LightGCN: best validation NDCG@20", bars)], "NDCG@20", path,
              "blue: ranking-loss ablations, grey: SL and SL@20 (published settings)")
    return True


def arguments():
    out = parser(__doc__, seeds=list(SEEDS), study=True, tracking_uri=f"sqlite:///{ROOT / 'mlflow' / 'study.db'}",
                 run_dir=str(ROOT / "runs"))
    out.add_argument("--ablations", nargs="+", default=list(ABLATIONS), choices=list(ABLATIONS))
    return out


def main(argv: list[str] | None = None, train: Callable | None = None) -> int:
    """The diagnosis; `train` replaces `itemrec.recsys.frontend.train` (tests)."""
    args = arguments().parse_args(argv)
    grid = jobs(args.ablations, args.seeds)
    folder = records.folder_for(args.results)
    records.restore(STUDY, args.tracking_uri, DONE, folder=folder)

    def run(job: Job) -> None:
        execute(job, args.tracking_uri, args.run_dir, args.quiet, train)
        records.save(STUDY, [EXPERIMENT], args.tracking_uri, DONE, per_user=PER_USER, folder=folder)

    done = run_study(grid, args, lambda: finished(args.tracking_uri, args.run_dir), run,
                     lambda job: job_config(job, args.run_dir))  # an invalid override fails before anything trains
    if done is None:
        return 0
    records.save(STUDY, [EXPERIMENT], args.tracking_uri, DONE, per_user=PER_USER, folder=folder)
    results = collect(done, args.tracking_uri)
    drawn = writes(args) and chart(results, PNG)
    publish(SECTION, report(results, command("diagnose_ranking"), shown(PNG) if drawn else None), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
