"""The user-item graph: normalized adjacency and one propagation step `x -> Â x`.

Nodes are users `0..U-1` then items `U..U+I-1` (the layout of `InteractionData.edge_index`).
With `R [U, I]` the binary training matrix, the bipartite adjacency is

    A = [[0, R], [Rᵀ, 0]]                   [U + I, U + I]
    Â = D^{-1/2} A D^{-1/2},  D = diag(A 1)   (isolated nodes: row and column of zeros)

`Â` is symmetric, so the gradient of `y = Â x` is `∂L/∂x = Âᵀ ∂L/∂y = Â ∂L/∂y`: the backward pass
can reuse the forward matrix instead of transposing it. `GraphPropagation` offers the backends
compared in `benchmarks/propagation.py`; they all compute the same product:

- `"fast"` (default): CSR `torch.sparse.mm` inside `SymmetricSpMM`, a custom autograd function
  whose backward is one more `Â @ grad` (no sparse transpose, no autograd bookkeeping).
- `"csr"`, `"coo"`: plain `torch.sparse.mm` with autograd on a CSR / COO matrix.
- `"torch_sparse"`: torch-sparse's `SparseTensor` (only when `torch_sparse` is installed).
- `"pyg"`: torch_geometric message passing (`LGConv` on `edge_index`, which re-normalizes and
  scatters on every call).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn
from torch_geometric.nn import LGConv

try:  # optional backend
    import torch_sparse  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    torch_sparse = None

PROPAGATIONS = ("fast", "csr", "coo", "torch_sparse", "pyg")


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


def spmm(adjacency: Tensor, x: Tensor) -> Tensor:
    """`adjacency @ x` for a sparse CSR `adjacency [n, m]` and a dense `x [m, D]`, as a new `[n, D]`.

    `addmm` with `beta=0` writes every output entry without reading it (torch's documented
    semantics), so the output is allocated, not zero-filled and copied as `torch.sparse.mm` does
    on CPU (about 15% of its time at 4.7 M stored entries). Not differentiable: used inside the
    autograd functions below.
    """
    out = x.new_empty(adjacency.shape[0], x.shape[1])
    return torch.addmm(out, adjacency, x, beta=0, out=out)


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
    """

    @staticmethod
    def forward(ctx, adjacency: Tensor, ego: Tensor, layers: int) -> Tensor:  # type: ignore[override]
        ctx.adjacency, ctx.layers = adjacency, layers
        total = ego.clone()
        x = ego
        for _ in range(layers):
            x = spmm(adjacency, x)  # [N, D]
            total += x
        return total.div_(layers + 1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor, None]:  # type: ignore[override]
        g = grad / (ctx.layers + 1)
        h = g
        for _ in range(ctx.layers):
            h = spmm(ctx.adjacency, h).add_(g)
        return None, h, None


class GraphPropagation(nn.Module):
    """One step `x [U + I, D] -> Â x` on a fixed graph, with a choice of backend.

    The adjacency lives in non-persistent buffers (CSR parts, or `edge_index` for `"pyg"`), so
    `.to(device)` moves it with the model and checkpoints do not store it: it is rebuilt from the
    training matrix.
    """

    def __init__(self, interactions: sp.spmatrix, propagation: str = "fast") -> None:
        super().__init__()
        if propagation not in PROPAGATIONS:
            raise ValueError(f"propagation must be one of {PROPAGATIONS}, got {propagation!r}")
        if propagation == "torch_sparse" and torch_sparse is None:
            raise ValueError("propagation 'torch_sparse' needs the torch-sparse package (pip install torch-sparse)")
        self.propagation = propagation
        self.n_nodes = sum(interactions.shape)
        if propagation == "pyg":
            self.register_buffer("edge_index", edge_index(interactions), persistent=False)
            self.conv = LGConv(normalize=True)
            return
        adjacency = normalized_adjacency(interactions)
        index = np.int32 if adjacency.nnz < 2**31 else np.int64  # int32: what MKL's sparse BLAS takes without a copy
        self.register_buffer("crow", torch.from_numpy(adjacency.indptr.astype(index)), persistent=False)
        self.register_buffer("col", torch.from_numpy(adjacency.indices.astype(index)), persistent=False)
        self.register_buffer("values", torch.from_numpy(adjacency.data), persistent=False)

    def csr(self) -> Tensor:
        """`Â` as a torch sparse CSR tensor on the buffers' device."""
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


def light_propagation(propagate: GraphPropagation, ego: Tensor, layers: int) -> Tensor:
    """LightGCN's layer combination `E = 1/(K+1) Σ_{k=0..K} Â^k E⁰`, ego `[U + I, D]`.

    The `"fast"` backend computes it as one `LightPropagation`; the others layer by layer
    through autograd.
    """
    if propagate.propagation == "fast":
        return LightPropagation.apply(propagate.csr(), ego, layers)
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
    graph = GraphPropagation(attach_users(interactions, history)).to(ego.device)
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
