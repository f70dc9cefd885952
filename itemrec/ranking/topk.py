"""Full ranking over a whole catalogue, chunked so that queries × items is never held at once."""

from __future__ import annotations

import torch
from torch import Tensor

DEFAULT_CHUNK_ELEMENTS = 2**21
"""Largest score block (queries × items) computed at once."""


def exclusion_coordinates(exclude: Tensor, start: int, stop: int) -> tuple[Tensor, Tensor]:
    """Rows (relative to `start`) and columns of the stored entries of CSR rows `start:stop`."""
    crow, col = exclude.crow_indices(), exclude.col_indices()
    lo, hi = int(crow[start]), int(crow[stop])
    counts = crow[start + 1 : stop + 1] - crow[start:stop]
    rows = torch.repeat_interleave(torch.arange(stop - start, device=crow.device), counts)
    return rows, col[lo:hi]


@torch.no_grad()
def full_ranking_topk(
    queries: Tensor,
    items: Tensor,
    k: int,
    exclude: Tensor | None = None,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> tuple[Tensor, Tensor]:
    """Top-k items of every query by dot product, excluded items masked.

    `queries [U, D]`, `items [I, D]`; `exclude` is a sparse CSR tensor `[U, I]` of items that
    must not be recommended (e.g. the training interactions), or None. Scores are computed in
    blocks of at most `chunk_elements` (queries × items), so memory is `O(chunk + U · k)`.
    Returns `(indices [U, k'], scores [U, k'])` with `k' = min(k, I)`, best first. A query with
    fewer than k' allowed items gets the excluded ones last, with score `-inf`.
    """
    assert queries.dim() == 2 and items.dim() == 2 and queries.shape[1] == items.shape[1]
    u, i = queries.shape[0], items.shape[0]
    if exclude is not None:
        assert exclude.layout == torch.sparse_csr, "exclude must be a sparse CSR tensor"
        assert tuple(exclude.shape) == (u, i), f"exclude is {tuple(exclude.shape)}, expected {(u, i)}"
        exclude = exclude.to(queries.device)
    k = min(k, i)
    chunk = max(1, chunk_elements // max(i, 1))
    top_idx = torch.empty(u, k, dtype=torch.long, device=queries.device)
    top_val = torch.empty(u, k, dtype=queries.dtype, device=queries.device)
    items_t = items.T  # [D, I]
    for start in range(0, u, chunk):
        stop = min(start + chunk, u)
        block = queries[start:stop] @ items_t  # [c, I]
        if exclude is not None:
            rows, cols = exclusion_coordinates(exclude, start, stop)
            block[rows, cols] = float("-inf")
        val, idx = torch.topk(block, k, dim=1)
        top_idx[start:stop], top_val[start:stop] = idx, val
    return top_idx, top_val
