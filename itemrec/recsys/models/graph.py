"""The user-item graph: normalized adjacency and one propagation step `x -> Â x`.

Nodes are users `0..U-1` then items `U..U+I-1` (the layout of `InteractionData.edge_index`).
With `R [U, I]` the binary training matrix, the bipartite adjacency is

    A = [[0, R], [Rᵀ, 0]]                   [U + I, U + I]
    Â = D^{-1/2} A D^{-1/2},  D = diag(A 1)   (isolated nodes: row and column of zeros)

`Â` is symmetric, so the gradient of `y = Â x` is `∂L/∂x = Âᵀ ∂L/∂y = Â ∂L/∂y`: the backward pass
can reuse the forward matrix instead of transposing it. `GraphPropagation` offers the backends
compared in `benchmarks/propagation.py`; they all compute the same product:

- `"fast"` (default): CSR products (`spmm`: a compiled row loop on CPU, `addmm` elsewhere)
  inside `SymmetricSpMM` / `LightPropagation`, custom autograd functions whose backward is
  more products with `Â` (no sparse transpose, no autograd bookkeeping).
- `"csr"`, `"coo"`: plain `torch.sparse.mm` with autograd on a CSR / COO matrix.
- `"torch_sparse"`: torch-sparse's `SparseTensor` (only when `torch_sparse` is installed).
- `"pyg"`: torch_geometric message passing (`LGConv` on `edge_index`, which re-normalizes and
  scatters on every call).

Locality order (`"fast"`, graphs of at least `LOCALITY_MIN_NODES` nodes): a product gathers one
`D`-float row of `x` per stored entry, in a random order over the whole table on a large graph,
so it waits on memory. The nodes are renumbered once, when the graph is built, so that nodes
which share neighbours get nearby numbers (`locality_order`: clusters of a spectral embedding),
and the products run on `P Â Pᵀ`: one gather permutes the embeddings in, one permutes the result
back. `(P Â Pᵀ)(P x) = P (Â x)`, so the values are those of the product on `Â` up to float
rounding: each row sums the same terms in another order (≤ 1e-6 relative in float32, tested).
On the amazon-book shape (144 k nodes, 4.7 M stored entries) one product takes 2.3× less time.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from itemrec.recsys.parallel import kernel_threads, load_numba, run_kernel

try:  # optional backend
    import torch_sparse  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    torch_sparse = None

PROPAGATIONS = ("fast", "csr", "coo", "torch_sparse", "pyg")

LOCALITY_MIN_NODES = 2**16
"""Graphs with at least this many nodes get a locality order (`locality=None`): below it the
embedding table (≤ 16 MiB at 64-d) mostly stays in cache anyway (ml-1m has 9.7 k nodes)."""


def binary(interactions: sp.spmatrix) -> sp.csr_matrix:
    """`interactions` as a binary float32 CSR with sorted indices (explicit zeros dropped)."""
    matrix = sp.csr_matrix(interactions, dtype=np.float32, copy=True)
    matrix.eliminate_zeros()
    matrix.data[:] = 1.0
    matrix.sum_duplicates()
    matrix.sort_indices()
    return matrix


def bipartite_adjacency(interactions: sp.spmatrix) -> sp.csr_matrix:
    """`A = [[0, R], [Rᵀ, 0]]` of the binary `R [U, I]`: CSR `[U + I, U + I]`, float32."""
    r = binary(interactions)
    adjacency = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)
    adjacency.sort_indices()
    return adjacency


def normalized_adjacency(interactions: sp.spmatrix) -> sp.csr_matrix:
    """`Â = D^{-1/2} A D^{-1/2}` of the bipartite graph of `interactions [U, I]` (symmetric CSR)."""
    adjacency = bipartite_adjacency(interactions)
    degree = np.asarray(adjacency.sum(axis=1)).ravel()  # [U + I]
    inv_sqrt = np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=degree > 0)
    rows = np.repeat(np.arange(adjacency.shape[0]), np.diff(adjacency.indptr))
    adjacency.data = (inv_sqrt[rows] * adjacency.data * inv_sqrt[adjacency.indices]).astype(np.float32)
    return adjacency


def locality_order(adjacency: sp.csr_matrix, clusters: int | None = None, seed: int = 0) -> np.ndarray:
    """A renumbering `order [n]` (new position -> node) that puts nodes with shared neighbours together.

    Spectral clusters: an orthonormal basis `Q [n, 16]` of the dominant subspace of `Â²` by 4
    subspace iterations (`Q ← qr(Â² Q)`), rows L2-normalized, spherical k-means (8 Lloyd steps)
    into `clusters` groups (default `n / 512`, within 16..256); nodes sorted by cluster, node id
    within a cluster. `Â²` maps users to users and items to items (`Â` of a bipartite graph has
    the eigenvalue pairs `±λ`), and the `+1` and `-1` vectors of a connected part are orthogonal
    on its users and on its items, so the clusters hold the users of one region or the items
    of one region: a user's row then reads its items from a few contiguous stretches of the table,
    and an item's row its users (on the amazon-book shape this beat `(I + Â)`-based clusters
    that mix users and items, 0.34 against 0.41 s per product, and reverse Cuthill-McKee, 0.57 s;
    0.61-0.77 s unordered). Cost: 8 products at 16-d plus `n · clusters · 16` per k-means step
    (about 3 s on the amazon-book shape). Any permutation gives the same products up to
    rounding: this one only decides the speed.
    Deterministic under `seed`.
    """
    n = adjacency.shape[0]
    clusters = clusters or min(max(n // 512, 16), 256)
    clusters = min(clusters, n)
    generator = torch.Generator().manual_seed(seed)
    index = np.int32 if adjacency.nnz < 2**31 else np.int64
    matrix = sparse_csr(
        torch.from_numpy(adjacency.indptr.astype(index)), torch.from_numpy(adjacency.indices.astype(index)),
        torch.from_numpy(adjacency.data.astype(np.float32)), n,
    )
    basis = torch.randn(n, min(16, n), generator=generator)  # [n, 16]
    for _ in range(4):
        basis = torch.linalg.qr(spmm(matrix, spmm(matrix, basis))).Q
    points = torch.nn.functional.normalize(basis, dim=1)  # [n, 16], zero rows for isolated nodes
    centers = points[torch.randperm(n, generator=generator)[:clusters]]  # [c, 16]
    for _ in range(8):
        label = (points @ centers.T).argmax(1)  # [n]
        sums = torch.zeros_like(centers).index_add_(0, label, points)
        centers = torch.where(sums.norm(dim=1, keepdim=True) > 0, torch.nn.functional.normalize(sums, dim=1), centers)
    label = (points @ centers.T).argmax(1)
    return torch.sort(label, stable=True).indices.numpy()


def permute_symmetric(adjacency: sp.csr_matrix, order: np.ndarray) -> sp.csr_matrix:
    """`P A Pᵀ` with `(P A Pᵀ)[i, j] = A[order[i], order[j]]`, as a CSR with sorted indices."""
    permuted = adjacency[order][:, order].tocsr()
    permuted.sort_indices()
    return permuted


def inverse_permutation(order: np.ndarray) -> np.ndarray:
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order), dtype=order.dtype)
    return inverse


def edge_index(interactions: sp.spmatrix) -> Tensor:
    """Both directions of every interaction as a torch_geometric `edge_index [2, 2 nnz]`."""
    coo = binary(interactions).tocoo()
    users = torch.from_numpy(coo.row.astype(np.int64))
    items = torch.from_numpy(coo.col.astype(np.int64)) + interactions.shape[0]
    return torch.stack([torch.cat([users, items]), torch.cat([items, users])])


def sparse_csr(crow: Tensor, col: Tensor, values: Tensor, n: int) -> Tensor:
    """A square torch sparse CSR tensor from its parts (no invariant check: built by us)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values, size=(n, n), check_invariants=False)


def spmm(adjacency: Tensor, x: Tensor, rows: Tensor | None = None, columns: Tensor | None = None) -> Tensor:
    """`adjacency @ x` for a sparse CSR `adjacency [n, m]` and a dense `x [m, D]`, as a new `[n, D]`.

    Two hints, boolean masks, for products of which little is needed or little is non-zero:
    `rows [n]`: only these output rows are needed (the others may be left zero); `columns [m]`:
    the rows of `x` outside it are zero, so the stored entries of those columns are skipped (the
    sums are the same: adding `a · 0` changes no float sum). On CPU, with either, `masked_rows_times_dense`
    does only the work they leave; elsewhere they are ignored (the whole product, the same values).

    On CPU (float32 / float64): `csr_rows_times_dense`, a compiled loop over the rows that
    writes each output row once, each row's terms summed in stored order (the same sums as
    MKL's product, bitwise on this machine, 1.5× faster at 64-d on the amazon-book shape).
    Elsewhere: `addmm` with `beta=0`, which writes every output entry without reading it
    (torch's documented semantics), so the output is allocated, not zero-filled and copied as
    `torch.sparse.mm` does. Not differentiable: used inside the autograd functions below.
    """
    out = x.new_empty(adjacency.shape[0], x.shape[1])
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and adjacency.dtype == x.dtype:
        crow = adjacency.crow_indices().numpy()
        work = crow
        if rows is not None:  # split the rows by the stored entries of the needed rows
            work = np.concatenate([[0], np.cumsum(np.diff(crow) * rows.numpy())])
        kernel, threads = _csr_kernel(masked=rows is not None or columns is not None)
        bounds = np.searchsorted(work, np.linspace(0, work[-1], threads + 1)).astype(np.int64)  # rows split by stored entries
        bounds[0], bounds[-1] = 0, len(crow) - 1
        parts = (crow, adjacency.col_indices().numpy(), adjacency.values().numpy(), x.detach().contiguous().numpy(), out.numpy(), bounds)
        if rows is not None or columns is not None:
            every = np.ones(1, dtype=np.bool_)  # a mask of one True: no mask (the kernel reads index 0)
            parts += tuple(every if m is None else m.numpy() for m in (rows, columns))
            parts += (rows is not None, columns is not None)
        run_kernel(kernel, threads, *parts)
        return out
    return torch.addmm(out, adjacency, x, beta=0, out=out)


numba: Any = None
"""The numba module, imported on first use of the CSR kernel (importing it costs a fraction of a
second that models without a graph would otherwise pay)."""
_CSR_KERNELS: dict[bool, Callable[..., None]] = {}


def _csr_kernel(masked: bool = False) -> tuple[Callable[..., None], int]:
    """`csr_rows_times_dense` (or `masked_rows_times_dense`) compiled by numba (parallel, cached
    on disk), and the thread count to run it with: `torch.get_num_threads()`, so it follows the
    same setting as torch (and `run_kernel` keeps torch's setting intact through numba's first launch)."""
    global numba
    if masked not in _CSR_KERNELS:
        numba = load_numba()
        function = masked_rows_times_dense if masked else csr_rows_times_dense
        _CSR_KERNELS[masked] = numba.njit(parallel=True, nogil=True, cache=True, boundscheck=False)(function)
    return _CSR_KERNELS[masked], kernel_threads()


def csr_rows_times_dense(crow, col, values, x, out, bounds):  # pragma: no cover - compiled; checked against dense products in the tests
    """`out [n, D] = A x` for `A` in CSR parts (`crow [n+1]`, `col`, `values`) and a row-major
    `x [m, D]`: `out[i] = Σ_{p ∈ row i} values[p] · x[col[p]]`, terms added in stored order, the
    inner loop over the `D` columns (vectorized). Thread `t` computes rows `bounds[t]..bounds[t+1]`."""
    d = out.shape[1]
    for thread in numba.prange(len(bounds) - 1):
        for i in range(bounds[thread], bounds[thread + 1]):
            for j in range(d):
                out[i, j] = 0.0
            for p in range(crow[i], crow[i + 1]):
                a = values[p]
                c = col[p]
                for j in range(d):
                    out[i, j] += a * x[c, j]


def masked_rows_times_dense(crow, col, values, x, out, bounds, rows, columns, by_row, by_column):  # pragma: no cover - compiled; checked against the full product in the tests
    """`csr_rows_times_dense` restricted by two masks: rows `i` with `rows[i]` false are left zero
    (when `by_row`), and stored entries whose column `c` has `columns[c]` false are skipped (when
    `by_column`). The rows computed hold the same sums as the full product's when `x` is zero
    outside `columns`."""
    d = out.shape[1]
    for thread in numba.prange(len(bounds) - 1):
        for i in range(bounds[thread], bounds[thread + 1]):
            for j in range(d):
                out[i, j] = 0.0
            if by_row and not rows[i]:
                continue
            for p in range(crow[i], crow[i + 1]):
                c = col[p]
                if by_column and not columns[c]:
                    continue
                a = values[p]
                for j in range(d):
                    out[i, j] += a * x[c, j]


class SymmetricSpMM(torch.autograd.Function):
    """`y = Â x` for a constant symmetric sparse `Â`; backward `∂L/∂x = Â ∂L/∂y`."""

    @staticmethod
    def forward(ctx, adjacency: Tensor, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.adjacency = adjacency
        return spmm(adjacency, x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor]:  # type: ignore[override]
        return None, spmm(ctx.adjacency, grad)


class LightPropagation(torch.autograd.Function):
    """`E = 1/(K+1) Σ_{k=0..K} Â^k E⁰` for a constant symmetric sparse `Â`, in one autograd node.

    Forward: K products `x ← Â x`, summed in place. Backward, with `g = ∂L/∂E / (K+1)`:
    `∂L/∂E⁰ = Σ_k Â^k g`, by Horner `h ← g + Â h` (K products), the same sums autograd forms
    through the layer-by-layer graph, without its intermediate tensors and bookkeeping.

    With `order [N]` (and its `inverse`), `adjacency` is the renumbered `P Â Pᵀ`: the input
    (`ego`, or the gradient) is gathered into the new numbering (`x[order]`) and the result
    gathered back (`[inverse]`); `P` commutes with the sums, so the result is `E`.

    With `needed [N]` (a boolean mask: the rows a training batch reads), the result is `E` on
    those rows and zero elsewhere, `M E` with `M = diag(needed)`, and so is the gradient's:
    `∂L/∂E⁰ = Σ_k Â^k M g`. Then the last product of the forward computes the needed rows alone,
    and the first product of the backward skips the columns outside them (`spmm`'s hints): two of
    the 2K products shrink to the batch's share of the graph, with the same values on the needed
    rows as without the mask (the same sums in the same order).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, adjacency: Tensor, ego: Tensor, layers: int, order: Tensor | None = None, inverse: Tensor | None = None,
        needed: Tensor | None = None,
    ) -> Tensor:
        mask = needed if needed is None or order is None else needed.index_select(0, order)  # [N], new numbering
        ctx.adjacency, ctx.layers, ctx.order, ctx.inverse, ctx.mask = adjacency, layers, order, inverse, mask
        x = ego if order is None else ego.index_select(0, order)  # [N, D]
        total = x.clone()
        for layer in range(layers):
            x = spmm(adjacency, x, rows=mask if layer == layers - 1 else None)  # [N, D]
            total += x
        total.div_(layers + 1)
        if mask is not None:
            total.masked_fill_(~mask.unsqueeze(1), 0.0)
        return total if inverse is None else total.index_select(0, inverse)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor, None, None, None, None]:  # type: ignore[override]
        g = grad / (ctx.layers + 1)
        if ctx.order is not None:
            g = g.index_select(0, ctx.order)
        if ctx.mask is not None:
            g.masked_fill_(~ctx.mask.unsqueeze(1), 0.0)  # the output is constant (zero) there
        h = g
        for layer in range(ctx.layers):
            h = spmm(ctx.adjacency, h, columns=ctx.mask if layer == 0 else None).add_(g)
        if ctx.inverse is not None:
            h = h.index_select(0, ctx.inverse)
        return None, h, None, None, None, None


class GraphPropagation(nn.Module):
    """One step `x [U + I, D] -> Â x` on a fixed graph, with a choice of backend.

    The adjacency lives in non-persistent buffers (CSR parts, or `edge_index` for `"pyg"`), so
    `.to(device)` moves it with the model and checkpoints do not store it: it is rebuilt from the
    training matrix.

    `locality` (`"fast"` only): store `P Â Pᵀ` in a `locality_order` (`order`, `inverse`
    buffers) and permute in and out around the products; `None`: when the graph has at least
    `LOCALITY_MIN_NODES` nodes. Same results up to float rounding, faster on large graphs.
    """

    def __init__(self, interactions: sp.spmatrix, propagation: str = "fast", locality: bool | None = None) -> None:
        super().__init__()
        if propagation not in PROPAGATIONS:
            raise ValueError(f"propagation must be one of {PROPAGATIONS}, got {propagation!r}")
        if propagation == "torch_sparse" and torch_sparse is None:
            raise ValueError("propagation 'torch_sparse' needs the torch-sparse package (pip install torch-sparse)")
        self.propagation = propagation
        self.n_nodes = sum(interactions.shape)
        self.register_buffer("order", None, persistent=False)  # [N] new position -> node, with a locality order
        self.register_buffer("inverse", None, persistent=False)  # [N] node -> new position
        if propagation == "pyg":
            from torch_geometric.nn import LGConv  # seconds to import; only this backend needs it

            self.register_buffer("edge_index", edge_index(interactions), persistent=False)
            self.conv = LGConv(normalize=True)
            return
        adjacency = normalized_adjacency(interactions)
        if locality is None:
            locality = self.n_nodes >= LOCALITY_MIN_NODES
        if locality and propagation == "fast":
            ranked = locality_order(adjacency)
            adjacency = permute_symmetric(adjacency, ranked)
            self.order = torch.from_numpy(ranked.astype(np.int64))
            self.inverse = torch.from_numpy(inverse_permutation(ranked).astype(np.int64))
        index = np.int32 if adjacency.nnz < 2**31 else np.int64  # int32: what MKL's sparse BLAS takes without a copy
        self.register_buffer("crow", torch.from_numpy(adjacency.indptr.astype(index)), persistent=False)
        self.register_buffer("col", torch.from_numpy(adjacency.indices.astype(index)), persistent=False)
        self.register_buffer("values", torch.from_numpy(adjacency.data), persistent=False)

    def csr(self) -> Tensor:
        """The stored adjacency as a torch sparse CSR tensor on the buffers' device: `Â`, or
        `P Â Pᵀ` with a locality order."""
        return sparse_csr(self.crow, self.col, self.values, self.n_nodes)

    def coo(self) -> Tensor:
        """`Â` as a coalesced torch sparse COO tensor on the buffers' device."""
        rows = torch.repeat_interleave(torch.arange(self.n_nodes, device=self.crow.device), self.crow.diff().long())
        indices = torch.stack([rows, self.col.long()])
        return torch.sparse_coo_tensor(
            indices, self.values, (self.n_nodes, self.n_nodes), is_coalesced=True, check_invariants=False
        )

    def forward(self, x: Tensor) -> Tensor:
        """`Â x`, x `[U + I, D]`."""
        if self.propagation == "fast":
            if self.order is not None:
                return SymmetricSpMM.apply(self.csr(), x.index_select(0, self.order)).index_select(0, self.inverse)
            return SymmetricSpMM.apply(self.csr(), x)
        if self.propagation == "csr":
            return torch.sparse.mm(self.csr(), x)
        if self.propagation == "coo":
            return torch.sparse.mm(self.coo(), x)
        if self.propagation == "torch_sparse":
            matrix = torch_sparse.SparseTensor(
                rowptr=self.crow.long(), col=self.col.long(), value=self.values,
                sparse_sizes=(self.n_nodes, self.n_nodes), is_sorted=True, trust_data=True,
            )
            return matrix @ x
        return self.conv(x, self.edge_index)


def light_propagation(propagate: GraphPropagation, ego: Tensor, layers: int, needed: Tensor | None = None) -> Tensor:
    """LightGCN's layer combination `E = 1/(K+1) Σ_{k=0..K} Â^k E⁰`, ego `[U + I, D]`.

    The `"fast"` backend computes it as one `LightPropagation`; the others layer by layer
    through autograd. `needed [U + I]` (boolean): only these rows are read; the `"fast"`
    backend then returns zero elsewhere and does less work (`LightPropagation`), the others
    compute every row.
    """
    if propagate.propagation == "fast":
        return LightPropagation.apply(propagate.csr(), ego, layers, propagate.order, propagate.inverse, needed)
    total = ego
    x = ego
    for _ in range(layers):
        x = propagate(x)  # [U + I, D]
        total = total + x
    return total / (layers + 1)


def attach_users(train: sp.spmatrix, history: sp.spmatrix) -> sp.csr_matrix:
    """The training matrix with the rows of `history [n, I]` appended as users `U..U+n-1`."""
    return sp.vstack([binary(train), binary(history)], format="csr")


def attach_new_users(interactions: sp.spmatrix, ego: Tensor, history: sp.csr_matrix, init: str) -> tuple[GraphPropagation, Tensor]:
    """The graph with the users of `history [n, I]` appended after the `U` known users, and its
    layer-0 embeddings `[U + n + I, D]`: the learned user rows of `ego [U + I, D]`, the new users'
    from `new_user_ego`, then the learned item rows."""
    n_users = interactions.shape[0]
    graph = GraphPropagation(attach_users(interactions, history), locality=False).to(ego.device)  # one propagation: an order would not pay
    user_ego, item_ego = ego[:n_users], ego[n_users:]
    return graph, torch.cat([user_ego, new_user_ego(history, item_ego, init), item_ego])


NEW_USER_INITS = ("mean", "zero")


def new_user_ego(history: sp.csr_matrix, item_ego: Tensor, init: str) -> Tensor:
    """Layer-0 embeddings `[n, D]` of users attached to the graph with `history [n, I]`.

    `"mean"`: `e_u⁰ = 1/|H_u| Σ_{i∈H_u} e_i⁰` (zero for an empty history); `"zero"`: `e_u⁰ = 0`.
    """
    if init == "zero":
        return item_ego.new_zeros(history.shape[0], item_ego.shape[1])
    counts = np.asarray(history.sum(axis=1)).ravel()
    scale = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    mean = sp.diags(scale.astype(np.float32)) @ history  # [n, I], rows sum to 1
    coo = sp.coo_matrix(mean)
    indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data.astype(np.float32))
    weights = torch.sparse_coo_tensor(indices, values, coo.shape, check_invariants=False)
    return torch.sparse.mm(weights.to(item_ego.device), item_ego)  # [n, D]


def check_new_user_init(init: str) -> str:
    if init not in NEW_USER_INITS:
        raise ValueError(f"new_user_init must be one of {NEW_USER_INITS}, got {init!r}")
    return init
