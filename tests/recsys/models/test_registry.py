import inspect

import pytest
import scipy.sparse as sp
import torch

from itemrec.recsys.models import MODELS
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
