import numpy as np
import pytest
import torch

from itemrec.models import LightGCN
from itemrec.models.graph import (
    GraphPropagation,
    LightPropagation,
    SymmetricSpMM,
    attach_users,
    edge_index,
    light_propagation,
    normalized_adjacency,
    sparse_csr,
    spmm,
    torch_sparse,
)
from tests.models.conftest import dense_light_propagation, dense_normalized_adjacency, random_train


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
