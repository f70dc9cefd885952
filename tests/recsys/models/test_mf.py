import numpy as np
import pytest
import scipy.sparse as sp
import torch

from itemrec.recsys.models import MF
from tests.recsys.models.conftest import random_train


def trained_like_mf() -> MF:
    """An MF whose item vectors have structure: two clusters of items along two directions."""
    torch.manual_seed(0)
    model = MF(10, 8, random_train(10, 8, 0.3), dim=4)
    with torch.no_grad():
        model.item_embedding[:4] = torch.tensor([1.0, 0, 0, 0]) + 0.1 * torch.randn(4, 4)
        model.item_embedding[4:] = torch.tensor([0, 1.0, 0, 0]) + 0.1 * torch.randn(4, 4)
    return model.eval()


def history_rows(rows: list[list[int]], n_items: int = 8) -> sp.csr_matrix:
    data = [(r, i) for r, items in enumerate(rows) for i in items]
    users, items = zip(*data)
    return sp.csr_matrix((np.ones(len(data), dtype=np.float32), (users, items)), shape=(len(rows), n_items))


def test_forward_and_l2(train):
    torch.manual_seed(0)
    model = MF(12, 9, train, dim=5)
    users, items = model()
    assert users.shape == (12, 5) and items.shape == (9, 5)
    assert abs(float(model.user_embedding.detach().std()) - 0.1) < 0.03
    expected = model.user_embedding[[1, 1]].pow(2).sum() + model.item_embedding[[0]].pow(2).sum()
    torch.testing.assert_close(model.l2(torch.tensor([1, 1]), torch.tensor([0])), expected)


def test_fold_in_lowers_the_loss_and_ranks_history_items_first():
    model = trained_like_mf()
    history = history_rows([[0, 2], [5, 6, 7]])
    targets = torch.tensor(history.toarray())
    items = model.item_embedding.detach()
    start = targets @ items / targets.sum(1, keepdim=True)
    vectors = model.new_user_vectors(history)
    assert model.fold_in_loss(vectors, targets, items) < model.fold_in_loss(start, targets, items)
    scores = vectors @ items.T  # [2, 8]
    for row, mask in enumerate(targets.bool()):
        assert scores[row, mask].mean() > scores[row].mean()
        assert scores[row, mask].min() > scores[row, ~mask].mean()
    # the cluster of the history wins over the other cluster
    assert scores[0, :4].min() > scores[0, 4:].max()
    assert scores[1, 4:].min() > scores[1, :4].max()


def test_fold_in_is_deterministic_and_independent_of_chunking():
    model = trained_like_mf()
    history = history_rows([[0, 2], [5, 6, 7], [1]])
    together = model.new_user_vectors(history)
    alone = torch.cat([model.new_user_vectors(history[[r]]) for r in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.new_user_vectors(history), together, atol=0, rtol=0)


def test_fold_in_leaves_item_embeddings_untouched():
    model = trained_like_mf()
    before = model.item_embedding.detach().clone()
    model.new_user_vectors(history_rows([[0, 1]]))
    assert torch.equal(model.item_embedding.detach(), before)
    assert model.item_embedding.grad is None


def test_empty_history_folds_in_to_zero():
    model = trained_like_mf()
    assert not model.new_user_vectors(sp.csr_matrix((2, 8), dtype=np.float32)).any()


def test_init_std_scales_the_initial_embeddings():
    train = random_train(400, 300, 0.05)
    torch.manual_seed(0)
    default = MF(400, 300, train, dim=32)
    torch.manual_seed(0)
    small = MF(400, 300, train, dim=32, init_std=0.01)
    assert float(default.user_embedding.std()) == pytest.approx(0.1, rel=0.05)
    torch.testing.assert_close(small.user_embedding, default.user_embedding / 10)  # same draw, scaled
    torch.testing.assert_close(small.item_embedding, default.item_embedding / 10)
