r"""SupRank's split ranks computed block by block, with a hand-written backward.

`surrogate_ranks` with SupRank's $H^-$ needs, for every positive k of every query, sums over the
`[Q, P, N]` pairs $x = s_j - s_k$. Autograd would keep several `[Q, P, N]` intermediates for the
backward pass; here forward and backward each walk over blocks of queries, rebuild `x` for the
block, reduce it to `[q, P]` / `[q, N]` and drop it, so memory is one block and the work is a few
elementwise passes per pair.

$H^-$ is rewritten so that every piece is either one elementwise pass or an exact count:

$$
H^-(x) = \sigma(\min(x, \delta) / \tau) + \text{start} \, [x > 0] + \rho \max(x - \delta, 0) + c \, [x > \delta]
$$

$$
c = \text{offset} - \sigma(\delta / \tau) - \text{start} \quad \text{(0 with the default offset)}
$$

$$
\frac{dH^-}{dx} = \sigma'(x / \tau) / \tau \, [x \le \delta] + \rho \, [x > \delta]
$$

which equals the piecewise definition of `suprank_step` on each branch, the branch points
included (`x = 0` and `x = δ` are on the left branches).

When every positive of a row has the same relevance (binary relevance, as in SupAP), the set of
"less relevant" candidates does not depend on k; then the counts (`[x > 0]`, and the exact
`rank_geq` via `[x ≥ 0]`) come from one sort of each row and a binary search, and the sums over
candidates are batched matrix-vector products.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

GROUP_ROWS = 16
"""Rows per group of similar positive counts in `suprank_ranks`."""
DEFAULT_BLOCK_ELEMENTS = 2**20
"""Pairwise elements `q · P · N` handled per block (a few MB per temporary, cache friendly)."""


def _count_above(sorted_rows: Tensor, values: Tensor, strict: bool) -> Tensor:
    """`[Q, P]` count of entries of each ascending row of `sorted_rows [Q, N]` that are `> values`
    (`strict`) or `≥ values` (exact; `-inf` entries never count)."""
    n = sorted_rows.shape[1]
    return n - torch.searchsorted(sorted_rows, values.contiguous(), right=strict)


def _block_rows(p: int, n: int, block_elements: int) -> int:
    return max(1, block_elements // max(1, p * n))


class _SupRankRanks(torch.autograd.Function):
    """`(rank_geq, rank_lt)` of `surrogate_ranks` for `H-`; gradient through `rank_lt` only.

    Shared level (every positive of a row equally relevant): the less relevant candidates are
    gathered once into `neg [Q, M]`, ascending, padded on the left with `-inf` (whose pairs give
    `H- = 0` and no gradient), so the block loop needs no mask. Otherwise the `[q, P, N]` mask
    `rel_j < rel_k` is rebuilt per block.
    """

    @staticmethod
    def forward(ctx, scores, relevance, index, tau, rho, delta, start, offset, block_elements):  # type: ignore[override]
        assert delta >= 0, f"delta must be >= 0, got {delta}"
        q, n = scores.shape
        p = index.shape[1]
        s_pos = scores.gather(1, index)  # [Q, P]
        r_pos = relevance.gather(1, index)  # [Q, P]
        top = r_pos.amax(1, keepdim=True) if p else relevance.new_zeros(q, 1)  # [Q, 1]  the positives' level, if shared
        shared = bool(((r_pos == top) | (r_pos <= 0)).all())  # padding slots may point at any candidate
        jump = offset - 1.0 / (1.0 + math.exp(-delta / tau)) - start  # c above
        rank_geq = scores.new_zeros(q, p)
        rank_lt = scores.new_zeros(q, p)
        ctx.constants = (tau, rho, delta, block_elements, shared)
        ctx.mark_non_differentiable(rank_geq)
        if shared:
            lower = relevance < top  # [Q, N]: the same for every positive of a row
            minus_inf = torch.tensor(-math.inf, dtype=scores.dtype, device=scores.device)
            geq_sorted = torch.where(lower, minus_inf, scores).sort(1).values  # [Q, N] ascending
            lt_sorted, lt_order = torch.where(lower, scores, minus_inf).sort(1)
            m = int(lower.sum(1).max()) if q else 0
            candidates, cand_index = lt_sorted[:, n - m :], lt_order[:, n - m :]  # [Q, M]
            if p:
                rank_geq = _count_above(geq_sorted, s_pos, strict=False).to(scores.dtype)  # self included
                rank_geq.clamp_min_(1.0)  # padding slots on a less relevant candidate: any finite value
                rank_lt = _count_above(lt_sorted, s_pos, strict=True).to(scores.dtype).mul_(start)  # [x > 0]
            ctx.save_for_backward(candidates, cand_index, s_pos, index)
            ctx.n = n
        else:
            candidates = scores
            ctx.save_for_backward(scores, relevance, index)
        m = candidates.shape[1]
        if p == 0 or m == 0:
            return rank_geq, rank_lt
        rows = _block_rows(p, m, block_elements)
        x_buf = scores.new_empty(min(rows, q), p, m)
        t_buf = torch.empty_like(x_buf)
        for a in range(0, q, rows):
            b = min(q, a + rows)
            x, t = x_buf[: b - a], t_buf[: b - a]
            torch.sub(candidates[a:b, None, :], s_pos[a:b, :, None], out=x)  # [q, P, M]  s_j - s_k
            if shared:
                if jump != 0.0:
                    rank_lt[a:b] += (x > delta).sum(2).to(x.dtype).mul_(jump)
                linear = torch.sub(x, delta, out=t).clamp_min_(0.0).sum(2)
                smooth = x.clamp_max_(delta).mul_(1 / tau).sigmoid_().sum(2)
                rank_lt[a:b] += linear.mul_(rho).add_(smooth)
            else:
                lower = relevance[a:b, None, :] < r_pos[a:b, :, None]  # [q, P, N]
                rank_geq[a:b] = ((x >= 0) & ~lower).sum(2).to(x.dtype)
                value = (x > 0).to(x.dtype).mul_(start)
                if jump != 0.0:
                    value += (x > delta).to(x.dtype).mul_(jump)
                value += torch.sub(x, delta, out=t).clamp_min_(0.0).mul_(rho)
                value += x.clamp_max_(delta).mul_(1 / tau).sigmoid_()
                rank_lt[a:b] = value.mul_(lower).sum(2)
        return rank_geq, rank_lt

    @staticmethod
    def backward(ctx, _grad_geq, grad_lt):  # type: ignore[override]
        tau, rho, delta, block_elements, shared = ctx.constants
        if shared:
            candidates, cand_index, s_pos, index = ctx.saved_tensors
        else:
            scores, relevance, index = ctx.saved_tensors
            candidates, s_pos, r_pos = scores, scores.gather(1, index), relevance.gather(1, index)
        q, m = candidates.shape
        p = index.shape[1]
        grad_cand = torch.zeros_like(candidates)  # [Q, M]  ∂L/∂s_j through every pair (k, j)
        grad_pos = torch.zeros_like(s_pos)  # [Q, P]  ∂L/∂s_k through every pair (k, j)
        if p and m:
            scaled = (grad_lt / tau).unsqueeze(2)  # [Q, P, 1]
            steep = (grad_lt * rho).unsqueeze(2)
            rows = _block_rows(p, m, block_elements)
            x_buf = candidates.new_empty(min(rows, q), p, m)
            d_buf = torch.empty_like(x_buf)
            above_buf = torch.empty(x_buf.shape, dtype=torch.bool, device=x_buf.device)
            for a in range(0, q, rows):
                b = min(q, a + rows)
                x, d, above = x_buf[: b - a], d_buf[: b - a], above_buf[: b - a]
                torch.sub(candidates[a:b, None, :], s_pos[a:b, :, None], out=x)  # [q, P, M]
                torch.gt(x, delta, out=above)
                sig = x.mul_(1 / tau).sigmoid_()
                # g_k · dH-/dx: σ'(x/τ)/τ on x ≤ δ, ρ on x > δ (`where` into the other buffer: an
                # output aliasing an input would cost one more copy)
                torch.ops.aten.sigmoid_backward.grad_input(scaled[a:b].expand_as(sig), sig, grad_input=d)
                d = torch.where(above, steep[a:b], d, out=x)
                if not shared:
                    d.mul_(relevance[a:b, None, :] < r_pos[a:b, :, None])
                grad_cand[a:b] += d.sum(1)
                grad_pos[a:b] -= d.sum(2)
        if shared:
            grad = torch.zeros(q, ctx.n, dtype=candidates.dtype, device=candidates.device)
            grad.scatter_add_(1, cand_index, grad_cand)
        else:
            grad = grad_cand
        grad.scatter_add_(1, index, grad_pos)
        return grad, None, None, None, None, None, None, None, None


def suprank_ranks(
    scores: Tensor,
    relevance: Tensor,
    index: Tensor,
    tau: float,
    rho: float,
    delta: float,
    start: float,
    offset: float,
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> tuple[Tensor, Tensor]:
    r"""`surrogate_ranks(scores, relevance, H-, index)` without `[Q, P, N]` intermediates.

    $$
    \mathrm{rank}_{\ge}(k) = 1 + \sum_{j \ne k, \, \mathrm{rel}_j \ge \mathrm{rel}_k} H(s_j - s_k)
    $$

    $$
    \mathrm{rank}_{<}(k) = \sum_{j : \mathrm{rel}_j < \mathrm{rel}_k} H^-(s_j - s_k)
    $$

    `rank_geq` ($\mathrm{rank}_{\ge}$) is exact, with no gradient; `rank_lt` ($\mathrm{rank}_{<}$)
    gets its gradient from the block-wise backward.

    `scores [Q, N]`, `relevance [Q, N]`, `index [Q, P]` (from `positives`); returns two `[Q, P]`.

    Rows go through in groups of `GROUP_ROWS` with similar numbers of positives, each group padded
    to its own largest count rather than the batch's (rows of users are as wide as their most
    active user: the pairwise work follows the positives there are, not `Q · P_max · N`).
    Padding slots stay finite (beyond a group's width: `rank_geq` 1, `rank_lt` 0).
    """
    q, p = index.shape
    counts = (relevance > 0).sum(1)  # [Q]
    if q <= GROUP_ROWS or p == 0:
        return _SupRankRanks.apply(scores, relevance, index, tau, rho, delta, start, offset, block_elements)
    order = counts.argsort()
    geq_parts, lt_parts = [], []
    for part in order.split(GROUP_ROWS):
        width = max(1, int(counts[part].max()))
        geq, lt = _SupRankRanks.apply(
            scores[part], relevance[part], index[part, :width], tau, rho, delta, start, offset, block_elements
        )
        geq_parts.append(F.pad(geq, (0, p - width), value=1.0))
        lt_parts.append(F.pad(lt, (0, p - width), value=0.0))
    inverse = order.argsort()
    return torch.cat(geq_parts)[inverse], torch.cat(lt_parts)[inverse]
