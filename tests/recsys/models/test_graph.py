import numpy as np
import pytest
import scipy.sparse as sp
import torch

from itemrec.recsys.models import LightGCN
from itemrec.recsys.models.graph import (
    LOCALITY_MIN_NODES,
    GraphPropagation,
    LightPropagation,
    SymmetricSpMM,
    attach_users,
    edge_index,
    inverse_permutation,
    light_propagation,
    locality_order,
    normalized_adjacency,
    permute_symmetric,
    sparse_csr,
    spmm,
    torch_sparse,
)
from tests.recsys.models.conftest import (
    dense_light_propagation,
    dense_normalized_adjacency,
    random_train,
)


def test_normalized_adjacency_equals_dense_formula(train):
    got = torch.tensor(normalized_adjacency(train).toarray(), dtype=torch.float64)
    torch.testing.assert_close(got, dense_normalized_adjacency(train), atol=1e-6, rtol=0)
    assert np.allclose(got, got.T)


def test_isolated_nodes_have_zero_rows():
    train = random_train(6, 5, 0.5).tolil()
    train[2] = 0  # a user without interactions
    train = train.tocsr()
    adjacency = normalized_adjacency(train).toarray()
    assert not adjacency[2].any() and not adjacency[:, 2].any()
    assert np.isfinite(adjacency).all()


def test_edge_index_has_both_directions(train):
    index = edge_index(train)
    u, i = train.nonzero()
    pairs = set(zip(index[0].tolist(), index[1].tolist()))
    assert len(pairs) == 2 * train.nnz
    assert all((a, b + 12) in pairs and (b + 12, a) in pairs for a, b in zip(u, i))


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_symmetric_spmm_gradcheck():
    adjacency = dense_normalized_adjacency(random_train(5, 4, 0.5))
    csr = adjacency.to_sparse_csr()
    x = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: SymmetricSpMM.apply(csr, t), (x,))


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_spmm_equals_dense_product_including_empty_rows():
    train = random_train(6, 5, 0.5).tolil()
    train[2] = 0  # an isolated user: a row of zeros in the adjacency
    adjacency = dense_normalized_adjacency(train.tocsr())
    x = torch.randn(11, 3, dtype=torch.float64)
    got = spmm(adjacency.to_sparse_csr(), x)
    torch.testing.assert_close(got, adjacency @ x)
    assert not got[2].any()  # written, not left as allocated


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("layers", [0, 1, 3])
def test_light_propagation_gradcheck(layers):
    csr = dense_normalized_adjacency(random_train(5, 4, 0.5)).to_sparse_csr()
    ego = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: LightPropagation.apply(csr, t, layers), (ego,))


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_fast_light_propagation_is_bitwise_the_layer_by_layer_graph(layers):
    """One autograd node, Horner backward: the same sums as autograd through the layers."""
    train = random_train(40, 30, 0.2, seed=4)
    fast = GraphPropagation(train, "fast")
    ego = torch.randn(70, 8)
    weight = torch.randn(70, 8)
    outputs = []
    for layer_by_layer in (False, True):
        x = ego.clone().requires_grad_(True)
        if layer_by_layer:
            total, h = x, x
            for _ in range(layers):
                h = SymmetricSpMM.apply(fast.csr(), h)
                total = total + h
            out = total / (layers + 1)
        else:
            out = light_propagation(fast, x, layers)
        (out * weight).sum().backward()
        outputs.append((out.detach(), x.grad))
    (out_a, grad_a), (out_b, grad_b) = outputs
    assert torch.equal(out_a, out_b) and torch.equal(grad_a, grad_b)


def test_lightgcn_forward_and_gradients_equal_dense_reference(train):
    torch.manual_seed(0)
    model = LightGCN(12, 9, train, dim=4, layers=3)
    users, items = model()
    weight = torch.randn(21, 4)
    (torch.cat([users, items]) * weight).sum().backward()

    ego = model.ego.detach().double().requires_grad_(True)
    reference = dense_light_propagation(dense_normalized_adjacency(train), ego, 3)
    (reference * weight.double()).sum().backward()
    torch.testing.assert_close(torch.cat([users, items]).detach().double(), reference.detach(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(model.ego.grad.double(), ego.grad, atol=1e-6, rtol=1e-5)


BACKENDS = ["csr", "coo", "pyg", pytest.param("torch_sparse", marks=pytest.mark.skipif(torch_sparse is None, reason="torch-sparse not installed"))]


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_equals_the_fast_path(train, backend):
    x = torch.randn(21, 5)
    fast_x, other_x = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    fast = GraphPropagation(train, "fast")(fast_x)
    other = GraphPropagation(train, backend)(other_x)
    torch.testing.assert_close(other, fast, atol=1e-6, rtol=1e-5)
    weight = torch.randn(21, 5)
    (fast * weight).sum().backward()
    (other * weight).sum().backward()
    torch.testing.assert_close(other_x.grad, fast_x.grad, atol=1e-6, rtol=1e-5)


def test_lightgcn_pyg_model_equals_fast_model(train):
    torch.manual_seed(3)
    fast = LightGCN(12, 9, train, dim=8)
    pyg = LightGCN(12, 9, train, dim=8, propagation="pyg")
    pyg.load_state_dict(fast.state_dict())
    for a, b in zip(fast(), pyg()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_unknown_backend_is_an_error(train):
    with pytest.raises(ValueError, match="propagation must be one of"):
        GraphPropagation(train, "dense")


def test_adjacency_follows_dtype_and_device_changes(train):
    torch.manual_seed(0)
    model = LightGCN(12, 9, train, dim=4).double()
    users, _ = model()
    assert users.dtype == torch.float64 and model.propagate.values.dtype == torch.float64
    assert "propagate.values" not in model.state_dict()  # rebuilt from train, not checkpointed
    if torch.cuda.is_available():
        users, _ = model.cuda()()
        assert users.is_cuda


def test_eval_cache_is_dropped_on_train(train):
    torch.manual_seed(0)
    model = LightGCN(12, 9, train, dim=4).eval()
    first = model.item_vectors()
    assert model.item_vectors() is first  # one propagation while in eval mode
    with torch.no_grad():
        model.ego.add_(1.0)
    model.train().eval()
    assert not torch.equal(model.item_vectors(), first)


def test_attach_users_appends_rows(train):
    history = random_train(3, 9, 0.4, seed=5)
    enlarged = attach_users(train, history)
    assert enlarged.shape == (15, 9)
    assert (enlarged[12:] != history).nnz == 0


def test_sparse_csr_round_trip(train):
    adjacency = normalized_adjacency(train)
    csr = sparse_csr(
        torch.from_numpy(adjacency.indptr.astype(np.int64)),
        torch.from_numpy(adjacency.indices.astype(np.int64)),
        torch.from_numpy(adjacency.data),
        21,
    )
    assert np.allclose(csr.to_dense().numpy(), adjacency.toarray())


def two_communities(seed: int):
    """Two disconnected blocks of 60 users x 40 items, interleaved in the node numbering; the
    part (0/1: users of block a/b, 2/3: items of block a/b) of every node."""
    a, b = random_train(60, 40, 0.3, seed=seed), random_train(60, 40, 0.3, seed=seed + 1)
    block = sp.block_diag([a, b], format="csr")
    users, items = np.random.default_rng(seed).permutation(120), np.random.default_rng(seed + 1).permutation(80)
    part = np.concatenate([np.where(users < 60, 0, 1), np.where(items < 40, 2, 3)])
    return block[users][:, items].tocsr(), part


def test_locality_order_is_a_deterministic_permutation_grouping_connected_nodes():
    train, part = two_communities(seed=1)
    adjacency = normalized_adjacency(train)
    order = locality_order(adjacency, clusters=4)
    assert np.array_equal(np.sort(order), np.arange(200))
    assert np.array_equal(order, locality_order(adjacency, clusters=4))  # same seed, same order
    ordered = part[order]
    assert np.count_nonzero(np.diff(ordered)) == 3  # each part (a block's users, its items) contiguous
    for k in range(4):
        assert np.all(np.diff(order[ordered == k]) > 0)  # node-id order inside a cluster


def test_permute_symmetric_is_p_a_pt():
    adjacency = normalized_adjacency(random_train(7, 6, 0.4, seed=2))
    order = np.random.default_rng(0).permutation(13)
    permuted = permute_symmetric(adjacency, order)
    dense = adjacency.toarray()
    assert np.array_equal(permuted.toarray(), dense[order][:, order])
    assert permuted.has_sorted_indices
    assert np.array_equal(inverse_permutation(order)[order], np.arange(13))


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("layers", [1, 3])
def test_ordered_light_propagation_gradcheck(layers):
    adjacency = dense_normalized_adjacency(random_train(5, 4, 0.5))
    order = torch.from_numpy(np.random.default_rng(1).permutation(9))
    inverse = torch.argsort(order)
    csr = adjacency[order][:, order].to_sparse_csr()
    ego = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: LightPropagation.apply(csr, t, layers, order, inverse), (ego,))
    reference = dense_light_propagation(adjacency, ego.detach(), layers)
    torch.testing.assert_close(LightPropagation.apply(csr, ego, layers, order, inverse).detach(), reference)


@pytest.mark.parametrize("layers", [1, 3])
def test_locality_order_keeps_values_and_gradients(layers):
    """The renumbered products sum the same terms in another order: equal to 1e-6."""
    train = random_train(60, 45, 0.1, seed=6)
    plain, ordered = GraphPropagation(train, locality=False), GraphPropagation(train, locality=True)
    assert plain.order is None and ordered.order is not None
    assert not torch.equal(ordered.order, torch.arange(105))  # a real renumbering
    ego = torch.randn(105, 16)
    weight = torch.randn(105, 16)
    results = []
    for graph in (plain, ordered):
        x = ego.clone().requires_grad_(True)
        out = light_propagation(graph, x, layers)
        (out * weight).sum().backward()
        step = x.detach().clone().requires_grad_(True)
        single = graph(step)
        (single * weight).sum().backward()
        results.append((out.detach(), x.grad, single.detach(), step.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-6)


def test_locality_order_only_on_large_graphs(train):
    assert GraphPropagation(train).order is None  # 21 nodes < LOCALITY_MIN_NODES
    assert LOCALITY_MIN_NODES > 10_000  # ml-1m (9.7 k nodes) keeps the plain numbering
    assert GraphPropagation(train, "csr", locality=True).order is None  # "fast" only


def test_lightgcn_with_locality_order_equals_plain(train):
    torch.manual_seed(0)
    plain = LightGCN(12, 9, train, dim=4)
    ordered = LightGCN(12, 9, train, dim=4)
    ordered.propagate = GraphPropagation(ordered.interactions, locality=True)
    ordered.load_state_dict(plain.state_dict())
    for a, b in zip(plain(), ordered()):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-6)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_spmm_kernel_equals_dense_and_mkl_on_any_thread_count(dtype):
    adjacency = normalized_adjacency(random_train(30, 25, 0.2, seed=3))
    csr = sparse_csr(
        torch.from_numpy(adjacency.indptr), torch.from_numpy(adjacency.indices),
        torch.from_numpy(adjacency.data).to(dtype), 55,
    )
    x = torch.randn(55, 7, dtype=dtype).T.contiguous().T  # column-major: copied to rows first
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 3):
            torch.set_num_threads(n)
            results.append(spmm(csr, x))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(results[0], results[1])  # rows split over threads, each row summed alike
    torch.testing.assert_close(results[0], torch.tensor(adjacency.toarray(), dtype=dtype) @ x)
    mkl = torch.addmm(x.new_empty(55, 7), csr, x, beta=0)
    torch.testing.assert_close(results[0], mkl, atol=1e-6, rtol=1e-6)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_spmm_row_and_column_hints_keep_the_full_products_sums():
    adjacency = normalized_adjacency(random_train(30, 25, 0.2, seed=5))
    csr = sparse_csr(torch.from_numpy(adjacency.indptr), torch.from_numpy(adjacency.indices), torch.from_numpy(adjacency.data), 55)
    generator = torch.Generator().manual_seed(0)
    rows = torch.rand(55, generator=generator) < 0.3
    columns = torch.rand(55, generator=generator) < 0.4
    x = torch.randn(55, 6, generator=generator)
    sparse_x = x * columns[:, None]  # zero outside `columns`, as the hint says
    threads = torch.get_num_threads()
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            full = spmm(csr, x)
            only_rows = spmm(csr, x, rows=rows)
            assert torch.equal(only_rows[rows], full[rows]) and not only_rows[~rows].any()
            assert torch.equal(spmm(csr, sparse_x, columns=columns), spmm(csr, sparse_x))
            both = spmm(csr, sparse_x, rows=rows, columns=columns)
            assert torch.equal(both[rows], spmm(csr, sparse_x)[rows]) and not both[~rows].any()
            none = spmm(csr, x, rows=torch.zeros(55, dtype=torch.bool))
            assert not none.any()
    finally:
        torch.set_num_threads(threads)
    # a column mask over an `x` that is not zero outside it skips real terms: the hint is not checked
    assert not torch.equal(spmm(csr, x, columns=columns), full)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("ordered", [False, True])
def test_light_propagation_of_needed_rows_is_masked_and_its_gradient_exact(ordered):
    adjacency = dense_normalized_adjacency(random_train(5, 4, 0.5))
    order = torch.from_numpy(np.random.default_rng(2).permutation(9)) if ordered else None
    inverse = torch.argsort(order) if ordered else None
    csr = (adjacency[order][:, order] if ordered else adjacency).to_sparse_csr()
    needed = torch.tensor([1, 0, 0, 1, 0, 1, 1, 0, 0], dtype=torch.bool)
    ego = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
    for layers in (1, 2, 3):
        function = lambda t, k=layers: LightPropagation.apply(csr, t, k, order, inverse, needed)  # noqa: E731
        assert torch.autograd.gradcheck(function, (ego,))
        reference = dense_light_propagation(adjacency, ego.detach(), layers) * needed[:, None]
        torch.testing.assert_close(function(ego).detach(), reference)


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("locality", [False, True])
def test_needed_rows_give_the_full_propagations_values_and_gradients_bitwise(layers, locality):
    """A loss reading only the needed rows: the same numbers as with every row propagated."""
    graph = GraphPropagation(random_train(60, 45, 0.1, seed=7), locality=locality)
    generator = torch.Generator().manual_seed(layers)
    needed = torch.rand(105, generator=generator) < 0.2
    ego = torch.randn(105, 16, generator=generator)
    weight = torch.randn(105, 16, generator=generator) * needed[:, None]
    results = []
    for mask in (None, needed):
        x = ego.clone().requires_grad_(True)
        out = light_propagation(graph, x, layers, mask)
        (out * weight).sum().backward()
        results.append((out.detach(), x.grad))
    (full, grad_full), (part, grad_part) = results
    assert torch.equal(part[needed], full[needed]) and not part[~needed].any()
    assert torch.equal(grad_part, grad_full)


def test_lightgcn_forward_on_a_batchs_rows_equals_the_full_forward_there(train):
    torch.manual_seed(0)
    model = LightGCN(12, 9, train, dim=4, layers=2)
    users, items = torch.tensor([3, 0, 3]), torch.tensor([[1, 8], [1, 4]])
    user_all, item_all = model(users, items)
    full_users, full_items = model()
    assert torch.equal(user_all[[0, 3]], full_users[[0, 3]]) and torch.equal(item_all[[1, 4, 8]], full_items[[1, 4, 8]])
    assert user_all.count_nonzero(1).eq(0).sum() == 10 and item_all.count_nonzero(1).eq(0).sum() == 6
