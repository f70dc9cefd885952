"""The embedding model: pooling, the head, unit-norm embeddings of the configured size, frozen BN."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from itemrec.experiment.errors import UserError
from retrieval.config import ModelSection
from retrieval.model import AvgPool, EmbeddingHead, GeM, build_model


def test_gem_is_a_generalized_mean_with_a_learnable_power():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # [1, 1, 2, 2]
    gem = GeM(p=3.0)
    assert isinstance(gem.p, nn.Parameter) and gem.p.item() == 3.0
    torch.testing.assert_close(gem(x), torch.tensor([[(100 / 4) ** (1 / 3)]]))  # (1+8+27+64)/4
    torch.testing.assert_close(GeM(p=1.0)(x), AvgPool()(x))
    torch.testing.assert_close(AvgPool()(x), torch.tensor([[2.5]]))
    gem(x).sum().backward()
    h = 1e-3  # the power's gradient against a central difference of the closed form
    mean_power = lambda p: ((1 + 2**p + 3**p + 4**p) / 4) ** (1 / p)  # noqa: E731
    assert gem.p.grad.item() == pytest.approx((mean_power(3.0 + h) - mean_power(3.0 - h)) / (2 * h), rel=1e-3)


@pytest.mark.parametrize("pooling", ["avg", "gem"])
def test_head_pools_projects_and_normalizes(pooling):
    torch.manual_seed(0)
    head = EmbeddingHead(in_dim=6, dim=4, pooling=pooling, layer_norm=True)
    assert isinstance(head.norm, nn.LayerNorm) and isinstance(head.proj, nn.Linear)
    out = head(torch.rand(3, 6, 5, 5))
    assert out.shape == (3, 4) and out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))


def test_small_cnn_model_gives_unit_embeddings_of_the_configured_size():
    torch.manual_seed(0)
    model = build_model(ModelSection(backbone="small_cnn", dim=16), in_channels=1).eval()
    with torch.no_grad():
        out = model(torch.rand(5, 1, 28, 28))
    assert out.shape == (5, 16)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))


def test_features_mode_uses_a_two_layer_mlp():
    torch.manual_seed(0)
    model = build_model(ModelSection(backbone="features", dim=8, hidden=32), feature_dim=12)
    first, _, last = model.head.proj
    assert (first.in_features, first.out_features, last.out_features) == (12, 32, 8)
    out = model(torch.randn(4, 12))
    assert out.shape == (4, 8)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(4))
    with pytest.raises(UserError, match="features needs a features dataset"):
        build_model(ModelSection(backbone="features", dim=8))


def test_frozen_batch_norm_stays_in_eval_mode_and_untrained():
    torch.manual_seed(0)
    model = build_model(ModelSection(backbone="small_cnn", dim=8, frozen_bn=True), in_channels=1).train()
    norms = model.batch_norms()
    assert len(norms) == 3
    assert all(not m.training and not any(p.requires_grad for p in m.parameters()) for m in norms)
    assert model.training and model.head.training
    before = [m.running_mean.clone() for m in norms]
    model(torch.rand(4, 1, 28, 28))
    assert all(torch.equal(m.running_mean, b) for m, b in zip(norms, before))

    free = build_model(ModelSection(backbone="small_cnn", dim=8), in_channels=1).train()
    assert all(m.training and m.weight.requires_grad for m in free.batch_norms())
    free(torch.rand(4, 1, 28, 28))
    assert not torch.equal(free.batch_norms()[0].running_mean, torch.zeros_like(before[0]))
