"""The core losses in a plain PyTorch loop: a small network embeds scikit-learn's 8x8 digits and
is trained with ROADMAP (SupAP + calibration) on batches of embeddings; no itemrec trainer, config
or MLflow. A seeded 70 / 30 split of the images; the script prints mAP@R on the held-out images
(each a query against all the other held-out ones) before and after training.

    python examples/digits_plain_loop.py [--epochs 15]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from itemrec.ranking import ROADMAPLoss, map_at_r, retrieval_rows


def embed_net(dim: int = 32) -> nn.Module:
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, dim))


@torch.no_grad()
def held_out_map_at_r(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """mAP@R with every test digit as a query against all the others (itself removed)."""
    emb = F.normalize(net(x), dim=1)
    scores, levels = retrieval_rows(emb, y[:, None])  # [N, N-1]
    return float(map_at_r(scores, (levels == 1).float()).mean())


def main(epochs: int = 15, batch: int = 120, seed: int = 0) -> tuple[float, float]:
    torch.manual_seed(seed)
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0  # [1797, 64]
    y = torch.tensor(digits.target)
    train = torch.rand(len(y), generator=torch.Generator().manual_seed(seed)) < 0.7
    test = ~train
    net, loss_fn = embed_net(), ROADMAPLoss()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    before = held_out_map_at_r(net, x[test], y[test])
    xs, ys = x[train], y[train]
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(xs))
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            emb = F.normalize(net(xs[idx]), dim=1)  # [B, D]
            scores, levels = retrieval_rows(emb, ys[idx, None])  # [B, B-1], itself removed
            loss = loss_fn(scores, (levels == 1).float())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss)
        print(f"epoch {epoch:2d}  loss {total / -(-len(order) // batch):.4f}")
    after = held_out_map_at_r(net, x[test], y[test])
    print(f"mAP@R on the held-out digits: {before:.3f} before training, {after:.3f} after")
    return before, after


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    main(parser.parse_args().epochs)
