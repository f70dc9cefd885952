"""The report of `benchmarks.study_losses`: Table 2 of the SL@K paper, published beside measured.

Per dataset and model one row per loss: the published test Recall@20 / NDCG@20 (from
`benchmarks/reference_results.yaml`), the measured mean ± 95 % t-interval over the seeds run, the
relative difference, the best epoch of each seed and the training seconds per epoch; the runs of the
full grid not finished yet; the cells run on both kinds of batches side by side; the chart
`benchmarks/study_losses.png`. Pure functions of the collected results (`Result` per cell and seed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import ROOT, machine, markdown_table
from benchmarks.recsys_report import REFERENCES, load_references
from benchmarks.study import bar_chart, cell, mean_ci

TITLE = "Recommendation losses on IR-Benchmark (SL@K paper, Table 2)"
PNG = ROOT / "benchmarks" / "study_losses.png"
REFERENCE = "sl_at_k_table2"
"""The key of Table 2 in `benchmarks/reference_results.yaml`."""
DATASETS = {"health": "Health", "electronic": "Electronic", "gowalla": "Gowalla"}
MODELS = {"mf": "MF", "lightgcn": "LightGCN"}
LOSSES = {"bpr": "BPR", "llpauc": "LLPAUC", "sl": "SL", "bsl": "BSL", "psl": "PSL", "slk20": "SL@20"}
"""The losses in the order of the paper's table."""
SEEDS = (0, 1, 2)
METRICS = ("recall@20", "ndcg@20")
Cell = tuple[str, str, str]
"""(dataset, model, loss): one row of the report."""



@dataclass(frozen=True)
class Result:
    """One finished run: its test metrics, best (validation) epoch and mean training seconds per epoch."""

    recall: float
    ndcg: float
    best_epoch: int | None
    epoch_seconds: float


def published(path: Path = REFERENCES) -> dict[Cell, dict[str, float]]:
    """Table 2 of the SL@K paper: `{(dataset, model, loss): {"recall@20": .., "ndcg@20": ..}}`."""
    table = load_references(path)[REFERENCE]
    out = {}
    for dataset in DATASETS:
        for model in MODELS:
            for loss in LOSSES:
                values = table.get(dataset, {}).get(model, {}).get(loss, {})
                if set(METRICS) - set(values):
                    raise ValueError(f"{path}: {REFERENCE} lacks {dataset} / {model} / {loss} {' and '.join(METRICS)}")
                out[(dataset, model, loss)] = {m: float(values[m]) for m in METRICS}
    return out


# --------------------------------------------------------------------------- the report


def relative(values: Sequence[float], reference: float) -> str:
    """`+1.2 %`: the mean of `values` relative to `reference`; `—` without values."""
    if not values:
        return "—"
    return f"{100 * (mean_ci(values)[0] - reference) / reference:+.1f} %"


def table(results: dict, dataset: str, model: str, references: dict[Cell, dict[str, float]]) -> str:
    """One row per loss of one dataset and model: published, measured (mean ± 95 % CI, n), relative
    difference, the best epoch of each seed, training seconds per epoch; `not run` without runs."""
    header = ["loss", "published R@20", "published N@20", "n", "R@20", "N@20", "R@20 vs published",
              "N@20 vs published", "best epoch", "s / epoch"]
    rows = []
    for loss, label in LOSSES.items():
        ref = references[(dataset, model, loss)]
        runs = [r for (d, m, n, _), r in sorted(results.items()) if (d, m, n) == (dataset, model, loss)]
        if not runs:
            rows.append([label, f"{ref['recall@20']:.4f}", f"{ref['ndcg@20']:.4f}", "0", "not run", "not run", "—", "—", "—", "—"])
            continue
        recall, ndcg = [r.recall for r in runs], [r.ndcg for r in runs]
        rows.append([
            label, f"{ref['recall@20']:.4f}", f"{ref['ndcg@20']:.4f}", str(len(runs)), cell(recall), cell(ndcg),
            relative(recall, ref["recall@20"]), relative(ndcg, ref["ndcg@20"]),
            ", ".join("—" if r.best_epoch is None else str(r.best_epoch) for r in runs),
            f"{mean_ci([r.epoch_seconds for r in runs])[0]:.1f}",
        ])
    return markdown_table(header, rows, "lrrrrrrrrr")


def batches_table(users: dict, pairs: dict) -> str | None:
    """The cells run on both kinds of batches: N@20 and R@20 (mean ± 95 % CI, n) on the benchmark's
    batches of pairs and on the configs' batches of users, the relative difference of the means and
    the seconds per epoch of each; None when no cell ran on pairs."""
    rows = []
    for dataset, d_label in DATASETS.items():
        for model, m_label in MODELS.items():
            for loss, label in LOSSES.items():
                p = [r for (d, m, n, _), r in sorted(pairs.items()) if (d, m, n) == (dataset, model, loss)]
                u = [r for (d, m, n, _), r in sorted(users.items()) if (d, m, n) == (dataset, model, loss)]
                if not p or not u:
                    continue
                p_s, u_s = mean_ci([r.epoch_seconds for r in p])[0], mean_ci([r.epoch_seconds for r in u])[0]
                rows.append([
                    f"{d_label}, {m_label}", label, str(len(p)), cell([r.ndcg for r in p]), str(len(u)), cell([r.ndcg for r in u]),
                    relative([r.ndcg for r in u], mean_ci([r.ndcg for r in p])[0]),
                    relative([r.recall for r in u], mean_ci([r.recall for r in p])[0]),
                    f"{p_s:.2f}", f"{u_s:.2f}", f"{p_s / u_s:.0f}x" if u_s > 0 else "—",
                ])
    if not rows:
        return None
    header = ["cell", "loss", "n pairs", "N@20 pairs", "n users", "N@20 users", "N@20 users vs pairs",
              "R@20 users vs pairs", "s / epoch pairs", "s / epoch users", "pairs / users"]
    return markdown_table(header, rows, "llrrrrrrrrr")


def missing_lines(results: dict, seeds: Sequence[int]) -> list[str]:
    """The runs of the full grid (every cell at `seeds`) not finished, one line per dataset and
    model: `- Health, MF: BPR (seeds 1, 2); SL@20 (seed 2)`."""
    lines = []
    for dataset, d_label in DATASETS.items():
        for model, m_label in MODELS.items():
            parts = []
            for loss, label in LOSSES.items():
                left = [s for s in seeds if (dataset, model, loss, s) not in results]
                if left:
                    parts.append(f"{label} (seed{'s' if len(left) > 1 else ''} {', '.join(map(str, left))})")
            if parts:
                lines.append(f"- {d_label}, {m_label}: " + "; ".join(parts))
    return lines


def report(results: dict, references: dict[Cell, dict[str, float]], line: str, seeds: Sequence[int] = SEEDS,
           chart_path: str | None = None, pairs: dict | None = None) -> str:
    parts = [
        f"## {TITLE}", "", f"`{line}` — {machine()}", "",
        "Each cell trains `configs/recsys/irb/<dataset>_<model>_<loss>.yaml` with its seed: the benchmark's fixed "
        "train/test split (10 % of each user's training rows as validation), the SL@K paper's hyper-parameters, "
        "200 epochs, validation NDCG@20 every 5 epochs, the best validation epoch tested, its test ranking "
        "excluding the training rows only, as the benchmark's evaluation does (the validation rows stay among "
        "the candidates: `eval.exclude_val_at_test: false`; excluding them too raises NDCG@20 by 2-3 %). "
        "Published: Table 2 of "
        "Yang et al., \"Breaking the Top-K Barrier: Advancing Top-K Ranking Metrics Optimization in Recommender "
        "Systems\", KDD 2025 (test Recall@20 / NDCG@20; `benchmarks/reference_results.yaml`). Measured: mean ± "
        "95 % t-interval half-width over the n seeds run (no interval for one seed); `vs published`: (measured "
        "mean − published) / published; `best epoch`: the best validation epoch of each seed; `s / epoch`: mean "
        "training seconds per epoch (validation excluded) on the machine each run ran on, whatever else ran "
        "beside it. SL's term on a row of shared negatives factors as one log-sum-exp per user minus each "
        "positive's score, whereas PSL's activation of each difference s_j − s_i does not, so PSL scores one "
        "row of negatives per (user, positive) pair, the pair batches' work, on either kind of batch: its "
        "Health and Electronic runs, before its tanh closed form, took 1.0-4.4× SL's seconds; now 2.4× SL per "
        "epoch on Health, where SL's epoch is a third of a second, and 1.03× on Gowalla (`loss-epochs-*` "
        "sections below).",
    ]
    for dataset, d_label in DATASETS.items():
        for model, m_label in MODELS.items():
            parts += ["", f"### {d_label}, {m_label}", "", table(results, dataset, model, references)]
    missing = missing_lines(results, seeds)
    if missing:
        total = len(DATASETS) * len(MODELS) * len(LOSSES) * len(seeds)
        left = sum(1 for d in DATASETS for m in MODELS for n in LOSSES for s in seeds if (d, m, n, s) not in results)
        parts += ["", f"### Not run yet ({left} of the {total} runs of seeds {', '.join(map(str, seeds))})", "",
                  "The command above resumes the study and runs them:", "", *missing]
    compared = batches_table(results, pairs or {})
    if compared:
        parts += ["", "### Batches of users against the benchmark's batches of pairs", "",
                  "The softmax-family and LLPAUC configs train on batches of 64 users: each row holds a user's "
                  "training positives and 1,000 uniform negatives shared by them, and the loss averages over "
                  "(user, positive) pairs, so every pair weighs the same, as in the benchmark, whose batches are "
                  "1,024 (user, positive) pairs each with its own 1,000 negatives. The cells below also ran on "
                  "those pair batches (`--rows pairs`); `users vs pairs` is the relative difference of the means.",
                  "", compared]
    if chart_path:
        parts += ["", f"Chart (test NDCG@20, measured mean with 95 % CI whiskers beside the published value): `{chart_path}`."]
    return "\n".join(parts)


def chart(results: dict, references: dict[Cell, dict[str, float]], path: Path = PNG) -> bool:
    """Measured (blue, mean ± 95 % CI over seeds) and published (grey) test NDCG@20 per loss, one
    panel per dataset and model that has runs; False (and no file) when nothing ran."""
    panels = []
    for dataset, d_label in DATASETS.items():
        for model, m_label in MODELS.items():
            bars = []
            for loss, label in LOSSES.items():
                measured = [r.ndcg for (d, m, n, _), r in sorted(results.items()) if (d, m, n) == (dataset, model, loss)]
                if measured:
                    bars.append((label, measured, "tab:blue"))
                bars.append((f"{label} (paper)", [references[(dataset, model, loss)]["ndcg@20"]], "tab:gray"))
            if any(colour == "tab:blue" for *_, colour in bars):
                panels.append((f"{d_label}, {m_label}: test NDCG@20", bars))
    if not panels:
        return False
    bar_chart(panels, "NDCG@20", path, "blue: measured (mean ± 95% CI over seeds), grey: SL@K paper, Table 2")
    return True
