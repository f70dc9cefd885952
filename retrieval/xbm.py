"""Cross-batch memory (XBM): a FIFO queue of past embeddings and labels, used as extra candidates.

The ranking losses then rank each query against the batch *and* the memory (`retrieval_rows`
with `memory_embeddings`), so a small batch still sees many negatives. Entries are detached:
gradients flow through the current batch only. Enqueue the batch after computing its loss, so
the batch never meets itself in the memory.
"""

from __future__ import annotations

import torch
from torch import Tensor


class CrossBatchMemory:
    """Ring buffer of `size` embeddings `[D]` and labels `[L]`."""

    def __init__(self, size: int, dim: int, num_levels: int) -> None:
        self.size = size
        self.embeddings = torch.zeros(size, dim)
        self.labels = torch.zeros(size, num_levels, dtype=torch.long)
        self.position = 0
        self.filled = 0

    def __len__(self) -> int:
        return self.filled

    def enqueue(self, embeddings: Tensor, labels: Tensor) -> None:
        """Add a batch (detached), overwriting the oldest entries once full."""
        embeddings = embeddings.detach()[-self.size :]
        labels = labels.reshape(len(labels), -1)[-self.size :]
        if self.embeddings.device != embeddings.device:
            self.embeddings, self.labels = self.embeddings.to(embeddings.device), self.labels.to(embeddings.device)
        n = len(embeddings)
        index = (self.position + torch.arange(n, device=embeddings.device)) % self.size
        self.embeddings[index] = embeddings.to(self.embeddings.dtype)
        self.labels[index] = labels
        self.position = (self.position + n) % self.size
        self.filled = min(self.size, self.filled + n)

    def get(self) -> tuple[Tensor, Tensor]:
        """`(embeddings [M, D], labels [M, L])` currently stored (M ≤ size)."""
        return self.embeddings[: self.filled], self.labels[: self.filled]
