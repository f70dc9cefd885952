import inspect
import math
from typing import ClassVar, Literal

import pytest
import torch
from torch import nn

from itemrec.experiment.config import NamedSpec
from itemrec.experiment.errors import UserError
from itemrec.experiment.registry import (
    COSINE,
    LOSSES,
    NON_NEGATIVE,
    POSITIVE,
    RULES,
    Rule,
    _check_value,
    accepted_parameters,
    build,
    build_loss,
    check_spec,
    rule_for,
)
from itemrec.ranking import losses as F
from itemrec.ranking import modules


def test_parameters_follow_kwargs_into_base_class():
    params = accepted_parameters(modules.ROADMAPLoss)
    assert {"lam", "alpha", "beta", "tau", "rho", "delta", "start"} <= set(params)
    assert params["tau"].default == 0.01


def test_build_loss_passes_params():
    loss = build_loss(NamedSpec(name="roadmap", tau=0.05, lam=0.2))
    assert isinstance(loss, modules.ROADMAPLoss) and loss.tau == 0.05 and loss.lam == 0.2
    happier = build_loss(NamedSpec(name="happier"), num_classes=5, dim=8)
    assert happier.proxies.shape == (5, 8)


@pytest.mark.parametrize(
    "spec, message",
    [
        (NamedSpec(name="supap"), f"loss.name: unknown loss 'supap' (known: {', '.join(sorted(LOSSES))})"),
        (
            NamedSpec(name="sup_ap", taux=1.0),
            "loss.taux: unknown parameter for sup_ap (known: tau, rho, delta, start, offset, max_elements, weighting)",
        ),
    ],
)
def test_bad_loss_specs(spec, message):
    with pytest.raises(UserError) as err:
        build_loss(spec)
    assert str(err.value) == message


def test_required_arguments_are_not_settable_from_config():
    with pytest.raises(UserError, match=r"loss\.num_classes: unknown parameter"):
        build_loss(NamedSpec(name="happier", num_classes=3), num_classes=5, dim=8)


@pytest.mark.parametrize(
    "spec",
    [
        NamedSpec(name="roadmap", lam=0.3, alpha=0.8, beta=0.5, tau=0.02, rho=10.0, delta=0.1, start=0.6),
        NamedSpec(name="sup_ap", tau=0.05, rho=1.0, max_elements=1000),
        NamedSpec(name="sup_recall_at_k", ks=(1, 3), temperature=0.5),
        NamedSpec(name="smooth_ap", tau=0.03),
        NamedSpec(name="calibration", alpha=0.7, beta=0.4),
        NamedSpec(name="sampled_softmax", temperature=0.2, include_positive=False),
        NamedSpec(name="cosine_contrastive", margin=0.5, negative_weight=2.0),
    ],
)
def test_built_loss_holds_the_config_parameters(spec):
    loss = build_loss(spec)
    assert type(loss) is LOSSES[spec.name]
    assert {key: getattr(loss, key) for key in spec.params} == spec.params


def test_built_losses_compute_the_functional_form_on_hand_cases():
    one_positive = (torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
    softmax = build_loss(NamedSpec(name="sampled_softmax", temperature=0.5))(*one_positive)
    assert softmax.item() == pytest.approx(math.log1p(math.exp(-2.0)), abs=1e-6)  # -log(e² / (e² + 1))
    gap = build_loss(NamedSpec(name="calibration"))(torch.tensor([[0.5, 0.8]]), one_positive[1])
    assert gap.item() == pytest.approx((0.9 - 0.5) + (0.8 - 0.6), abs=1e-6)
    scores, relevance = torch.tensor([[0.9, 0.5, 0.2]]), torch.tensor([[1.0, 0.0, 1.0]])
    # positive 0.9: rank+ 1, H-(-0.4) = σ(-40) ≈ 0; positive 0.2: rank+ 2, H-(0.3) = ρ(0.3 - δ) + σ(δ/τ) + start
    expected = 1 - (1 / (1 + 1 / (1 + math.exp(40))) + 2 / (2 + 100 * 0.25 + 1 / (1 + math.exp(-5)) + 0.5)) / 2
    sup_ap = build_loss(NamedSpec(name="sup_ap"))(scores, relevance)
    assert sup_ap.item() == pytest.approx(expected, abs=1e-6)
    assert torch.equal(sup_ap, F.sup_ap(scores, relevance))
    roadmap = build_loss(NamedSpec(name="roadmap", lam=0.25, tau=0.05))(scores, relevance)
    assert torch.equal(roadmap, F.roadmap(scores, relevance, lam=0.25, tau=0.05))
    mixed = 0.75 * F.sup_ap(scores, relevance, tau=0.05) + 0.25 * F.calibration(scores, relevance)
    assert roadmap.item() == pytest.approx(mixed.item(), abs=1e-6)


@pytest.mark.parametrize(
    "registry, spec, section, n_args, message",
    [
        ("models", NamedSpec(name="lightgcn", dim=-1), "model", 3, "model.dim: must be >= 1 (got -1)"),
        ("models", NamedSpec(name="lightgcn", dim="big"), "model", 3, "model.dim: must be a valid integer (got 'big')"),
        ("models", NamedSpec(name="mf", dim=2.5), "model", 3, "model.dim: must be a valid integer (got 2.5)"),
        ("models", NamedSpec(name="ngcf", dropout=1.0), "model", 3, "model.dropout: must be in [0, 1) (got 1.0)"),
        ("models", NamedSpec(name="ease", lam=0), "model", 3, "model.lam: must be > 0 (got 0)"),
        ("models", NamedSpec(name="itemknn", k=0), "model", 3, "model.k: must be >= 1 (got 0)"),
        ("losses", NamedSpec(name="sup_ap", tau=0), "loss", 0, "loss.tau: must be > 0 (got 0)"),
        ("losses", NamedSpec(name="roadmap", lam=1.5), "loss", 0, "loss.lam: must be in [0, 1] (got 1.5)"),
        ("losses", NamedSpec(name="roadmap", alpha=2), "loss", 0, "loss.alpha: must be in [-1, 1] (a cosine similarity) (got 2)"),
        ("losses", NamedSpec(name="sup_recall_at_k", ks=[0, 4]), "loss", 0, "loss.ks: must be a list of integers >= 1 (got [0, 4])"),
        ("losses", NamedSpec(name="sampled_softmax", temperature="hot"), "loss", 0, "loss.temperature: must be a valid number (got 'hot')"),
        ("losses", NamedSpec(name="lambda_loss_at_k", k=0), "loss", 0, "loss.k: must be >= 1 (got 0)"),
        ("losses", NamedSpec(name="lambda_loss_at_k", temperature=-0.1), "loss", 0, "loss.temperature: must be > 0 (got -0.1)"),
    ],
)
def test_bad_values_name_the_key(registry, spec, section, n_args, message):
    from itemrec.recsys.models import MODELS

    with pytest.raises(UserError) as err:
        check_spec(MODELS if registry == "models" else LOSSES, spec, section, n_args)
    assert str(err.value) == message


def test_values_are_converted_to_the_annotated_types():
    loss = build_loss(NamedSpec(name="sup_recall_at_k", ks=[1, 2], tau=1))
    assert loss.ks == (1, 2) and isinstance(loss.tau, float)


def test_every_default_satisfies_the_rules():
    """The rules never reject what a component does by default, nor change its value."""
    from itemrec.recsys.models import MODELS
    from itemrec.recsys.sampling import SAMPLERS
    from retrieval.losses import BASELINES

    checked = 0
    for registry in (MODELS, LOSSES, BASELINES, SAMPLERS):
        for cls in registry.values():
            for name, param in accepted_parameters(cls).items():
                if param.default is not inspect.Parameter.empty:
                    assert _check_value(cls, param, param.default, name) == param.default, (cls.__name__, name)
                    checked += 1
    assert checked > 50


class _Toy(nn.Module):
    param_rules: ClassVar[dict[str, Rule]] = {"lam": POSITIVE, "margin": NON_NEGATIVE}

    def __init__(self, lam: float = 1.0, margin: float = 0.1, dim: int = 4) -> None:
        super().__init__()
        self.lam, self.margin, self.dim = lam, margin, dim


class _ToyChild(_Toy):
    param_rules: ClassVar[dict[str, Rule]] = {"margin": COSINE}

    def __init__(self, extra: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)


@pytest.mark.parametrize(
    "cls, spec, message",
    [
        (_Toy, NamedSpec(name="toy", lam=0.0), "toy.lam: must be > 0 (got 0.0)"),  # its rule, not RULES' [0, 1]
        (_Toy, NamedSpec(name="toy", margin=-0.5), "toy.margin: must be >= 0 (got -0.5)"),
        (_Toy, NamedSpec(name="toy", dim=0), "toy.dim: must be >= 1 (got 0)"),  # no own rule: RULES
        (_ToyChild, NamedSpec(name="toy", lam=-1.0), "toy.lam: must be > 0 (got -1.0)"),  # inherited
        (_ToyChild, NamedSpec(name="toy", margin=2.0), "toy.margin: must be in [-1, 1] (a cosine similarity) (got 2.0)"),
    ],
)
def test_a_class_declares_its_own_ranges(cls, spec, message):
    with pytest.raises(UserError) as err:
        build({"toy": cls}, spec, "toy")
    assert str(err.value) == message


def test_own_ranges_admit_what_the_shared_rules_would_refuse():
    toy = build({"toy": _Toy}, NamedSpec(name="toy", lam=500.0), "toy")
    assert toy.lam == 500.0
    child = build({"toy": _ToyChild}, NamedSpec(name="toy", margin=-0.5, extra=2), "toy")
    assert child.margin == -0.5
    assert rule_for(_ToyChild, "lam") is POSITIVE and rule_for(_ToyChild, "margin") is COSINE
    assert rule_for(_ToyChild, "dim") is RULES["dim"] and rule_for(_ToyChild, "extra") is None


def test_a_literal_parameter_lists_its_values():
    class Picky(nn.Module):
        def __init__(self, mode: Literal["a", "b", "c"] = "a") -> None:
            super().__init__()
            self.mode = mode

    with pytest.raises(UserError) as err:
        build({"picky": Picky}, NamedSpec(name="picky", mode="d"), "model")
    assert str(err.value) == "model.mode: must be 'a', 'b' or 'c' (got 'd')"
    assert build({"picky": Picky}, NamedSpec(name="picky", mode="c"), "model").mode == "c"
