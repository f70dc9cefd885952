"""Device choice, seeding and progress bars."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from itemrec.experiment import runtime
from itemrec.experiment.errors import UserError


@pytest.fixture
def restore_rngs():
    """Put the global random states back, so seeding here changes no other test's draws."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()  # noqa: NPY002
    yield
    random.setstate(states[0])
    np.random.set_state(states[1])  # noqa: NPY002
    torch.set_rng_state(states[2])


def draws(seed: int) -> tuple:
    generator = runtime.seed_everything(seed)
    return (
        random.random(),
        float(np.random.rand()),  # noqa: NPY002
        torch.rand(3).tolist(),
        torch.rand(3, generator=generator).tolist(),
    )


def test_same_seed_same_draws_other_seed_other_draws(restore_rngs):
    first, again, other = draws(7), draws(7), draws(8)
    assert first == again
    assert all(a != b for a, b in zip(first, other))  # every source of randomness moved
    assert first[3] == torch.rand(3, generator=torch.Generator().manual_seed(7)).tolist()


def test_seed_beyond_32_bits_is_accepted(restore_rngs):
    assert draws(2**40 + 3) == draws(2**40 + 3)


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_auto_is_the_cpu_on_a_cpu_machine(cpu_only):
    assert runtime.resolve_device("auto") == torch.device("cpu")
    assert runtime.resolve_device() == torch.device("cpu")


def test_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.resolve_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert runtime.resolve_device("auto") == torch.device("mps")


def test_explicit_devices(cpu_only):
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(UserError, match=r"device: 'cuda:1' requested but CUDA is not available here"):
        runtime.resolve_device("cuda:1")


def test_rate_column():
    column = runtime.RateColumn()
    assert column.render(SimpleNamespace(speed=12.345)).plain == "12.3 it/s"
    assert column.render(SimpleNamespace(speed=None)).plain == "- it/s"


def test_track_yields_every_item_in_order_without_drawing_off_a_terminal(capsys):
    assert list(runtime.track(iter("abc"), total=3, description="epoch")) == ["a", "b", "c"]
    assert runtime.progress().disable  # the tests' stderr is not a terminal
    assert capsys.readouterr() == ("", "")
