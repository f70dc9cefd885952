import scipy.sparse as sp
import torch
import torch.nn.functional as F

from itemrec.recsys.models import NGCF
from itemrec.recsys.models.graph import GraphPropagation
from itemrec.recsys.models.ngcf import NGCFLayer
from tests.recsys.models.conftest import dense_normalized_adjacency, random_train


def dense_layer(layer: NGCFLayer, adjacency: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`LeakyReLU((Â + I) x W1ᵀ + b1 + (Â x ⊙ x) W2ᵀ + b2)` with dense float64 matrices."""
    w1, b1 = layer.sum_weight.weight.double(), layer.sum_weight.bias.double()
    w2, b2 = layer.product_weight.weight.double(), layer.product_weight.bias.double()
    identity = torch.eye(len(adjacency), dtype=torch.float64)
    mixed = (adjacency + identity) @ x @ w1.T + b1 + ((adjacency @ x) * x) @ w2.T + b2
    return F.leaky_relu(mixed, 0.2)


def dense_ngcf(model: NGCF, adjacency: torch.Tensor, ego: torch.Tensor) -> torch.Tensor:
    outputs, x = [ego], ego
    for layer in model.layers:
        x = dense_layer(layer, adjacency, x)
        outputs.append(F.normalize(x, dim=1))
    return torch.cat(outputs, 1)


def test_forward_shapes(train):
    torch.manual_seed(0)
    users, items = NGCF(12, 9, train, dim=8, layers=3)()
    assert users.shape == (12, 32) and items.shape == (9, 32)


def test_one_layer_equals_dense_reference(train):
    torch.manual_seed(0)
    layer = NGCFLayer(4, 6)
    with torch.no_grad():
        layer.sum_weight.bias.normal_()
        layer.product_weight.bias.normal_()
    x = torch.randn(21, 4)
    got = layer(x, GraphPropagation(train))
    expected = dense_layer(layer, dense_normalized_adjacency(train), x.double())
    torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=1e-5)


def test_eval_forward_equals_dense_reference_and_dropout_only_in_training(train):
    torch.manual_seed(0)
    model = NGCF(12, 9, train, dim=4, layers=2, dropout=0.5)
    expected = dense_ngcf(model, dense_normalized_adjacency(train), model.ego.detach().double())
    users, items = model.eval()()
    torch.testing.assert_close(torch.cat([users, items]).double(), expected.detach(), atol=1e-5, rtol=1e-5)
    model.train()
    first, second = model()[0], model()[0]
    assert not torch.equal(first, second)


def test_new_users_equal_dense_reference_on_the_enlarged_graph(train):
    torch.manual_seed(0)
    model = NGCF(12, 9, train, dim=4, layers=2).train()  # dropout must be off for new users
    history = random_train(2, 9, 0.4, seed=8)
    got = model.new_user_vectors(history)
    assert model.training
    ego = model.ego.detach().double()
    new_ego = torch.tensor(history.toarray(), dtype=torch.float64) @ ego[12:]
    new_ego = new_ego / torch.tensor(history.sum(1), dtype=torch.float64)
    adjacency = dense_normalized_adjacency(sp.vstack([train, history]).tocsr())
    expected = dense_ngcf(model, adjacency, torch.cat([ego[:12], new_ego, ego[12:]]))[12:14]
    torch.testing.assert_close(got.double(), expected.detach(), atol=1e-5, rtol=1e-5)


def test_gradients_reach_embeddings_and_weights(train):
    torch.manual_seed(0)
    model = NGCF(12, 9, train, dim=4, layers=2)
    users, items = model()
    (users @ items.T).sum().backward()
    assert model.ego.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.layers.parameters())
