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
and `study_recsys_<dataset>.png`, so studying one dataset leaves the other's tables alone. The
grid is `benchmarks.study_recsys_grid`, the tables `benchmarks.study_recsys_report`.

    python -m benchmarks.study_recsys --datasets ml-100k [--rows ...] [--seeds 0 1 2] [--dry-run]
    python -m benchmarks.study_recsys --report-only      # tables + chart from what is in MLflow
"""

from __future__ import annotations

import argparse
import sys

import itemrec.frontends  # noqa: F401  (registers the front ends that configs are validated by)
from benchmarks import records
from benchmarks.harness import ROOT, command, parser, write_section, writes
from benchmarks.study import TAG, Job, finished_runs, history, run_study, train_timed
from benchmarks.study_recsys_grid import (
    CAPS,
    DONE,
    MIN_EPOCHS,
    PATIENCE,
    PREFIX,
    PROTOCOLS,
    ROW,
    ROWS,
    STUDY,
    config_dict,
    experiment,
    jobs,
)
from benchmarks.study_recsys_report import chart, collect, png, report


def section(dataset: str) -> str:
    """RESULTS.md section of one dataset: a study of one dataset leaves the other's tables alone."""
    return f"study-recsys-{dataset}"


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
    from itemrec.recsys.frontend import train

    t = {k.removeprefix(TAG): v for k, v in job.tags.items()}
    raw = config_dict(ROW[t["row"]], t["dataset"], t["protocol"], int(t["seed"]), int(t["split_seed"]),
                      caps[t["dataset"]], PATIENCE[t["dataset"]], run_dir, MIN_EPOCHS[t["dataset"]])
    config = validate(raw, f"study row {t['row']}")
    train_timed(train, config, job, tracking_uri, quiet)


def arguments() -> argparse.ArgumentParser:
    """The shared study flags (seeds, MLflow store, run folder, dry run, report only) and the
    grid's datasets, rows, split seeds, protocols and epoch caps."""
    out = parser(__doc__, seeds=[0, 1, 2], study=True, tracking_uri=f"sqlite:///{ROOT / 'mlflow' / 'study.db'}",
                 run_dir=str(ROOT / "runs"))
    out.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-1m"], choices=list(PREFIX))
    out.add_argument("--rows", nargs="+", default=[r.name for r in ROWS], choices=[r.name for r in ROWS], metavar="ROW")
    out.add_argument("--split-seeds", nargs="*", type=int, default=[0, 1, 2], help="split seeds of the LightGCN rows and baselines")
    out.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    out.add_argument("--cap", type=int, nargs="*", default=None, help="epoch cap per dataset (in --datasets order)")
    return out


PER_USER = ("ndcg@10", "recall@20")
"""The per-user test metrics the records keep: the report's paired tests read them."""


def main(argv: list[str] | None = None) -> int:
    flags = arguments()
    args = flags.parse_args(argv)
    caps = dict(CAPS)
    if args.cap:
        if len(args.cap) != len(args.datasets):
            flags.error("--cap takes one epoch cap per dataset of --datasets")
        caps.update(zip(args.datasets, args.cap))
    grid = jobs(args.datasets, args.rows, args.seeds, args.split_seeds, args.protocols)
    folder = records.folder_for(args.results)
    records.restore(STUDY, args.tracking_uri, DONE, folder=folder)

    def keep() -> None:
        records.save(STUDY, [experiment(d) for d in PREFIX], args.tracking_uri, DONE, per_user=PER_USER, folder=folder)

    def run(job) -> None:
        execute(job, args.tracking_uri, args.run_dir, caps, args.quiet)
        keep()

    def finished() -> dict:
        runs = finished_runs([experiment(d) for d in args.datasets], STUDY, args.tracking_uri, DONE)
        return {key: run for key, run in runs.items() if stands(key, run, caps, args.tracking_uri)}

    done = run_study(grid, args, finished, run)
    if done is None:
        return 0
    keep()
    results = collect(done, args.tracking_uri)
    full = jobs(args.datasets, [r.name for r in ROWS], [0, 1, 2], [0, 1, 2], list(PROTOCOLS))
    for dataset in args.datasets:  # one section and one chart per dataset
        line = command("study_recsys", "--datasets", dataset, *(["--cap", caps[dataset]] if args.cap else []))
        missing = [j for j in full if j.key not in done and j.tags[TAG + "dataset"] == dataset]
        body = report(results, [dataset], caps, args.tracking_uri, line, missing,
                      [j for j in full if j.tags[TAG + "dataset"] == dataset])
        print(body)
        if not writes(args) or not any(k[0] == dataset for k in results):
            continue
        if chart(results, dataset):
            body += f"\n\nBar chart (test ndcg@10, mean with 95 % CI whiskers): `benchmarks/{png(dataset).name}`."
        write_section(section(dataset), body, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
