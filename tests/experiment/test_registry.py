import pytest

from itemrec.errors import UserError
from itemrec.experiment.config import NamedSpec
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
