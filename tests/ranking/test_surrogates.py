import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from itemrec.ranking.surrogates import heaviside, sigmoid_step, suprank_offset, suprank_step
from tests.ranking import reference as ref


def test_heaviside_counts_ties_as_wrong():
    assert heaviside(torch.tensor([-1e-9, 0.0, 2.0])).tolist() == [0.0, 1.0, 1.0]


@pytest.mark.parametrize("x", [-1.0, -0.02, -1e-4, 1e-4, 0.01, 0.05, 0.0500001, 0.3, 2.0])
def test_suprank_step_matches_piecewise_definition(x):
    value = float(suprank_step(torch.tensor(x, dtype=torch.float64)))
    assert value == pytest.approx(ref.suprank_step(x), rel=1e-12)


def test_suprank_step_is_continuous_at_delta_with_default_offset():
    delta = 0.05
    left = suprank_step(torch.tensor(delta, dtype=torch.float64))
    right = suprank_step(torch.tensor(delta + 1e-12, dtype=torch.float64))
    assert float(left) == pytest.approx(float(right), abs=1e-9)
    assert suprank_offset(0.01, 0.05, 0.5) == pytest.approx(1 / (1 + torch.exp(torch.tensor(-5.0)).item()) + 0.5)


@settings(max_examples=200, deadline=None)
@given(
    st.floats(-5, 5, allow_nan=False).filter(lambda x: x != 0),
    st.floats(1e-4, 1.0),
    st.floats(0.5, 2.0),
)
def test_suprank_step_upper_bounds_heaviside(x, tau, start):
    value = suprank_step(torch.tensor(x, dtype=torch.float64), tau=tau, start=start)
    assert float(value) >= float(heaviside(torch.tensor(x, dtype=torch.float64)))


def test_suprank_linear_branch_keeps_gradient_where_sigmoid_saturates():
    x = torch.tensor([1.0, 3.0], requires_grad=True)
    (g_sup,) = torch.autograd.grad(suprank_step(x).sum(), x)
    (g_sig,) = torch.autograd.grad(sigmoid_step(x).sum(), x)
    torch.testing.assert_close(g_sup, torch.tensor([100.0, 100.0]))
    assert torch.all(g_sig == 0)


# --------------------------------------------------------------------------- values and gradients at the branch points
# H-(x) = σ(x/τ) for x ≤ 0, start + σ(x/τ) for 0 < x ≤ δ, ρ(x - δ) + offset for x > δ;
# dH-/dx = σ'(x/τ)/τ for x ≤ δ, ρ for x > δ.

PARAMS = [
    dict(tau=0.01, rho=100.0, delta=0.05, start=0.5),  # the core's defaults
    dict(tau=0.05, rho=1.0, delta=0.05, start=0.5),  # the recommendation configs'
    dict(tau=0.02, rho=10.0, delta=0.1, start=0.75),
]


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _value(x: float, **params) -> float:
    return float(suprank_step(torch.tensor(x, dtype=torch.float64), **params))


def _derivative(x: float, **params) -> float:
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(suprank_step(t, **params), t)
    return float(grad)


@pytest.mark.parametrize("params", PARAMS)
def test_suprank_step_documented_values_at_the_branch_points(params):
    tau, rho, delta, start = params["tau"], params["rho"], params["delta"], params["start"]
    tiny = 1e-12
    assert _value(0.0, **params) == pytest.approx(0.5, abs=1e-15)  # H-(0) = σ(0), not start + σ(0)
    assert _value(-tiny, **params) == pytest.approx(0.5, abs=1e-9)
    assert _value(tiny, **params) == pytest.approx(start + 0.5, abs=1e-9)  # the jump of `start` right of 0
    offset = _sigmoid(delta / tau) + start
    assert _value(delta, **params) == pytest.approx(offset, abs=1e-15)  # x = δ is on the sigmoid branch
    assert _value(delta + tiny, **params) == pytest.approx(offset, abs=1e-9)  # continuous at δ
    assert _value(delta + 0.5, **params) == pytest.approx(rho * 0.5 + offset, rel=1e-12)
    custom = _value(delta + 0.5, **params, offset=3.0)
    assert custom == pytest.approx(rho * 0.5 + 3.0, rel=1e-12)


@pytest.mark.parametrize("params", PARAMS)
def test_suprank_step_documented_derivative_at_the_branch_points(params):
    tau, rho, delta = params["tau"], params["rho"], params["delta"]

    def dsigma(x):  # σ'(x/τ)/τ
        s = _sigmoid(x / tau)
        return s * (1 - s) / tau

    assert _derivative(0.0, **params) == pytest.approx(1 / (4 * tau), rel=1e-12)  # σ'(0)/τ
    assert _derivative(delta / 2, **params) == pytest.approx(dsigma(delta / 2), rel=1e-12)  # not ρ
    assert _derivative(delta, **params) == pytest.approx(dsigma(delta), rel=1e-12)  # x = δ: sigmoid branch
    assert _derivative(delta + 1e-9, **params) == pytest.approx(rho, rel=1e-12)
    assert _derivative(-delta, **params) == pytest.approx(dsigma(-delta), rel=1e-12)


def _branch_points(delta: float) -> torch.Tensor:
    """Points on every branch of `H-`, at least 1e-3 away from the kinks at 0 and δ."""
    return torch.tensor(
        [-1.0, -0.1, -0.02, -0.004, -0.001, 0.001, 0.004, delta / 2, delta - 0.002, delta + 0.002, delta + 0.3, 2.0],
        dtype=torch.float64,
    )


@pytest.mark.parametrize("params", PARAMS)
def test_suprank_step_gradcheck_on_every_branch(params):
    x = _branch_points(params["delta"]).reshape(3, 4).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: suprank_step(t, **params), (x,), eps=1e-7, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("params", PARAMS)
def test_suprank_step_backward_is_the_documented_derivative_times_the_incoming_gradient(params):
    """The custom backward scales the incoming gradient elementwise (not summed, not ignored)."""
    x = _branch_points(params["delta"]).requires_grad_(True)
    weight = torch.linspace(-2.0, 3.0, x.numel(), dtype=torch.float64)
    (grad,) = torch.autograd.grad((suprank_step(x, **params) * weight).sum(), x)
    sig = torch.sigmoid(x.detach() / params["tau"])
    derivative = torch.where(x.detach() > params["delta"], params["rho"], sig * (1 - sig) / params["tau"])
    expected = derivative * weight
    torch.testing.assert_close(grad, expected, rtol=1e-12, atol=0)
