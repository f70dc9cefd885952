"""The interface every recommender implements (`ScoringModel`), over every model in `MODELS`."""

import inspect

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from itemrec.recsys.models import EASE, MODELS, ItemKNN, Pop
from itemrec.recsys.models.base import ScoringModel, check_history
from tests.recsys.models.conftest import random_train


def test_registry_names_and_learned_flags():
    assert {name: cls.learned for name, cls in MODELS.items()} == {
        "mf": True, "lightgcn": True, "ngcf": True, "dae": True, "pop": False, "itemknn": False, "ease": False,
    }


@pytest.mark.parametrize("name", sorted(MODELS))
def test_constructor_takes_explicit_keywords_only(name):
    parameters = inspect.signature(MODELS[name].__init__).parameters
    assert list(parameters)[:4] == ["self", "n_users", "n_items", "train"]
    assert all(p.kind is not p.VAR_KEYWORD for p in parameters.values())
    with pytest.raises(TypeError):
        MODELS[name](5, 4, random_train(5, 4, 0.5), no_such_param=1)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_scores_known_and_new_users(name):
    train = random_train(15, 8, 0.3, seed=6)
    torch.manual_seed(0)
    model = MODELS[name](15, 8, train).eval()
    known = model.user_vectors(torch.tensor([0, 3, 14]))
    items = model.item_vectors()
    new = model.new_user_vectors(random_train(2, 8, 0.4, seed=7))
    assert (known @ items.T).shape == (3, 8) and (new @ items.T).shape == (2, 8)
    assert torch.isfinite(known).all() and torch.isfinite(new).all()
    if not model.learned:
        with pytest.raises(NotImplementedError):
            model()


def test_wrong_train_shape_is_an_error():
    with pytest.raises(ValueError, match="expected"):
        MODELS["mf"](5, 4, sp.csr_matrix((5, 3)))


def test_baseline_vectors_come_in_chunks():
    train = random_train(50, 10, 0.3, seed=5)
    for model in (Pop(50, 10, train), ItemKNN(50, 10, train), EASE(50, 10, train)):
        full = model.user_vectors(torch.arange(50)) @ model.item_vectors().T
        chunks = [model.user_vectors(torch.arange(s, min(s + 16, 50))) @ model.item_vectors().T for s in range(0, 50, 16)]
        torch.testing.assert_close(torch.cat(chunks), full)


class Counting(ScoringModel):
    """A learned model whose representations are fixed tensors; counts its forward passes."""

    def __init__(self) -> None:
        super().__init__(2, 3, sp.csr_matrix((2, 3)))
        self.users = nn.Parameter(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        self.items = nn.Parameter(torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
        self.calls = 0

    def forward(self):
        self.calls += 1
        return self.users * 1, self.items * 1


def test_representations_are_cached_in_eval_mode_only():
    model = Counting().eval()
    assert (model.user_vectors(torch.tensor([1])) @ model.item_vectors().T).tolist() == [[2.0, 4.0, 6.0]]
    model.item_vectors()
    assert model.calls == 1  # one forward for every eval-mode call
    model.train()
    model.item_vectors()
    model.item_vectors()
    assert model.calls == 3  # training mode: no cache
    model.eval().item_vectors()
    assert model.calls == 4  # train() dropped the old cache
    model.to(torch.float64).item_vectors()
    assert model.calls == 5 and model.item_vectors().dtype == torch.float64  # a dtype change drops it too
    assert not model.item_vectors().requires_grad


def test_device_of_a_model_without_parameters_is_its_buffers_or_cpu():
    assert Pop(2, 2, sp.csr_matrix(np.eye(2, dtype=np.float32))).device == torch.device("cpu")
    assert Counting().device == torch.device("cpu")


def test_history_is_binarized_and_checked():
    # a stored zero at (1, 2): no interaction
    history = sp.csr_matrix(([3.0, 0.5, 2.0, 0.0], ([0, 0, 1, 1], [1, 3, 0, 2])), shape=(2, 4))
    assert history.nnz == 4
    matrix = check_history(history, 4)
    assert matrix.dtype == np.float32 and matrix.nnz == 3
    assert matrix.toarray().tolist() == [[0, 1, 0, 1], [1, 0, 0, 0]]
    assert history[0, 1] == 3.0  # the caller's matrix is untouched
    with pytest.raises(ValueError, match=r"history must be \[n, 5\] \(one column per item\), got \(2, 4\)"):
        check_history(history, 5)
