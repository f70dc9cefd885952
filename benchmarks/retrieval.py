"""Fashion-MNIST unseen-classes benchmark: ranking losses against pytorch-metric-learning baselines.

Same small CNN, sampler (m-per-class), batch, steps and epochs for every loss; the best epoch is
chosen on validation mAP@R (held-out images of the training classes), then evaluated on the 4
unseen test classes. Writes the `retrieval` section of benchmarks/RESULTS.md.

    python -m benchmarks.retrieval [--epochs 5] [--steps 60]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.results import machine, write_section
from itemrec.experiment.config import load_config
from retrieval.train import train

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "retrieval" / "fashion_mnist_roadmap.yaml"
LOSSES = ("roadmap", "sup_ap", "happier", "smooth_ap", "contrastive", "multi_similarity", "triplet")
RANKING = {"roadmap", "sup_ap", "happier", "smooth_ap"}


def run_one(loss: str, epochs: int, steps: int, folder: Path) -> dict[str, float]:
    overrides = [f"loss={{name: {loss}}}", f"train.epochs={epochs}", f"sampler.steps_per_epoch={steps}",
                 f"name=bench_{loss}", f"train.run_dir={folder / 'runs'}"]
    config = load_config(CONFIG, overrides)
    started = time.perf_counter()
    run_id = train(config, tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    metrics = json.loads((folder / "runs" / f"bench_{loss}" / run_id / "metrics.json").read_text())
    metrics["total_seconds"] = time.perf_counter() - started
    return metrics


def table(results: dict[str, dict[str, float]]) -> str:
    rows = ["| loss | hit@1 | mAP@R | H-AP | ASI | AP | NDCG | s/epoch (train) | best epoch |", "|---|---|---|---|---|---|---|---|---|"]
    for loss, m in results.items():
        rows.append(
            f"| {loss} | {100 * m['test/hit@1']:.2f} | {100 * m['test/map@r']:.2f} | {100 * m['test/h_ap']:.2f} | "
            f"{100 * m['test/asi']:.2f} | {100 * m['test/ap']:.2f} | {100 * m['test/ndcg']:.2f} | "
            f"{m['epoch_seconds']:.1f} | {int(m['best_epoch'])} |"
        )
    return "\n".join(rows)


def goals(results: dict[str, dict[str, float]]) -> list[str]:
    best = {k: max(results, key=lambda loss, k=k: results[loss][f"test/{k}"]) for k in ("map@r", "h_ap", "asi")}
    baselines = [loss for loss in results if loss not in RANKING]
    ranking = [loss for loss in results if loss in RANKING]
    base_hit = max(results[b]["test/hit@1"] for b in baselines) if baselines else 0.0
    rank_hit = max(results[r]["test/hit@1"] for r in ranking) if ranking else 0.0
    return [
        f"- a rank loss is best on mAP@R: {'yes' if best['map@r'] in RANKING else 'no'} ({best['map@r']})",
        f"- happier is best on H-AP: {'yes' if best['h_ap'] == 'happier' else 'no'} ({best['h_ap']}); "
        f"on ASI: {'yes' if best['asi'] == 'happier' else 'no'} ({best['asi']})",
        f"- best rank-loss hit@1 within one point of the best baseline: "
        f"{'yes' if rank_hit >= base_hit - 0.01 else 'no'} ({100 * rank_hit:.2f} vs {100 * base_hit:.2f})",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60, help="batches per epoch")
    parser.add_argument("--losses", nargs="*", default=list(LOSSES))
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for loss in args.losses:
            results[loss] = run_one(loss, args.epochs, args.steps, Path(tmp))
            print(f"{loss}: {json.dumps({k: round(v, 4) for k, v in results[loss].items()})}", flush=True)
    command = f"python -m benchmarks.retrieval --epochs {args.epochs} --steps {args.steps}"
    body = "\n".join([
        "## Image retrieval: Fashion-MNIST, unseen classes",
        "",
        f"`{command}` — {machine()}",
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
        "Goals:",
        *goals(results),
    ])
    write_section("retrieval", body)
    print(body)


if __name__ == "__main__":
    main()
