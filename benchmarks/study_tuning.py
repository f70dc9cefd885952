"""Every recommendation loss tuned with the same budget on validation, then its best setting tested
over seeds: the fair comparison on IR-Benchmark.

A cell is (dataset, model, loss): Health and Electronic with MF and LightGCN, Gowalla with LightGCN;
the benchmark's losses (BPR, SL, BSL, PSL, LLPAUC, SL@20), the SupRank family (SupAP, ROADMAP,
Sup-NDCG, Smooth-AP, Sup-R@20), Log-DCG@20 centered and Log-DCG@20 + SL@20. Each cell's protocol is the loss study's
(`benchmarks.study_losses`: the benchmark's split with 10 % of each user's training rows as
validation, cosine scores and 1,000 uniform negatives per row, dot scores and pair batches for BPR).

1. Tuning. `itemrec tune` (Optuna, TPE sampler seeded, median pruning on the validation NDCG@20 of
   every validation) searches the grid `GRID` (lr {0.1, 0.01, 0.001} × weight decay {0, 1e-4, 1e-5,
   1e-6}) × the loss's own keys (`LOSSES`), `N_TRIALS` trials for every loss, each trial stopping
   after 8 validations without a better one, none pruned before epoch `WARMUP`. Validation only: test metrics of trials are never read.
   Each cell's study lives in an Optuna storage (default `mlflow/tuning.db`); its finished trials
   are kept in `benchmarks/records/tuning-trials.jsonl` and written back into a storage that lacks
   them, so the study resumes on a fresh clone where it stopped.
2. Test. Once a cell is tuned, and before the next cell is, the best trial's setting trains with seeds 0, 1, 2 in the loss study's full protocol (200
   epochs, the best validation epoch tested); runs log to MLflow (`study_tuning_<dataset>`, tags
   naming the cell and seed) and are kept in `benchmarks/records/tuning.jsonl`.

The report, RESULTS.md section "Every loss tuned alike (IR-Benchmark)": per dataset and model one
row per loss with the published value (Table 2 of the SL@K paper, where the loss is there), the
setting found, its trials (complete / pruned) and best validation NDCG@20, and test Recall@20 /
NDCG@20 (mean ± 95 % t-interval over the seeds run); the CPU time of the tuning and of the test
runs; the chart `benchmarks/study_tuning.png`.

    python -m benchmarks.study_tuning [--datasets health] [--models lightgcn] [--losses sl log_dcg_k20]
        [--trials 16] [--seeds 0 1 2] [--storage sqlite:///...] [--dry-run | --report-only]
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import yaml

import itemrec.frontends  # noqa: F401  (registers the front ends that configs are validated by)
from benchmarks import records
from benchmarks import study_losses as sl
from benchmarks.harness import (
    ROOT,
    command,
    machine,
    markdown_table,
    p_value,
    parser,
    publish,
    shown,
    writes,
)
from benchmarks.study import TAG, WALL, Job, bar_chart, cell, finished_runs, run_study, train_timed

STUDY = "tuning"
SECTION = "study-tuning"
TITLE = "Every loss tuned alike (IR-Benchmark)"
PNG = ROOT / "benchmarks" / "study_tuning.png"
TRIALS = "tuning-trials"
"""The records file of the studies' finished trials (`benchmarks/records/tuning-trials.jsonl`)."""
DONE = "test/ndcg_at_20"
PER_USER = ("ndcg@20",)
"""The per-user test metric the records keep, for the paired tests."""
SECONDS = "seconds"
"""The user attribute of a restored trial: the seconds it ran where it ran."""
N_TRIALS = 16
SEEDS = (0, 1, 2)
CELL_OPTIONS = ("--datasets", "--models", "--losses")
"""The options `benchmarks.side_by_side` splits into one process each: a loss is tuned once, and
its best setting then tested with every seed in that process."""
CELLS = (("health", "mf"), ("health", "lightgcn"), ("electronic", "mf"), ("electronic", "lightgcn"),
         ("gowalla", "lightgcn"))
GRID = {"train.lr": [0.1, 0.01, 0.001], "train.weight_decay": [0.0, 1e-4, 1e-5, 1e-6]}
"""The grid every loss shares (the benchmark's); each loss adds its own keys."""
WARMUP = 25
"""No trial is pruned before epoch 25 (5 validations): a low learning rate starts slowly."""
TRIAL_OVERRIDES = ("train.patience=8",)
"""A trial stops after 8 validations (40 epochs) without a better validation NDCG@20."""
SUPRANK = {"loss.tau": [0.01, 0.05, 0.2, 0.5], "loss.rho": [1.0, 10.0, 100.0]}


class Tuned(NamedTuple):
    """A loss of the study: its label, the loss-study config it starts from (`<dataset>_<model>_<base>`),
    the loss section replacing that config's (None: kept) and its own searched keys."""

    label: str
    base: str
    loss: dict | None
    space: dict[str, list]


LOG_DCG_K20 = {"name": "log_dcg", "k": 20, "centered": True, "refresh_every": 20, "quantile_negatives": 1000}
LOG_DCG_SPACE = {"loss.temperature": [0.1, 0.2, 0.3], "loss.tau_w": [1.0, 2.5, 5.0]}
"""Log-DCG@20 centered's fixed keys and searched space, shared by its variant with SL@20's term."""

LOSSES: dict[str, Tuned] = {
    "bpr": Tuned("BPR", "bpr", None, {}),
    "sl": Tuned("SL", "sl", None, {"loss.temperature": [0.05, 0.1, 0.2, 0.5]}),
    "bsl": Tuned("BSL", "bsl", None, {"loss.tau1": [0.05, 0.1, 0.2, 0.5], "loss.tau2": [0.05, 0.1, 0.2, 0.5]}),
    "psl": Tuned("PSL", "psl", None, {"loss.tau": [0.025, 0.05, 0.1, 0.2]}),
    "llpauc": Tuned("LLPAUC", "llpauc", None, {"loss.alpha": [0.3, 0.5, 0.7], "loss.beta": [0.01, 0.1]}),
    "slk20": Tuned("SL@20", "slk20", None, {"loss.tau_d": [0.1, 0.2], "loss.tau_w": [1.0, 2.5, 5.0],
                                            "loss.refresh_every": [5, 20]}),
    "supap": Tuned("SupAP", "sl", {"name": "sup_ap"}, SUPRANK),
    "roadmap": Tuned("ROADMAP", "sl", {"name": "roadmap"}, SUPRANK),
    "sup_ndcg": Tuned("Sup-NDCG", "sl", {"name": "sup_ndcg"}, SUPRANK),
    "smooth_ap": Tuned("Smooth-AP", "sl", {"name": "smooth_ap"}, {"loss.tau": [0.01, 0.05, 0.2, 0.5]}),
    "sup_recall": Tuned("Sup-R@20", "sl", {"name": "sup_recall_at_k", "ks": [20]}, SUPRANK),
    "log_dcg_k20": Tuned("Log-DCG@20 centered", "sl", LOG_DCG_K20, LOG_DCG_SPACE),
    "log_dcg_slk": Tuned("Log-DCG@20 + SL@20", "sl", {**LOG_DCG_K20, "softmax_mix": 1.0, "mix_centered": False},
                         LOG_DCG_SPACE),
}


# --------------------------------------------------------------------------- the cells


def flow(value) -> str:
    """A value as one line of YAML (an override's value is read as YAML: JSON's `1e-05` would be a string)."""
    return yaml.safe_dump(value, default_flow_style=True, width=1 << 20).strip()


def study_name(dataset: str, model: str, loss: str) -> str:
    return f"tuning_{dataset}_{model}_{loss}"


def space(loss: str) -> dict[str, dict]:
    """The `tune.space` of a loss: the shared grid and its own keys, every one categorical."""
    return {key: {"type": "categorical", "choices": choices} for key, choices in {**GRID, **LOSSES[loss].space}.items()}


def base(dataset: str, model: str, loss: str, n_trials: int = N_TRIALS) -> tuple[Path, list[str]]:
    """The config a cell starts from and the overrides that make it this cell's: its loss section,
    its name, and the `tune` section (metric validation NDCG@20, TPE, median pruning)."""
    tuned = LOSSES[loss]
    overrides = [f"name={study_name(dataset, model, loss)}"]
    if tuned.loss is not None:
        overrides.append(f"loss={flow(tuned.loss)}")
    section = {"metric": "ndcg@20", "direction": "maximize", "n_trials": n_trials, "sampler": "tpe",
               "pruner": "median", "warmup_epochs": WARMUP, "space": space(loss)}
    overrides.append(f"tune={flow(section)}")
    return sl.config_path(dataset, model, tuned.base), overrides


def cells(datasets: Sequence[str], models: Sequence[str], losses: Sequence[str]) -> list[tuple[str, str, str]]:
    return [(d, m, n) for d, m in CELLS if d in datasets and m in models for n in losses]


def experiment(dataset: str) -> str:
    return f"study_tuning_{dataset}"


def test_jobs(grid: Sequence[tuple[str, str, str]], seeds: Sequence[int]) -> list[Job]:
    """The test runs of the tuned cells, seed-major."""
    return [Job(experiment(d), {TAG + "name": STUDY, TAG + "dataset": d, TAG + "model": m, TAG + "loss": n,
                                TAG + "seed": str(s)}) for s in seeds for d, m, n in grid]


def unpack(job: Job) -> tuple[str, str, str, int]:
    t = job.tags
    return t[TAG + "dataset"], t[TAG + "model"], t[TAG + "loss"], int(t[TAG + "seed"])


# --------------------------------------------------------------------------- the trials, kept and restored


def trial_lines(study) -> list[dict]:
    """The finished (complete or pruned) trials of an Optuna study as JSON-ready records."""
    import optuna

    out = []
    for t in study.trials:
        if t.state not in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED):
            continue
        out.append({"study": study.study_name, "number": t.number, "state": t.state.name, "params": t.params,
                    "value": t.value, "intermediate": {str(k): v for k, v in t.intermediate_values.items()},
                    "seconds": t.user_attrs.get(SECONDS, (t.datetime_complete - t.datetime_start).total_seconds())})
    return out


def save_trials(study, folder: Path) -> None:
    """Merge the study's finished trials into `folder/tuning-trials.jsonl` (one line each)."""
    path = folder / f"{TRIALS}.jsonl"
    kept = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    kept = [r for r in kept if r["study"] != study.study_name]
    kept += trial_lines(study)
    folder.mkdir(parents=True, exist_ok=True)
    records.write_atomically(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))


def kept_trials(folder: Path, name: str) -> list[dict]:
    path = folder / f"{TRIALS}.jsonl"
    if not path.is_file():
        return []
    return sorted((r for r in map(json.loads, path.read_text().splitlines()) if r["study"] == name),
                  key=lambda r: r["number"])


def restore_trials(study, spec, kept: list[dict]) -> int:
    """Add the kept trials a study lacks (a fresh storage), in their order; how many were added."""
    import optuna

    missing = kept[len(study.trials):]
    if not missing:
        return 0
    distributions = {key: optuna.distributions.CategoricalDistribution(p.choices) for key, p in spec.space.items()}
    for record in missing:
        state = optuna.trial.TrialState[record["state"]]
        study.add_trial(optuna.trial.create_trial(
            state=state, params=record["params"], distributions=distributions,
            value=record["value"] if state == optuna.trial.TrialState.COMPLETE else None,
            intermediate_values={int(k): v for k, v in record["intermediate"].items()},
            user_attrs={SECONDS: record["seconds"]},  # what the trial took where it ran
        ))
    return len(missing)


def tune_cell(dataset: str, model: str, loss: str, args, folder: Path, tune: Callable | None = None) -> dict:
    """Restore the cell's kept trials into the storage, run its study up to `args.trials` trials,
    keeping the trials in the records after each one (an interrupted study loses at most the trial
    it was running); the study's summary."""
    from itemrec.experiment import tune as tuning
    from itemrec.experiment.config import load_config

    path, overrides = base(dataset, model, loss, args.trials)
    name = study_name(dataset, model, loss)
    spec = load_config(path, overrides).tune
    study, _ = tuning.open_study(args.storage, name, spec, 0)
    kept = kept_trials(folder, name)
    if restore_trials(study, spec, kept):
        print(f"{name}: {len(kept)} trials restored from the records")
    summary: dict = {}
    for total in range(min(len(study.trials) + 1, args.trials), args.trials + 1):  # one trial at a time, each kept
        summary = (tune or tuning.tune)(path, [*TRIAL_OVERRIDES, *overrides], storage=args.storage, study_name=name,
                                        n_trials=total, tracking_uri=args.tracking_uri, summary=total == args.trials)
        save_trials(tuning.open_study(args.storage, name, spec, 0)[0], folder)
    return summary


def best_params(folder: Path, name: str) -> dict | None:
    """The best complete trial's values among the kept trials; None before one completed."""
    complete = [r for r in kept_trials(folder, name) if r["state"] == "COMPLETE"]
    return max(complete, key=lambda r: r["value"])["params"] if complete else None


def test_config(job: Job, run_dir: str, folder: Path):
    """A test run's config: the cell's base, its best setting, the seed, the loss study's protocol."""
    from itemrec.experiment.config import load_config

    dataset, model, loss, seed = unpack(job)
    path, overrides = base(dataset, model, loss)
    found = best_params(folder, study_name(dataset, model, loss))
    assert found is not None, f"{job.describe()}: its study has no complete trial"
    keep = [o for o in overrides if not o.startswith(("tune=", "name="))]
    return load_config(path, [*keep, *(f"{k}={flow(v)}" for k, v in found.items()), f"seed={seed}",
                              f"name={job.experiment}", f"train.run_dir={run_dir}"])


def execute(job: Job, args, folder: Path, train: Callable | None = None) -> str:
    if train is None:
        from itemrec.recsys.frontend import train
    return train_timed(train, test_config(job, args.run_dir, folder), job, args.tracking_uri, args.quiet)


# --------------------------------------------------------------------------- the report


class Tested(NamedTuple):
    """A finished test run: its test Recall@20 and NDCG@20, wall seconds and run id."""

    recall: float
    ndcg: float
    wall: float
    run_id: str


def collect(done: dict) -> dict[tuple[str, str, str, int], Tested]:
    """`{(dataset, model, loss, seed): Tested}` of the finished test runs."""
    out = {}
    for key, run in done.items():
        t = {k.removeprefix(TAG): v for k, v in key}
        out[(t["dataset"], t["model"], t["loss"], int(t["seed"]))] = Tested(
            float(run.get("metrics.test/recall_at_20", math.nan)), float(run[f"metrics.{DONE}"]),
            float(run.get(f"metrics.{WALL}", math.nan)), run["run_id"])
    return out


def time_line(tuning_seconds: float, trials: int, results: dict) -> str:
    """The study's CPU time: the trials', and the test runs' whose wall time was logged (a run
    resumed from its checkpoint has none: the calls before it went with their processes)."""
    timed = [r.wall for r in results.values() if math.isfinite(r.wall)]
    untimed = len(results) - len(timed)
    note = f", {untimed} of them resumed and not timed" if untimed else ""
    return (f"CPU time: {tuning_seconds / 3600:.1f} h of tuning ({trials} trials), {sum(timed) / 3600:.1f} h of "
            f"test runs ({len(results)} runs{note}); one process on one core each.")


RANKING = ("log_dcg_k20", "log_dcg_slk")
"""The ranking losses the paired tests set against SL@20 and SL."""


def paired(results: dict, tracking_uri: str) -> list[list[str]]:
    """Rows of paired per-user tests of test NDCG@20, each of `RANKING` minus SL@20 and minus SL, per
    dataset, model and seed where both ran: mean difference, t-test p, users."""
    from itemrec.experiment.compare import paired_test

    rows = []
    for (d, m, loss, seed), ours in sorted(results.items()):
        for other in ("slk20", "sl") if loss in RANKING else ():
            theirs = results.get((d, m, other, seed))
            if theirs:
                test = paired_test(ours.run_id, theirs.run_id, "ndcg@20", "test", tracking_uri)
                rows.append([f"{sl.DATASETS[d]}, {sl.MODELS[m]}", str(seed), f"{LOSSES[loss].label} − {LOSSES[other].label}",
                             f"{test.diff:+.4f}", p_value(test.t_pvalue), f"{test.users:,}"])
    return rows


def setting(params: dict) -> str:
    """`lr 0.01, wd 0, temperature 0.2`: a best setting, briefly."""
    short = {"train.lr": "lr", "train.weight_decay": "wd"}
    keys = sorted(params, key=lambda k: (not k.startswith("train."), k))  # lr, wd, then the loss's keys
    return ", ".join(f"{short.get(k, k.removeprefix('loss.'))} {params[k]:g}" if isinstance(params[k], float) else
                     f"{short.get(k, k.removeprefix('loss.'))} {params[k]}" for k in keys)


def report(results: dict, folder: Path, grid: Sequence[tuple[str, str, str]], line: str, n_trials: int = N_TRIALS,
           chart_path: str | None = None, tests: Sequence[list[str]] = ()) -> str:
    references = sl.published()
    header = ["loss", "published N@20", "best setting (validation)", "trials (complete / pruned)",
              "best val N@20", "n", "test R@20", "test N@20"]
    tuning_seconds = 0.0
    parts = [f"## {TITLE}", "", f"`{line}` — {machine()}", "",
             f"Each loss searched by `itemrec tune` on validation NDCG@20 with the same budget, {n_trials} trials "
             f"(TPE, median pruning at every validation from epoch {WARMUP} on, a trial stopping after 8 validations without a better "
             "one), over lr {0.1, 0.01, 0.001} × weight decay {0, 1e-4, 1e-5, 1e-6} × the loss's own keys "
             "(`benchmarks/study_tuning.py`, `LOSSES`), in the loss study's protocol; the best setting then "
             "trained with each seed in that protocol (200 epochs, the best validation epoch tested). Test: mean "
             "± 95 % t-interval over the seeds run. Published: Table 2 of the SL@K paper, with its own tuning."]
    for dataset, model in CELLS:
        rows = []
        for d, m, loss in grid:
            if (d, m) != (dataset, model):
                continue
            trials = kept_trials(folder, study_name(d, m, loss))
            tuning_seconds += sum(r["seconds"] for r in trials)
            complete = [r for r in trials if r["state"] == "COMPLETE"]
            best = max(complete, key=lambda r: r["value"]) if complete else None
            runs = [v for (rd, rm, rn, _), v in sorted(results.items()) if (rd, rm, rn) == (d, m, loss)]
            ref = references.get((d, m, loss))
            rows.append([LOSSES[loss].label, f"{ref['ndcg@20']:.4f}" if ref else "—",
                         setting(best["params"]) if best else "not tuned",
                         f"{len(complete)} / {len(trials) - len(complete)}", f"{best['value']:.4f}" if best else "—",
                         str(len(runs)), cell([r.recall for r in runs]) if runs else "not run",
                         cell([r.ndcg for r in runs]) if runs else "not run"])
        if rows:
            parts += ["", f"### {sl.DATASETS[dataset]}, {sl.MODELS[model]}", "", markdown_table(header, rows, "lllrrrrr")]
    if tests:
        parts += ["", "Paired per-user tests of test NDCG@20, each loss at its tuned setting, same seed (p of the paired t-test):",
                  "", markdown_table(["cell", "seed", "difference of", "mean", "p", "users"], list(tests), "lllrrr")]
    parts += ["", time_line(tuning_seconds, sum(len(kept_trials(folder, study_name(*c))) for c in grid), results)]
    if chart_path:
        parts += ["", f"Chart (test NDCG@20 of each tuned loss, mean with 95 % CI whiskers): `{chart_path}`."]
    return "\n".join(parts)


def chart(results: dict, grid: Sequence[tuple[str, str, str]], path: Path = PNG) -> bool:
    panels = []
    for dataset, model in CELLS:
        bars = []
        for d, m, loss in grid:
            values = [r.ndcg for (rd, rm, rn, _), r in sorted(results.items()) if (rd, rm, rn) == (d, m, loss)]
            if (d, m) == (dataset, model) and values:
                bars.append((LOSSES[loss].label, values, "tab:gray" if loss in sl.LOSSES else "tab:blue"))
        if bars:
            panels.append((f"{sl.DATASETS[dataset]}, {sl.MODELS[model]}: test NDCG@20 after tuning", bars))
    if not panels:
        return False
    bar_chart(panels, "NDCG@20", path, "blue: ranking losses, grey: the benchmark's losses; each tuned alike")
    return True


# --------------------------------------------------------------------------- the command


def arguments():
    out = parser(__doc__, seeds=list(SEEDS), study=True, tracking_uri=f"sqlite:///{ROOT / 'mlflow' / 'study.db'}",
                 run_dir=str(ROOT / "runs"))
    out.add_argument("--datasets", nargs="+", default=list(sl.DATASETS), choices=list(sl.DATASETS))
    out.add_argument("--models", nargs="+", default=list(sl.MODELS), choices=list(sl.MODELS))
    out.add_argument("--losses", nargs="+", default=list(LOSSES), choices=list(LOSSES))
    out.add_argument("--trials", type=int, default=N_TRIALS, help="trials per loss (the same for every loss)")
    out.add_argument("--storage", default=f"sqlite:///{ROOT / 'mlflow' / 'tuning.db'}", help="the Optuna storage")
    return out


def main(argv: list[str] | None = None, train: Callable | None = None, tune: Callable | None = None) -> int:
    """The study; `train` and `tune` replace the front end's training and `itemrec tune` (tests)."""
    args = arguments().parse_args(argv)
    grid = cells(args.datasets, args.models, args.losses)
    folder = records.folder_for(args.results)
    records.restore(STUDY, args.tracking_uri, DONE, folder=folder)
    experiments = [experiment(d) for d in sl.DATASETS]

    def finished() -> dict:
        return finished_runs(experiments, STUDY, args.tracking_uri, DONE)

    def run(job: Job) -> None:
        execute(job, args, folder, train)
        records.save(STUDY, experiments, args.tracking_uri, DONE, per_user=PER_USER, folder=folder)

    for d, m, n in grid:  # each cell tuned, then its best setting tested, before the next cell
        name = study_name(d, m, n)
        if args.dry_run:
            print(f"would tune {name}: {len(kept_trials(folder, name))} of {args.trials} trials kept")
        elif not args.report_only:
            print(f"tuning {name}: {args.trials} trials")
            tune_cell(d, m, n, args, folder, tune)
        if best_params(folder, name) is not None:
            run_study(test_jobs([(d, m, n)], args.seeds), args, finished, run, lambda job: test_config(job, args.run_dir, folder))
    if args.dry_run:
        return 0
    done = finished()
    records.save(STUDY, experiments, args.tracking_uri, DONE, per_user=PER_USER, folder=folder)
    results = collect(done)
    whole = cells(sl.DATASETS, sl.MODELS, LOSSES)  # the report covers every cell, not only those run now
    drawn = writes(args) and chart(results, whole, PNG)
    line = command("study_tuning", *(["--trials", args.trials] if args.trials != N_TRIALS else []))
    publish(SECTION, report(results, folder, whole, line, args.trials, shown(PNG) if drawn else None,
                            paired(results, args.tracking_uri)), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
