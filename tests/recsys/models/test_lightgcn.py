import numpy as np
import pytest
import scipy.sparse as sp
import torch

from itemrec.recsys.models import LightGCN
from tests.recsys.models.conftest import (
    dense_light_propagation,
    dense_normalized_adjacency,
    random_train,
)


def model_for(train: sp.csr_matrix, **hyper) -> LightGCN:
    torch.manual_seed(0)
    return LightGCN(*train.shape, train, **hyper).eval()


def test_l2_is_the_squared_ego_norm_of_the_batch(train):
    model = model_for(train, dim=4)
    users, items = torch.tensor([0, 3, 3]), torch.tensor([1, 8])
    expected = model.ego[[0, 3, 3]].pow(2).sum() + model.ego[[12 + 1, 12 + 8]].pow(2).sum()
    torch.testing.assert_close(model.l2(users, items), expected)


def test_known_user_vectors_are_the_propagated_rows(train):
    model = model_for(train, dim=4)
    users, items = model()
    torch.testing.assert_close(model.user_vectors(torch.tensor([5, 0])), users[[5, 0]])
    torch.testing.assert_close(model.item_vectors(), items)


@pytest.mark.parametrize("init", ["mean", "zero"])
def test_new_users_equal_dense_propagation_on_the_enlarged_graph(train, init):
    model = model_for(train, dim=4, new_user_init=init)
    history = random_train(3, 9, 0.4, seed=7)
    got = model.new_user_vectors(history)

    enlarged = sp.vstack([train, history]).tocsr()
    ego = model.ego.detach().double()
    counts = torch.tensor(history.sum(1), dtype=torch.float64)
    new_ego = torch.tensor(history.toarray(), dtype=torch.float64) @ ego[12:] / counts
    new_ego = new_ego if init == "mean" else torch.zeros_like(new_ego)
    all_ego = torch.cat([ego[:12], new_ego, ego[12:]])
    reference = dense_light_propagation(dense_normalized_adjacency(enlarged), all_ego, 3)[12:15]
    torch.testing.assert_close(got.double(), reference, atol=1e-6, rtol=1e-5)


def test_one_layer_new_user_by_hand(train):
    # K = 1: e_u = (e_u⁰ + Σ_{i∈H} e_i⁰ / sqrt(|H| (d_i + 1))) / 2, e_u⁰ = mean of e_i⁰
    model = model_for(train, dim=4, layers=1)
    history = [1, 4, 6]
    row = sp.csr_matrix((np.ones(3, dtype=np.float32), ([0, 0, 0], history)), shape=(1, 9))
    degree = np.asarray(train.sum(0)).ravel()
    item_ego = model.ego.detach()[12:]
    message = sum(item_ego[i] / np.sqrt(3 * (degree[i] + 1)) for i in history)
    expected = (item_ego[history].mean(0) + message) / 2
    torch.testing.assert_close(model.new_user_vectors(row)[0], expected, atol=1e-6, rtol=1e-5)


def test_new_user_with_an_existing_users_history_nearly_gets_its_vector():
    # The new user's graph differs from the training user's only by the +1 in the degrees of
    # its items, so with items of degree ~100 the two vectors agree to ~1%.
    train = random_train(200, 10, 0.5, seed=2)
    model = model_for(train, dim=8)
    got = model.new_user_vectors(train[[0]])[0]
    swapped = LightGCN(200, 10, train, dim=8)
    swapped.load_state_dict(model.state_dict())
    with torch.no_grad():
        swapped.ego[0] = model.ego[200 + train[0].indices].mean(0)
        expected = swapped()[0][0]
    assert (got - expected).norm() / expected.norm() < 0.03


def test_empty_history_gives_a_zero_vector(train):
    model = model_for(train, dim=4)
    vectors = model.new_user_vectors(sp.csr_matrix((2, 9), dtype=np.float32))
    assert vectors.shape == (2, 4) and not vectors.any()


def test_new_user_recommendations_exclude_the_fold_in_items(train):
    model = model_for(train, dim=4)
    history = random_train(4, 9, 0.4, seed=3)
    scores = model.new_user_vectors(history) @ model.item_vectors().T  # [4, 9]
    scores[torch.tensor(history.toarray() > 0)] = float("-inf")
    top = scores.topk(9 - int(history.sum(1).max()), dim=1).indices
    for row, items in enumerate(top.tolist()):
        assert not set(items) & set(history[row].indices.tolist())


def test_new_user_vectors_do_not_change_the_model(train):
    model = model_for(train, dim=4)
    before = model.item_vectors().clone()
    model.new_user_vectors(random_train(2, 9, 0.5, seed=4))
    assert model.propagate.n_nodes == 21
    torch.testing.assert_close(model.train().eval().item_vectors(), before)


def test_bad_history_shape_is_an_error(train):
    with pytest.raises(ValueError, match="one column per item"):
        model_for(train).new_user_vectors(sp.csr_matrix((1, 5)))


def test_init_std_scales_the_ego_embeddings(train):
    torch.manual_seed(0)
    default = model_for(train)
    torch.manual_seed(0)
    small = model_for(train, init_std=0.01)
    torch.testing.assert_close(small.ego, default.ego / 10)


def _train_cosine(model: LightGCN, lr: float, train: sp.csr_matrix, steps: int) -> torch.Tensor:
    """`steps` Adam steps of sampled softmax on cosine scores over every (user, item) cell; the final scores."""
    from itemrec.ranking import sampled_softmax
    from itemrec.recsys.train import score_rows

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    relevance = torch.tensor(train.toarray())  # [U, I]
    items = torch.arange(train.shape[1]).expand(train.shape[0], -1)  # [U, I]
    for _ in range(steps):
        users, all_items = model()
        loss = sampled_softmax(score_rows(users, all_items, items, cosine=True), relevance, 0.2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        users, all_items = model()
        return score_rows(users, all_items, items, cosine=True)


def test_cosine_training_with_embeddings_c_times_larger_needs_c_times_the_learning_rate():
    # Adam's step ignores the gradient's scale and cosine scores the embeddings' scale, so embeddings
    # started c times larger and trained at c times the learning rate score the same at every step:
    # the IR-Benchmark code's normal(0, 1) embeddings at lr x train as init_std 0.1 at lr x / 10.
    train = random_train(12, 20, 0.2, seed=4)
    small = model_for(train, dim=8, layers=2, init_std=0.1).train()
    large = model_for(train, dim=8, layers=2, init_std=1.0).train()
    torch.testing.assert_close(large.ego.detach(), 10 * small.ego.detach())
    reference = _train_cosine(small, 0.001, train, steps=30)
    torch.testing.assert_close(_train_cosine(large, 0.01, train, steps=30), reference, atol=1e-4, rtol=0)
    unscaled = _train_cosine(model_for(train, dim=8, layers=2, init_std=1.0).train(), 0.001, train, steps=30)
    assert (unscaled - reference).abs().max() > 1e-2  # the same learning rate at the larger scale moves less
