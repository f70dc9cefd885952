"""How many of the PPR "hard negatives" are held-out positives (false negatives), by PPR rank.

`PPRNegatives` draws half of each row's negatives from the user's non-training items ranked
`skip + 1 .. skip + topk` by personalized PageRank (defaults 101-600). Those items are hard because
they are close to the user's history in the graph, which is also where the user's validation and
test items sit. For each window of PPR ranks this script reports the share of the pool that is a
held-out (validation or test) positive of the user, against the share among all non-training items
(what uniform negatives hit), on the recommendation study's splits of ml-100k and ml-1m.

    python -m benchmarks.ppr_false_negatives [--datasets ml-100k ml-1m]
"""

from __future__ import annotations

import sys

import numpy as np
import scipy.sparse as sp
import torch

import itemrec.frontends  # noqa: F401  (registers the front ends that configs are validated by)
from benchmarks.harness import (
    ROOT,
    command,
    machine,
    markdown_table,
    parser,
    publish,
)
from itemrec.recsys.pipeline import config_from_text, load_data
from itemrec.recsys.sampling.ppr import ppr_scores

CONFIGS = ROOT / "configs" / "recsys"
PREFIX = {"ml-100k": "ml100k", "ml-1m": "ml1m"}
WINDOWS = ((0, 100), (100, 600), (600, 1100), (1100, 1600), (1600, 2100))
DEFAULT_POOL = (100, 600)  # PPRNegatives(skip=100, topk=500)


def held_out_hits(items: torch.Tensor, valid: torch.Tensor, held: sp.csr_matrix) -> np.ndarray:
    """`hits[u, k]`: whether item `items[u, k]` is a held-out positive of user u (False where not `valid`).

    `items`, `valid`: [U, K] item ids and a mask of the real entries (PPR pads with -inf scores).
    """
    n_items = held.shape[1]
    held = held.tocoo()
    held_keys = np.sort(held.row.astype(np.int64) * n_items + held.col)  # [nnz]
    keys = np.arange(items.shape[0], dtype=np.int64)[:, None] * n_items + items.numpy().astype(np.int64)  # [U, K]
    return np.isin(keys, held_keys) & valid.numpy()


def window_rows(hits: np.ndarray, valid: np.ndarray, n_held: int, base: float, windows=WINDOWS) -> list[dict]:
    """Per window `[lo, hi)` of PPR ranks: share of the pool that is held out, as a multiple of
    `base` (the uniform share), and the fraction of all `n_held` held-out positives it holds."""
    rows = []
    for lo, hi in windows:
        if lo >= hits.shape[1]:
            break
        pool = valid[:, lo:hi].sum()
        found = hits[:, lo:hi].sum()
        share = found / max(pool, 1)
        rows.append({"window": (lo, min(hi, hits.shape[1])), "pool": int(pool), "share": float(share),
                     "ratio": float(share / base) if base else float("nan"), "covers": float(found / max(n_held, 1))})
    return rows


def measure(dataset: str) -> tuple[dict, list[dict]]:
    path = CONFIGS / f"{PREFIX[dataset]}_lightgcn_supap_uniform.yaml"
    data = load_data(config_from_text(path.read_text(), str(path)), quiet=True)
    held = ((data.val + data.test) > 0).astype(np.float32).tocsr()  # disjoint from train by the split
    items, scores = ppr_scores(data.train, None, topk=WINDOWS[-1][1])
    valid = torch.isfinite(scores)
    hits = held_out_hits(items, valid, held)
    base = held.nnz / (data.n_users * data.n_items - data.train.nnz)
    stats = {"users": data.n_users, "items": data.n_items, "train_per_user": data.train.nnz / data.n_users,
             "base": base}
    return stats, window_rows(hits, valid.numpy(), held.nnz, base)


def table(results: dict[str, tuple[dict, list[dict]]]) -> str:
    """Per dataset, the uniform share, then each window of PPR ranks (the default pool in bold)."""
    rows = []
    for dataset, (stats, windows) in results.items():
        rows.append([dataset, f"{stats['users']:,}", f"{stats['items']:,}", f"{stats['train_per_user']:.0f}",
                     "uniform (all non-training)", f"{stats['base']:.4f}", "1.0", "100 %"])
        for row in windows:
            lo, hi = row["window"]
            window = f"{lo + 1}-{hi}"
            if (lo, hi) == DEFAULT_POOL:
                window = f"**{window}**"
            rows.append(["", "", "", "", window, f"{row['share']:.4f}", f"{row['ratio']:.1f}", f"{row['covers']:.1%}"])
    header = ["dataset", "users", "items", "train items / user", "PPR ranks", "held-out share", "× uniform", "of all held-out positives"]
    return markdown_table(header, rows, "lrrrlrrr")


def report(results: dict[str, tuple[dict, list[dict]]]) -> str:
    return "\n".join([
        "## PPR hard negatives: how many are held-out positives",
        "",
        f"`{command('ppr_false_negatives')}` — {machine()}",
        "",
        "On the recommendation study's split 0 (80/10/10 per user, ratings ≥ 3), each user's non-training "
        "items ranked by exact PPR (α 0.15, 10 iterations); a window's share is the fraction of its items "
        "that are the user's validation or test positives, × uniform compares it with the same fraction "
        "over all non-training items (what a uniform negative hits). `PPRNegatives`' default pool is "
        "ranks 101-600 (skip 100, topk 500), marked **bold**.",
        "",
        table(results),
    ])


def main(argv: list[str] | None = None) -> int:
    arguments = parser(__doc__)
    arguments.add_argument("--datasets", nargs="+", default=list(PREFIX), choices=list(PREFIX))
    args = arguments.parse_args(argv)
    results = {dataset: measure(dataset) for dataset in args.datasets}
    publish("ppr-false-negatives", report(results), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
