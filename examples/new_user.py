"""Embed a new user from a list of items through the Python API, without retraining.

Trains a small LightGCN on a generated interaction table (the users in it are "known"), then
recommends for a user the model has never seen, from the items they interacted with, and checks
the same answer comes back after the recommender is exported and loaded again (what the MLflow
model of a run holds).

    python examples/new_user.py [WORKDIR]
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

from itemrec.experiment.checkpoint import load_checkpoint
from itemrec.experiment.config import load_config
from itemrec.experiment.loop import run_dir
from itemrec.recsys.frontend import train
from itemrec.recsys.recommend import Recommender


def write_interactions(path: Path, users: int = 200, groups: int = 4, per_group: int = 30) -> None:
    random.seed(0)
    lines = ["user,item"]
    for u in range(users):
        g = u % groups
        lines += [f"u{u},i{i}" for i in random.sample(range(g * per_group, (g + 1) * per_group), 10)]
    path.write_text("\n".join(lines) + "\n")


def main(work: Path, epochs: int = 8) -> list[tuple[object, float]]:
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    write_interactions(Path("interactions.csv"))
    Path("config.yaml").write_text(
        "task: recsys\nname: new_user\nseed: 0\ndevice: cpu\n"
        "data: {source: interactions.csv, split: random}\n"
        "model: {name: lightgcn, dim: 16, layers: 2}\n"
        "loss: {name: sampled_softmax, temperature: 0.1}\n"
        "sampling: {negatives: uniform, positives_per_row: 8, negatives_per_row: 32}\n"
        f"train: {{epochs: {epochs}, batch_size: 64, lr: 0.02}}\n"
        "eval: {ks: [5, 10], metric: ndcg@10}\n"
    )
    config = load_config(Path("config.yaml"))
    run_id = train(config, tracking_uri=f"sqlite:///{Path('mlflow.db').resolve()}", quiet=True)

    # the trained recommender, rebuilt from the run's checkpoint (the data is read again)
    rec = Recommender.from_checkpoint(load_checkpoint(run_dir(config, run_id) / "best.pt"), run_id)
    history = ["i0", "i3", "i7", "i11"]  # a new user who liked items of the first taste group
    recs = rec.for_new_user(history, k=5)
    print(f"new user with {history}:")
    for rank, (item, score) in enumerate(recs, 1):
        print(f"  {rank}. {item}  {score:.3f}")

    # exported and loaded again (no dataset needed): the same answer
    again = Recommender.load(rec.export(Path("export"))).for_new_user(history, k=5)
    assert again == recs
    return recs


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "example_new_user").resolve())
