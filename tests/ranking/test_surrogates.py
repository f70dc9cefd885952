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
