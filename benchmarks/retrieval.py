"""Fashion-MNIST unseen-classes benchmark: ranking losses against pytorch-metric-learning baselines.

Same small CNN, sampler (m-per-class), batch, steps and epochs for every loss; the best epoch is
chosen on validation mAP@R (held-out images of the training classes), then evaluated on the 4
unseen test classes. Writes the `retrieval` section of benchmarks/RESULTS.md.

    python -m benchmarks.retrieval [--epochs 5] [--steps 60] [--losses roadmap sup_ap ...] [--no-write]
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import itemrec.frontends  # noqa: F401  (registers the front ends that configs are validated by)
from benchmarks.harness import (
    ROOT,
    Stopwatch,
    command,
    machine,
    markdown_table,
    parser,
    write_section,
    writes,
)
from itemrec.experiment.config import load_config
from retrieval.frontend import train

CONFIG = ROOT / "configs" / "retrieval" / "fashion_mnist_roadmap.yaml"
LOSSES = ("roadmap", "sup_ap", "happier", "smooth_ap", "contrastive", "multi_similarity", "triplet")
RANKING = {"roadmap", "sup_ap", "happier", "smooth_ap"}


def run_one(loss: str, epochs: int, steps: int, folder: Path) -> dict[str, float]:
    """Train one loss; its final metrics and the whole run's seconds."""
    overrides = [f"loss={{name: {loss}}}", f"train.epochs={epochs}", f"sampler.steps_per_epoch={steps}",
                 f"name=bench_{loss}", f"train.run_dir={folder / 'runs'}"]
    config = load_config(CONFIG, overrides)
    with Stopwatch() as watch:
        run_id = train(config, tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    metrics = json.loads((folder / "runs" / f"bench_{loss}" / run_id / "metrics.json").read_text())
    metrics["total_seconds"] = watch.wall
    return metrics


def table(results: dict[str, dict[str, float]]) -> str:
    """Test metrics in %, training seconds per epoch and the best epoch of each loss."""
    rows = [
        [loss, *(f"{100 * m[f'test/{k}']:.2f}" for k in ("hit@1", "map@r", "h_ap", "asi", "ap", "ndcg")),
         f"{m['epoch_seconds']:.1f}", int(m["best_epoch"])]
        for loss, m in results.items()
    ]
    header = ["loss", "hit@1", "mAP@R", "H-AP", "ASI", "AP", "NDCG", "s/epoch (train)", "best epoch"]
    return markdown_table(header, rows, "l" * len(header))


def comparisons(results: dict[str, dict[str, float]]) -> list[str]:
    """The best loss on each ranking metric, and the best ranking loss's hit@1 against the best baseline's."""
    best = {k: max(results, key=lambda loss, k=k: results[loss][f"test/{k}"]) for k in ("map@r", "h_ap", "asi")}
    kind = {loss: "a ranking loss" if loss in RANKING else "a baseline" for loss in results}
    lines = [f"- best on mAP@R: {best['map@r']} ({kind[best['map@r']]}); on H-AP: {best['h_ap']}; on ASI: {best['asi']}"]
    baselines = [loss for loss in results if loss not in RANKING]
    ranking = [loss for loss in results if loss in RANKING]
    if baselines and ranking:
        base_hit = max(results[b]["test/hit@1"] for b in baselines)
        rank_hit = max(results[r]["test/hit@1"] for r in ranking)
        lines.append(f"- hit@1, best ranking loss against best baseline: {100 * rank_hit:.2f} vs {100 * base_hit:.2f} "
                     f"({100 * (rank_hit - base_hit):+.2f} points)")
    return lines


def main() -> None:
    arguments = parser(__doc__)
    arguments.add_argument("--epochs", type=int, default=5, help="epochs per loss (default: %(default)s)")
    arguments.add_argument("--steps", type=int, default=60, help="batches per epoch (default: %(default)s)")
    arguments.add_argument("--losses", nargs="*", default=list(LOSSES))
    args = arguments.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for loss in args.losses:
            results[loss] = run_one(loss, args.epochs, args.steps, Path(tmp))
            print(f"{loss}: {json.dumps({k: round(v, 4) for k, v in results[loss].items()})}", flush=True)
    body = "\n".join([
        "## Image retrieval: Fashion-MNIST, unseen classes",
        "",
        f"`{command('retrieval', '--epochs', args.epochs, '--steps', args.steps)}` — {machine()}",
        "",
        f"Train on 6 classes (T-shirt, trouser, pullover, coat, sandal, ankle boot; 10% of their images held out "
        f"for validation), test on the 4 unseen ones (dress, shirt, sneaker, bag: 4000 test images, each a query "
        f"against the other 3999). Hierarchy (fine, coarse): tops / trouser / footwear / bag. Same for every loss: "
        f"small CNN (3 conv stages, 128-d embedding), m-per-class sampler (m=32, batch 128 = 4 classes), "
        f"{args.steps} batches per epoch, {args.epochs} epochs, AdamW lr 1e-3 with a cosine schedule, best epoch "
        f"on validation mAP@R. Metrics in %, on the test split; s/epoch is training time only "
        f"(validation excluded). Baselines are pytorch-metric-learning's losses with their default margins "
        f"(contrastive on cosine similarity, multi-similarity with its miner, triplet margin 0.1 with a semi-hard miner).",
        "",
        table(results),
        "",
        "Comparisons:",
        *comparisons(results),
    ])
    print(body)
    if writes(args):
        write_section("retrieval", body, args.results)


if __name__ == "__main__":
    main()
