import pytest

from itemrec.experiment.config import NamedSpec
from itemrec.experiment.errors import UserError
from itemrec.experiment.registry import LOSSES, accepted_parameters, build_loss
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
        (NamedSpec(name="supap"), "loss.name: unknown loss 'supap' (known: bpr, calibration"),
        (NamedSpec(name="sup_ap", taux=1.0), "loss.taux: unknown parameter for sup_ap (known: tau, rho"),
    ],
)
def test_bad_loss_specs(spec, message):
    with pytest.raises(UserError) as err:
        build_loss(spec)
    assert message in str(err.value)


def test_required_arguments_are_not_settable_from_config():
    with pytest.raises(UserError, match=r"loss\.num_classes: unknown parameter"):
        build_loss(NamedSpec(name="happier", num_classes=3), num_classes=5, dim=8)


def test_every_registered_loss_builds_with_defaults():
    for name in LOSSES:
        extra = {"num_classes": 3, "dim": 4} if name == "happier" else {}
        assert build_loss(NamedSpec(name=name), **extra) is not None


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
        ("losses", NamedSpec(name="roadmap", alpha=2), "loss", 0, "loss.alpha: must be in [-1, 1]"),
        ("losses", NamedSpec(name="sup_recall_at_k", ks=[0, 4]), "loss", 0, "loss.ks: must be a list of integers >= 1"),
        ("losses", NamedSpec(name="sampled_softmax", temperature="hot"), "loss", 0, "loss.temperature: must be a valid number"),
    ],
)
def test_bad_values_name_the_key(registry, spec, section, n_args, message):
    from itemrec.experiment.registry import check_spec
    from itemrec.recsys.models import MODELS

    with pytest.raises(UserError) as err:
        check_spec(MODELS if registry == "models" else LOSSES, spec, section, n_args)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_values_are_converted_to_the_annotated_types():
    loss = build_loss(NamedSpec(name="sup_recall_at_k", ks=[1, 2], tau=1))
    assert loss.ks == (1, 2) and isinstance(loss.tau, float)


def test_every_default_satisfies_the_rules():
    """The rules never reject what a component does by default."""
    import inspect

    from itemrec.experiment.registry import _check_value
    from itemrec.recsys.models import MODELS
    from retrieval.losses import BASELINES

    for registry in (MODELS, LOSSES, BASELINES):
        for cls in registry.values():
            for name, param in accepted_parameters(cls).items():
                if param.default is not inspect.Parameter.empty:
                    _check_value(cls, param, param.default, name)
