"""Approximate Personalized PageRank whose cost per user does not grow with the graph.

Both methods estimate the quantity `ppr_scores` computes exactly (itemrec/recsys/sampling/ppr.py): the
item part of `π_u = α e_u + (1 - α) Pᵀ π_u` on the bipartite user-item graph, restart α. Written as
a sum over walk lengths, with `R_u = D_U^{-1} R` (user → item step) and `x_u^{(2k)}` the distribution
over users after `2k` steps of the walk (`x^{(0)} = e_u`):

    y_u = Σ_{k=0}^{T-1} w_k · R_uᵀ x_u^{(2k)},      w_k = α (1 - α)^{2k+1},

(`T = iterations`; exact power iteration stops at the same `T`).

**walks** (the default above the size where exact is too slow): Monte-Carlo walks with restart,
Rao-Blackwellised. `k = 0` is exact (the user's own items, `α(1-α)/d_u` each). For
`1 ≤ k ≤ hops` each of `walks` walks from `u` steps user → item → user (the first item stratified
over the user's items), and each user `w` it reaches adds its exact next step, `w_k / (walks · d_w)` to
every item of `w`, instead of the one item a plain walk would sample (on ml-1m, 200 plain walks
overlap the exact hard-negative pool by 0.41; spreading each visit, by 0.92). For `k > hops` the
walk has mixed: `x^{(2k)}` is replaced by the stationary user distribution `d_U / |E|`, whose item
step is popularity `d_I / |E|`, added in closed form. On ml-1m (α 0.15, T 10) one sampled hop with
200 walks overlaps the exact pool (ranks 101..600) by 0.944 (more hops add sampling noise faster
than they remove bias: 0.930 with 2, 0.917 with all 9). Cost per user: `walks · hops` steps plus
`Σ d_w` over the users reached, independent of the number of users and items. The walks are drawn
with numpy (seeded); spreading the visits and ranking each user's items is one compiled pass
(numba, `walk_topk`): a per-thread dense accumulator, reset after each user, and the exact top-k
from the items reached plus the most popular ones, over both cores. On the amazon-book shape
(52,643 users, 2.34 M training interactions) the table of all users' top 600 takes 27 CPU
seconds (scipy's sparse product and padded `torch.topk` blocks before: 84-99).

**push**: forward push (Andersen, Chung & Lang 2006), synchronous and batched over users: every node
whose residual is at least `eps · degree` pushes it at once (`p += r`, neighbours get
`(1 - α) r / degree`), until none does; the estimate is `p + r` on the items. Work per user is
`O(1 / (α · eps))`, independent of the graph's size, but ranking a user's items 100..600 needs a
small `eps`: on ml-1m `eps = 1e-7` overlaps the exact pool by 0.95 and costs more than exact
power iteration there (100 s against 52 s), `1e-6` by 0.22. It suits sparse graphs and short lists.

Why not an existing implementation: `torch_geometric.utils.get_ppr` (the one maintained one found)
is push only (no walks), on the whole graph with a per-node Python-dict residual, returns every
touched node of every source as Python lists (memory ∝ users × touched nodes, instead of a top-K
table), scores all nodes rather than items, and does not stop at `T` steps. On ml-1m at
`eps = 1e-6` it took 230 s (extrapolated from 300 users) for a pool overlap of 0.001. The walk
kernel here uses numba directly, the library `get_ppr` is built on.

Both return the exact method's table layout: each user's `topk` items by score, training
positives excluded (placed last with score `-inf` when a user has fewer than `topk` others).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from itemrec.experiment.runtime import progress
from itemrec.recsys.config import APPROXIMATE_PPR_METHODS, ApproximatePPRMethod
from itemrec.recsys.parallel import kernel_threads, load_numba, run_kernel

ROW_BLOCK = 1 << 24
"""Entries of the padded `[rows, candidates]` block scored by one `torch.topk` call."""
DENSE_SHARE = 4
"""Batches whose rows cover at least 1/4 of the catalogue on average are ranked as dense blocks."""


class BipartiteGraph:
    """The training graph as CSR both ways, with degrees and the user → item step `R_u`."""

    def __init__(self, train: sp.spmatrix) -> None:
        r = sp.csr_matrix(train, dtype=np.float64)
        r.data[:] = 1.0
        r.sum_duplicates()
        r.data[:] = 1.0
        self.n_users, self.n_items = r.shape
        self.by_user = r  # [U, I]
        self.by_item = r.T.tocsr()  # [I, U]
        self.user_degree = np.diff(r.indptr)  # [U]
        self.item_degree = np.diff(self.by_item.indptr)  # [I]
        inverse = np.divide(1.0, self.user_degree, out=np.zeros(self.n_users), where=self.user_degree > 0)
        self.to_items = sp.diags(inverse) @ r  # R_u [U, I], rows sum to 1 (or 0)
        self.to_items = self.to_items.tocsr()
        inverse_item = np.divide(1.0, self.item_degree, out=np.zeros(self.n_items), where=self.item_degree > 0)
        self.to_users = (sp.diags(inverse_item) @ self.by_item).tocsr()  # [I, U]
        self.by_popularity = np.argsort(-self.item_degree, kind="stable")  # [I]
        rank = np.empty(self.n_items, dtype=np.int64)
        rank[self.by_popularity] = np.arange(self.n_items)
        ranked = sp.csr_matrix((r.data, rank[r.indices], r.indptr), shape=r.shape)
        ranked.sort_indices()
        self.user_ptr = ranked.indptr.astype(np.int64)  # [U + 1]
        self.ranked_items = ranked.indices.astype(np.int64)  # [|E|] each user's items as popularity ranks
        self.ranked_popularity = self.item_degree[self.by_popularity] / max(1, int(self.item_degree.sum()))  # [I]
        self._workspace: tuple[np.ndarray, ...] | None = None

    def workspace(self, threads: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per-thread buffers of `walk_topk`: accumulators `[T, I]` (zero between calls), reached
        items `[T, I]`, candidates and their scores `[T, I + k]`."""
        shape = (threads, self.n_items + k)
        if self._workspace is None or self._workspace[2].shape != shape:
            self._workspace = (
                np.zeros((threads, self.n_items)), np.zeros((threads, self.n_items), dtype=np.int64),
                np.zeros(shape, dtype=np.int64), np.zeros(shape),
            )
        return self._workspace

    def step_items(self, users: np.ndarray, uniform: np.ndarray) -> np.ndarray:
        """One item per user, uniform over its items (`uniform` in [0, 1)); users must have items."""
        offset = (uniform * self.user_degree[users]).astype(np.int64)
        return self.by_user.indices[self.by_user.indptr[users] + offset]

    def step_users(self, items: np.ndarray, uniform: np.ndarray) -> np.ndarray:
        """One user per item, uniform over its users."""
        offset = (uniform * self.item_degree[items]).astype(np.int64)
        return self.by_item.indices[self.by_item.indptr[items] + offset]


def walk_weights(alpha: float, iterations: int) -> np.ndarray:
    """`w_k = α (1 - α)^{2k+1}`, k < iterations: the mass reaching the items after 2k + 1 steps."""
    return alpha * (1.0 - alpha) ** (2 * np.arange(iterations) + 1)


def walk_visits(
    graph: BipartiteGraph, users: np.ndarray, alpha: float, iterations: int, walks: int, hops: int,
    rng: np.random.Generator,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """The sampled user distributions of `walk_scores`: `visits [B, U]` with `Σ_k w_k x_u^{(2k)}` for
    `k ≤ hops` (`x^{(0)} = e_u` exact, the others from `walks` walks, duplicates summed), and the
    weight `[B]` of the closed-form popularity tail. `y_u ≈ visits[u] R_u + tail_u · d_I / |E|`.
    """
    weights = walk_weights(alpha, iterations)
    hops = min(hops, iterations - 1)
    n = len(users)
    live = graph.user_degree[users] > 0
    rows, cols, vals = [np.arange(n)], [users], [np.where(live, weights[0], 0.0)]
    source = np.repeat(np.flatnonzero(live), walks)  # [n_live · walks] row of each walk
    at = users[source]
    strata = (np.tile(np.arange(walks), int(live.sum())) + rng.random(len(at))) / walks
    for k in range(1, hops + 1):
        items = graph.step_items(at, strata if k == 1 else rng.random(len(at)))
        at = graph.step_users(items, rng.random(len(at)))
        rows.append(source)
        cols.append(at)
        vals.append(np.full(len(at), weights[k] / walks))
    visits = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, graph.n_users)
    )  # [B, U], duplicates summed
    visits.eliminate_zeros()
    visits.sort_indices()
    tail = np.where(live, weights[hops + 1 :].sum(), 0.0)
    return visits, tail


def walk_scores(
    graph: BipartiteGraph, users: np.ndarray, alpha: float, iterations: int, walks: int, hops: int,
    rng: np.random.Generator,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Rao-Blackwellised walk estimate of `y_u` for `users [B]` (module doc).

    Returns the sparse part `[B, I]` (steps `k ≤ hops`) and the weight `[B]` of the closed-form
    popularity tail: the full estimate is `sparse + tail[:, None] · d_I / |E|`. The table itself
    goes through `walk_topk`, which ranks the same estimate without building `sparse`.
    """
    visits, tail = walk_visits(graph, users, alpha, iterations, walks, hops, rng)
    return (visits @ graph.to_items).tocsr(), tail


def walk_topk(
    graph: BipartiteGraph, users: np.ndarray, visits: sp.csr_matrix, tail: np.ndarray, k: int,
    out_items: np.ndarray, out_scores: np.ndarray,
) -> None:
    """Top-`k` items of `visits R_u + tail · d_I / |E|` per row, positives excluded (placed last
    at `-inf` when fewer than `k` others), into `out_items [B, k]` (int64) and `out_scores [B, k]`
    (float32): the ranking of `row_topk(walk_scores(...))` in one compiled pass over the rows,
    split over `torch.get_num_threads()` threads (`_walk_topk_rows`).
    """
    kernel = _walk_topk_kernel()
    threads = kernel_threads(len(users))
    run_kernel(
        kernel, threads,
        visits.indptr.astype(np.int64), visits.indices.astype(np.int64), visits.data.astype(np.float64),
        users.astype(np.int64), graph.user_ptr, graph.ranked_items, graph.ranked_popularity, graph.by_popularity,
        tail.astype(np.float64), k, *graph.workspace(threads, k), out_items, out_scores,
    )


numba: Any = None
"""The numba module, imported on first use of the walk kernel: importing it costs a fraction of a
second that every command importing itemrec.recsys.sampling would otherwise pay."""
_COMPILED: Callable[..., None] | None = None


def _walk_topk_kernel() -> Callable[..., None]:
    """`_walk_topk_rows` compiled by numba (parallel; cached on disk next to this file)."""
    global numba, _COMPILED
    if _COMPILED is None:
        numba_module = load_numba()

        numba = numba_module
        _COMPILED = numba.njit(parallel=True, nogil=True, cache=True)(_walk_topk_rows)
    return _COMPILED


def _walk_topk_rows(
    visit_ptr, visit_user, visit_weight, users, user_ptr, user_items, popularity, by_popularity, tail, k,
    accumulator, reached_items, candidates, values, out_items, out_scores,
):  # pragma: no cover - compiled; checked against row_topk in the tests
    """`walk_topk` with items numbered by popularity rank (`user_items`, `popularity` descending;
    `by_popularity` maps a rank back to the item). Each thread takes a contiguous range of rows
    and keeps a dense accumulator `[I]` (`accumulator [T, I]`, zero between rows). Per row:

    1. spread: `acc[i] += weight_w / d_w` for each visited user `w` and item `i` of `w`;
    2. positives: `acc[i] = -inf` for the row's own items;
    3. bound: the `k`-th non-positive item by popularity, rank `r_k`, scores at least
       `L = tail · d_{r_k} / |E|`, so the `k`-th best score is at least `L`; the candidates are
       the reached non-positive items scoring `≥ L` (score `acc[i] + tail · d_i / |E|`) and the
       unreached non-positive ones of rank `≤ r_k` (score `tail · d_i / |E|`; any item of lower
       rank scores at most `L`);
    4. the `k` best candidates (`np.partition` for the threshold, ties in order, then a stable
       sort by score), then the positives at `-inf` when there are fewer than `k`.

    The accumulator is reset entry by entry as step 3 reads the reached items for the last time
    (a touched list, never a pass over `[I]`).

    Cost per row: `Σ_w d_w + d_u + r_k` plus the reached items, never `I`.
    """
    n = len(users)
    n_items = accumulator.shape[1]
    threads = accumulator.shape[0]
    for thread in numba.prange(threads):
        acc = accumulator[thread]
        reached = reached_items[thread]
        cand = candidates[thread]
        score = values[thread]
        for row in range((thread * n) // threads, ((thread + 1) * n) // threads):
            m = 0
            for j in range(visit_ptr[row], visit_ptr[row + 1]):
                w = visit_user[j]
                degree = user_ptr[w + 1] - user_ptr[w]
                if visit_weight[j] <= 0.0 or degree == 0:
                    continue
                share = visit_weight[j] / degree
                for e in range(user_ptr[w], user_ptr[w + 1]):
                    i = user_items[e]
                    if acc[i] == 0.0:
                        reached[m] = i
                        m += 1
                    acc[i] += share
            u = users[row]
            for e in range(user_ptr[u], user_ptr[u + 1]):
                i = user_items[e]
                if acc[i] == 0.0:
                    reached[m] = i
                    m += 1
                acc[i] = -np.inf
            bonus = tail[row]
            c = 0
            last = -1  # r_k
            seen = 0
            while seen < k and last + 1 < n_items:
                last += 1
                if acc[last] != -np.inf:
                    seen += 1
                    if acc[last] == 0.0:
                        cand[c] = last
                        score[c] = bonus * popularity[last]
                        c += 1
            bound = bonus * popularity[last] if seen == k else -np.inf
            for j in range(m):  # the last read of the accumulator: reset it on the way
                i = reached[j]
                total = acc[i]
                acc[i] = 0.0
                if total != -np.inf:
                    value = total + bonus * popularity[i]
                    if value >= bound:
                        cand[c] = i
                        score[c] = value
                        c += 1
            if c > k:
                threshold = np.partition(score[:c], c - k)[c - k]  # the k-th largest
                ties = k
                for j in range(c):
                    if score[j] > threshold:
                        ties -= 1
                kept = 0
                for j in range(c):  # in order: everything above the threshold, the first ties at it
                    if score[j] > threshold or (score[j] == threshold and ties > 0):
                        if score[j] == threshold:
                            ties -= 1
                        cand[kept] = cand[j]
                        score[kept] = score[j]
                        kept += 1
                c = k
            order = np.argsort(-score[:c], kind="mergesort")
            for j in range(c):
                out_items[row, j] = by_popularity[cand[order[j]]]
                out_scores[row, j] = score[order[j]]
            j = c
            for e in range(user_ptr[u], user_ptr[u + 1]):  # fewer than k non-positive items
                if j == k:
                    break
                out_items[row, j] = by_popularity[user_items[e]]
                out_scores[row, j] = -np.inf
                j += 1


def push_scores(graph: BipartiteGraph, users: np.ndarray, alpha: float, eps: float) -> sp.csr_matrix:
    """Forward-push estimate `p + r` of the item part of `π_u` for `users [B]`, `[B, I]` (module doc)."""
    n = len(users)
    residual_users = sp.csr_matrix((np.full(n, alpha), (np.arange(n), users)), shape=(n, graph.n_users))
    residual_items = sp.csr_matrix((n, graph.n_items))
    settled_items = sp.csr_matrix((n, graph.n_items))
    user_bar, item_bar = eps * graph.user_degree, eps * graph.item_degree
    while True:
        active_users, residual_users = _split_active(residual_users, user_bar)
        if active_users.nnz:
            residual_items = residual_items + (1.0 - alpha) * (active_users @ graph.to_items)
        active_items, residual_items = _split_active(residual_items, item_bar)
        if not active_items.nnz and not active_users.nnz:
            break
        settled_items = settled_items + active_items
        residual_users = residual_users + (1.0 - alpha) * (active_items @ graph.to_users)
    return (settled_items + residual_items).tocsr()


def _split_active(residual: sp.spmatrix, bar: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Entries with `r ≥ bar[column]` (and > 0), and the rest."""
    coo = residual.tocoo()
    active = (coo.data >= bar[coo.col]) & (coo.data > 0)
    def part(mask: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=coo.shape)
    return part(active), part(~active)


def row_topk(
    graph: BipartiteGraph, users: np.ndarray, scores: sp.csr_matrix, tail: np.ndarray | None, k: int,
) -> tuple[Tensor, Tensor]:
    """Top-`k` items of each row of `scores [B, I] + tail [B, 1] · d_I / |E|`, positives excluded.

    Sparse rows: the top `m = k + max d_u` of each row's non-zeros (padded blocks, `torch.topk`),
    merged with the `m` most popular items scored by the popularity term alone, duplicates kept at
    their larger score, positives dropped. This is the exact top-`k`: an item outside the row's
    top `m` has at least `m - d_u >= k` non-positive items above it, and outside the row's support
    an item scores only its popularity term, largest for the most popular items. Cost ∝ the row's
    non-zeros, never `B × I`. Rows covering much of the catalogue go through dense blocks instead.
    """
    n = len(users)
    if scores.nnz * DENSE_SHARE >= n * graph.n_items:
        return _dense_topk(graph, users, scores, tail, k)
    m = min(graph.n_items, k + int(graph.user_degree[users].max(initial=0)))
    popularity = graph.item_degree / max(1, int(graph.item_degree.sum()))
    bonus = np.zeros(n) if tail is None else tail
    values = scores.data + bonus[np.repeat(np.arange(n), np.diff(scores.indptr))] * popularity[scores.indices]
    top_items, top_scores = _padded_topk(scores.indptr, scores.indices, values, m)  # [B, m], -inf padded
    popular = torch.from_numpy(graph.by_popularity[:m].astype(np.int64))
    items = torch.cat([top_items, popular.expand(n, m)], dim=1)  # [B, 2m]
    values_t = torch.cat(
        [top_scores, torch.from_numpy(bonus).double()[:, None] * torch.from_numpy(popularity[graph.by_popularity[:m]])[None, :]],
        dim=1,
    )
    items, order = torch.sort(items, dim=1)
    values_t = values_t.gather(1, order)
    same = items[:, 1:] == items[:, :-1]  # an item twice: its row entry and its popularity entry
    larger = torch.maximum(values_t[:, 1:], values_t[:, :-1])
    values_t[:, :-1] = torch.where(same, larger, values_t[:, :-1])
    values_t[:, 1:] = torch.where(same, torch.full_like(larger, float("-inf")), values_t[:, 1:])
    values_t[_positive(graph, users, items)] = torch.finfo(torch.float32).min  # below scores, above padding
    top = torch.topk(values_t, k, dim=1)
    out_scores = top.values.float()
    out_scores[out_scores <= torch.finfo(torch.float32).min] = float("-inf")
    return items.gather(1, top.indices), out_scores


def _positive(graph: BipartiteGraph, users: np.ndarray, items: Tensor) -> Tensor:
    """`[B, C]` bool: is `items[b, c]` a training item of `users[b]` (sorted-key search)."""
    history = graph.by_user[users]
    history.sort_indices()
    keys = torch.from_numpy(np.repeat(np.arange(len(users)), np.diff(history.indptr)) * graph.n_items + history.indices)
    query = torch.arange(len(users))[:, None] * graph.n_items + items  # [B, C]
    if not len(keys):
        return torch.zeros_like(query, dtype=torch.bool)
    at = torch.searchsorted(keys, query.reshape(-1)).clamp(max=len(keys) - 1)
    return (keys[at] == query.reshape(-1)).reshape(query.shape) & (items >= 0)


def _dense_topk(
    graph: BipartiteGraph, users: np.ndarray, scores: sp.csr_matrix, tail: np.ndarray | None, k: int,
) -> tuple[Tensor, Tensor]:
    """`row_topk` through dense `[rows, I]` blocks of at most `ROW_BLOCK` scores (dense rows)."""
    popularity = torch.from_numpy(graph.item_degree / max(1, int(graph.item_degree.sum()))).float()
    step = max(1, ROW_BLOCK // graph.n_items)
    scores = scores.astype(np.float32)
    items_out, scores_out = [], []
    for start in range(0, len(users), step):
        block = torch.from_numpy(scores[start : start + step].toarray())  # [b, I]
        if tail is not None:
            block.addr_(torch.from_numpy(tail[start : start + step]).float(), popularity)
        history = graph.by_user[users[start : start + step]].tocoo()
        block[torch.from_numpy(history.row).long(), torch.from_numpy(history.col).long()] = float("-inf")
        top = torch.topk(block, k, dim=1)
        items_out.append(top.indices)
        scores_out.append(top.values)
    return torch.cat(items_out), torch.cat(scores_out)


def _padded_topk(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, k: int) -> tuple[Tensor, Tensor]:
    """Row-wise top-`k` of a CSR matrix via padded blocks and `torch.topk`.

    Short rows are padded with score `-inf` and distinct negative items `-1, -2, ...`.
    """
    counts = np.diff(indptr)
    n = len(counts)
    items_out = -torch.arange(1, k + 1).expand(n, k).clone()
    scores_out = torch.full((n, k), float("-inf"), dtype=torch.float64)
    start = 0
    while start < n:
        stop, width = start + 1, max(int(counts[start]), k)
        while stop < n and (stop + 1 - start) * max(width, int(counts[stop])) <= ROW_BLOCK:
            width = max(width, int(counts[stop]))
            stop += 1
        lo, hi = indptr[start], indptr[stop]
        local = torch.from_numpy(np.repeat(np.arange(stop - start), counts[start:stop]))
        column = torch.from_numpy(np.arange(hi - lo) - (indptr[start:stop] - lo)[local.numpy()])
        block_scores = torch.full((stop - start, width), float("-inf"), dtype=torch.float64)
        block_items = -torch.arange(1, width + 1).expand(stop - start, width).clone()  # distinct pads
        block_scores[local, column] = torch.from_numpy(values[lo:hi])
        block_items[local, column] = torch.from_numpy(indices[lo:hi].astype(np.int64))
        top = torch.topk(block_scores, k, dim=1)
        scores_out[start:stop] = top.values
        items_out[start:stop] = block_items.gather(1, top.indices)
        start = stop
    return items_out, scores_out


def item_id_dtype(n_items: int) -> torch.dtype:
    """The dtype of a PPR table's item ids: int32 (half of int64's memory) while every id fits."""
    return torch.int32 if n_items <= torch.iinfo(torch.int32).max else torch.long


def approximate_ppr_scores(
    train: sp.spmatrix,
    method: ApproximatePPRMethod,
    alpha: float = 0.15,
    iterations: int = 10,
    topk: int = 100,
    walks: int = 200,
    hops: int = 1,
    eps: float = 1e-7,
    seed: int = 0,
    batch_size: int | None = None,
    users: Tensor | None = None,
    description: str = "PPR",
    skip: int = 0,
) -> tuple[Tensor, Tensor]:
    """Each user's `topk` items by approximate PPR (`method` "walks" or "push"), like `ppr_scores`.

    Returns `items [n, K - skip]` (int32: item ids, `item_id_dtype`) and `scores [n, K - skip]`
    (float32, descending): ranks `skip + 1 .. K`, `K = min(topk, I)` (with `skip`, the
    hard-negative pool is the whole result: no second copy of a table that at 2 M users holds
    gigabytes; int32 ids halve it, 4 GB for 2 M users' 500 items instead of 8). Deterministic under `seed` (walks; push
    is deterministic). Users go in batches of `batch_size` (default 4,096 for walks, 128 for
    push, whose residuals touch many more nodes per user). Shows a progress bar on a terminal.
    """
    assert method in APPROXIMATE_PPR_METHODS, method
    graph = BipartiteGraph(train)
    chosen = np.arange(graph.n_users) if users is None else users.long().cpu().numpy()
    k = min(topk, graph.n_items)
    skip = min(max(skip, 0), k)
    rng = np.random.default_rng(seed)
    batch_size = batch_size or (4096 if method == "walks" else 128)
    items_out = torch.empty(len(chosen), k - skip, dtype=item_id_dtype(graph.n_items))  # filled in place
    scores_out = torch.empty(len(chosen), k - skip)
    with progress() as bar:
        task = bar.add_task(f"{description} ({method})", total=len(chosen), info="")
        for start in range(0, len(chosen), batch_size):
            batch = chosen[start : start + batch_size]
            if method == "walks":
                visits, tail = walk_visits(graph, batch, alpha, iterations, walks, hops, rng)
                items_np = np.empty((len(batch), k), dtype=np.int64)
                scores_np = np.empty((len(batch), k), dtype=np.float32)
                walk_topk(graph, batch, visits, tail, k, items_np, scores_np)
                items, values = torch.from_numpy(items_np), torch.from_numpy(scores_np)
            else:
                items, values = row_topk(graph, batch, push_scores(graph, batch, alpha, eps), None, k)
            items_out[start : start + len(batch)] = items[:, skip:]
            scores_out[start : start + len(batch)] = values[:, skip:]
            bar.advance(task, len(batch))
    return items_out, scores_out
