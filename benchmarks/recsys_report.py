"""The report of `benchmarks.recsys`: the quality table, the speed table with its ratios, the
comparison with the reference numbers (`benchmarks/reference_results.yaml`, read by
`load_references`), and the block of the longer run."""

from __future__ import annotations

import math
import time
from datetime import date
from pathlib import Path

from benchmarks.harness import ROOT, machine, markdown_table

REFERENCES = ROOT / "benchmarks" / "reference_results.yaml"
REQUIRED = {
    "recbole_gnn_lightgcn": ("label", "epochs", "ndcg@10", "recall@10"),
    "recbole_epoch": ("label", "seconds"),
    "recbole_evaluation": ("label", "seconds"),
    "pyg_epoch": ("label", "seconds"),
}
"""The references the report quotes, and the fields each must have."""
METRICS = ("ndcg@10", "ndcg@20", "recall@10", "recall@20")
NOT_MEASURED = "*reference, not measured here:*"
LONG_MARKERS = ("<!-- recsys-long -->", "<!-- /recsys-long -->")
"""The comments around the longer run's block inside the `recsys` section of RESULTS.md."""


def load_references(path: Path = REFERENCES) -> dict[str, dict]:
    """The reference numbers, by name (their sources are the comments of the file)."""
    import yaml

    references = yaml.safe_load(Path(path).read_text())
    for name, fields in REQUIRED.items():
        missing = [f for f in fields if f not in references.get(name, {})]
        if missing:
            raise ValueError(f"{path}: reference {name!r} lacks {', '.join(missing)}")
    return references


def fmt(x, digits: int = 4) -> str:
    """`x` with `digits` decimals; `—` for None or NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}f}"


def load_note(pyg_epoch_s: float, references: dict) -> str:
    """How this (possibly shared) machine compared with the one of the reference rows."""
    reference = references["pyg_epoch"]["seconds"]
    factor = pyg_epoch_s / reference
    pace = f"about {factor:.1f}× slower" if factor >= 1 else f"faster (its epoch took {factor:.1f}× the reference time)"
    return (
        f"Load check: the torch_geometric epoch measured here ({pyg_epoch_s:.0f} s) is {factor:.1f}× its reference "
        f"({reference:.0f} s, same code path on the same kind of machine), so this machine ran {pace} "
        "compared with when the reference rows were taken; ratios against the peer measured in the same run are the "
        "fair comparison."
    )


def quality_table(results: dict, rows: list[tuple[str, str]], budget: int, references: dict) -> str:
    """One line per run (`rows`: key, label, in order), then the published reference."""
    lines = []
    for key, label in rows:
        if key not in results:
            continue
        r, m = results[key], results[key]["metrics"]
        learned = "epochs" in r
        lines.append([
            label, f"{r['epochs']} ({budget})" if learned else "fit", str(r["best_epoch"]) if learned else "—",
            fmt(r.get("epoch_s"), 1), fmt(r["wall"], 0), fmt(r.get("to_best"), 0),
            *(fmt(m.get(f"test/{n}")) for n in METRICS), *(fmt(m.get(f"test_inductive/{n}")) for n in METRICS),
        ])
    gnn = references["recbole_gnn_lightgcn"]
    lines.append([f"{NOT_MEASURED} {gnn['label']}", gnn["epochs"], *["—"] * 4, f"{gnn['ndcg@10']:.4f}", "—",
                  f"{gnn['recall@10']:.4f}", *["—"] * 5])
    header = ["model, loss, negatives", "epochs run (budget)", "best epoch", "s / epoch", "wall s", "to best s",
              *METRICS, *(f"inductive {n}" for n in METRICS)]
    return markdown_table(header, lines)


def speed_rows(results: dict, speed: dict, pyg_batch: int, references: dict) -> list[tuple[str, float, str]]:
    """(case, seconds, how) of every speed row: ours, the peer measured in this run, the references."""
    bpr, sup, peer, ev = results.get("lgcn_bpr"), results.get("lgcn_supap"), speed.get("pyg"), speed.get("eval")
    rows = []
    if bpr:
        rows.append(("ours: LightGCN BPR, one epoch over all users (1,024 users × 320 candidates per batch)", bpr["epoch_s"], "median of the run's epochs"))
    if sup:
        rows.append(("ours: LightGCN sup_ap, one epoch over all users (same rows)", sup["epoch_s"], "median of the run's epochs"))
    if peer:
        rows.append((f"torch_geometric `LightGCN` + `recommendation_loss` (BPR), one epoch ({peer['edges']:,} edges in batches of {pyg_batch:,}, one negative each)",
                     peer["epoch_s"], f"median of {peer['batches_timed']} batches × {peer['batches_per_epoch']} batches"))
    for name in ("recbole_epoch", "pyg_epoch"):
        rows.append((f"{NOT_MEASURED} {references[name]['label']}", references[name]["seconds"], "earlier measurement"))
    for key, r in (("BPR", bpr), ("sup_ap", sup)):
        if r:
            rows.append((f"ours: LightGCN {key}, wall time to best validation ndcg@20 (within the budget)", r["to_best"], f"best epoch {r['best_epoch']}"))
    if ev:
        how = f"median of {ev['repeats']} after a warm-up"
        rows.append((f"ours: full-ranking evaluation of all {ev['users']:,} test users, dot scores (`itemrec.recsys.evaluate.evaluate`, batches of {ev['batch_users']:,})", ev["dot"], how))
        rows.append(("ours: the same, cosine scores", ev["cosine"], how))
    if peer:
        rows.append(("torch_geometric `LightGCN`: `get_embedding` + dense scores + mask + top-50 for the same users", peer["eval_s"], f"median of {peer['eval_repeats']} after a warm-up"))
    rows.append((f"{NOT_MEASURED} {references['recbole_evaluation']['label']}", references["recbole_evaluation"]["seconds"], "earlier measurement"))
    return rows


def ratios(results: dict, speed: dict, references: dict) -> list[str]:
    """Speed ratios of the others over ours (> 1: ours faster)."""
    bpr, peer, ev = results.get("lgcn_bpr"), speed.get("pyg"), speed.get("eval")
    out = []
    if bpr and peer:
        out.append(f"torch_geometric epoch / our BPR epoch: **{peer['epoch_s'] / bpr['epoch_s']:.1f}×**")
    if bpr:
        out.append(f"RecBole epoch (reference) / our BPR epoch: **{references['recbole_epoch']['seconds'] / bpr['epoch_s']:.1f}×**")
    if ev and peer:
        out.append(f"torch_geometric evaluation / ours (dot): **{peer['eval_s'] / ev['dot']:.1f}×**")
    if ev:
        out.append(f"RecBole evaluation (reference) / ours (dot): **{references['recbole_evaluation']['seconds'] / ev['dot']:.2f}×**")
    return out


def comparisons(results: dict, labels: dict[str, str], ranking: tuple[str, ...], budget: int, references: dict) -> str:
    """The best ranking-loss row against BPR on LightGCN (test ndcg@20, same budget) and against
    the published LightGCN (test ndcg@10): measured, reference, difference; nothing is judged."""
    rows = []
    bpr = results.get("lgcn_bpr")
    ranked20 = [(results[k]["metrics"]["test/ndcg@20"], k) for k in ranking if k in results]
    if bpr and ranked20:
        value, key = max(ranked20)
        base = bpr["metrics"]["test/ndcg@20"]
        rows.append([f"best ranking loss on LightGCN against BPR, test ndcg@20 (same {budget}-epoch budget)",
                     f"{labels[key]}: {value:.4f}", f"BPR: {base:.4f}", f"{value / base - 1:+.1%} relative"])
    ranked10 = [(results[k]["metrics"]["test/ndcg@10"], k) for k in ranking if k in results]
    if ranked10:
        value, key = max(ranked10)
        r, gnn = results[key], references["recbole_gnn_lightgcn"]
        rows.append([f"best ranking loss on LightGCN against {gnn['label']}, test ndcg@10",
                     f"{labels[key]}: {value:.4f} after {r['wall']:.0f} s wall ({r['epochs']} epoch{'s' if r['epochs'] > 1 else ''}; "
                     "the longer run below, `--long-epochs`, goes further)",
                     f"{gnn['ndcg@10']:.4f}", f"{value - gnn['ndcg@10']:+.4f}"])
    if not rows:
        return "No ranking-loss row ran."
    return markdown_table(["comparison", "ours", "reference", "difference"], rows, "llll")


PEER_NOTE = (
    "The torch_geometric loop follows PyG's LightGCN example: per batch one full-graph propagation over the symmetric "
    "`edge_index` (`LGConv`), scores of the batch's positive and negative edges, `recommendation_loss` with L2 1e-4 on the "
    "batch's nodes, Adam. Its batches are edges (4,096 as in the reference), ours are users (1,024 users × 64 positives, "
    "so ~65k positive pairs and 262k negatives per batch)."
)


def markdown(results: dict, speed: dict, notes: list[str], *, rows: list[tuple[str, str]], ranking: tuple[str, ...],
             args, command: str, started: str, references: dict) -> str:
    """The `recsys` section: protocol, quality table, speed table and ratios, comparisons."""
    labels = dict(rows)
    dataset = "ml-100k (quick smoke run)" if args.quick else "ml-1m"
    budget = args.budget_epochs
    lines = [
        f"## Recommendation: quality and speed on {dataset}",
        "",
        f"`{command}`",
        "",
        f"Machine: {machine()}",
        "",
        f"Run started {started} (date {date.today().isoformat()}); load average (1/5/15 min) at the start: {speed.get('load_start', 'n/a')}. "
        "The machine is shared with other processes, so times are noisy (medians are reported).",
        "",
        f"Protocol: {dataset}, ratings >= 3, per-user random 0.8/0.1/0.1 split, seed 0; 64-d, 3 layers (LightGCN, NGCF); "
        "full ranking over all items with seen items masked; test metrics of the best validation-ndcg@20 checkpoint. "
        f"Budget: every learned run gets **{budget} epoch{'s' if budget > 1 else ''}** (the configs in `configs/recsys/` otherwise unchanged: "
        "batches of 1,024 users, each row 64 sampled positives + 256 negatives, Adam lr 0.01, L2 1e-4; cosine scores for "
        "sup_ap/sup_ndcg, dot for BPR), far short of convergence, so quality is a fixed-budget comparison, not final numbers. "
        "`wall` is the whole `train()` call (data, epochs, validation, test, logging); `to best` is the training + validation "
        "time up to the best validation epoch.",
        "",
        quality_table(results, rows, budget, references),
    ]
    skipped = [label for key, label in rows if key not in results and key in speed.get("wanted", ())]
    if skipped:
        lines += ["", "Not run (time budget or error): " + "; ".join(skipped) + "."]
    for note in notes:
        lines += ["", note]
    speed_cells = [[a, f"{b:.3f}" if b < 1 else f"{b:.2f}", c] for a, b, c in speed_rows(results, speed, args.pyg_batch, references)]
    lines += ["", "### Speed", "", markdown_table(["case", "seconds", "how"], speed_cells, "lrl")]
    found = ratios(results, speed, references)
    if found:
        lines += ["", "Ratios (> 1: ours faster): " + "; ".join(found) + "."]
    if speed.get("pyg"):
        lines += ["", load_note(speed["pyg"]["epoch_s"], references), "", PEER_NOTE]
    lines += ["", "### Against the references", "", comparisons(results, labels, ranking, budget, references)]
    return "\n".join(lines)


def print_row(key: str, r: dict) -> None:
    """One finished run on one line of the console."""
    m = r["metrics"]
    print(
        f"{key:16s} epochs {r.get('epochs', '-')!s:>3} best {r.get('best_epoch', '-')!s:>3} "
        f"s/epoch {fmt(r.get('epoch_s'), 1):>6} wall {r['wall']:7.1f}  "
        f"ndcg@10 {fmt(m.get('test/ndcg@10'))} ndcg@20 {fmt(m.get('test/ndcg@20'))} "
        f"recall@10 {fmt(m.get('test/recall@10'))} recall@20 {fmt(m.get('test/recall@20'))}"
        + (f"  inductive ndcg@20 {fmt(m.get('test_inductive/ndcg@20'))}" if "test_inductive/ndcg@20" in m else "")
        + f"  (load {r['load']})",
        flush=True,
    )


def long_block(r: dict, config_name: str, epochs: int, command: str, references: dict) -> str:
    """The longer run's block (without its markers): its table and how it compares with the
    published LightGCN."""
    m, gnn = r["metrics"], references["recbole_gnn_lightgcn"]
    row = [f"{r['epochs']} ({epochs})", r["best_epoch"], f"{r['epoch_s']:.1f}", f"{r['wall']:.0f}", f"{r['to_best']:.0f}",
           *(fmt(m.get(f"test/{n}")) for n in METRICS)]
    return "\n".join([
        f"### Longer run: `configs/recsys/ml1m_{config_name}.yaml`, up to {epochs} epochs",
        "",
        f"`{command}` (finished {time.strftime('%Y-%m-%d %H:%M')}; load average at the start {r['load']}); same protocol, "
        "the config's own loss settings, early stopping on val ndcg@20 (patience 8).",
        "",
        markdown_table(["epochs run", "best epoch", "s / epoch", "wall s", "to best s", *METRICS], [row], "r" * 9),
        "",
        f"Against {gnn['label']}, test ndcg@10 {gnn['ndcg@10']:.4f}: {m['test/ndcg@10']:.4f} after {r['wall']:.0f} s wall "
        f"and {r['epochs']} epochs ({m['test/ndcg@10'] - gnn['ndcg@10']:+.4f}).",
    ])
