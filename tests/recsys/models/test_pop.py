import numpy as np
import scipy.sparse as sp
import torch

from itemrec.recsys.models import Pop


def test_pop_scores_items_by_training_count():
    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 0]], dtype=np.float32))
    model = Pop(3, 4, train)
    scores = model.user_vectors(torch.tensor([0, 2])) @ model.item_vectors().T
    assert scores.tolist() == [[3.0, 2.0, 1.0, 0.0]] * 2
    new = model.new_user_vectors(sp.csr_matrix((5, 4), dtype=np.float32))
    assert (new @ model.item_vectors().T).argsort(1, descending=True)[0].tolist() == [0, 1, 2, 3]


def test_pop_counts_users_not_rating_values():
    # ratings 5 and 2 each count once; the stored zero at (0, 2) is no interaction
    train = sp.csr_matrix((np.array([5, 0, 2, 4], dtype=np.float32), ([0, 0, 1, 1], [0, 2, 0, 1])), shape=(2, 3))
    assert train.nnz == 4
    model = Pop(2, 3, train)
    assert model.item_vectors().squeeze(1).tolist() == [2.0, 1.0, 0.0]
    assert model.new_user_vectors(sp.csr_matrix(np.array([[0, 0, 7]]))).tolist() == [[1.0]]
