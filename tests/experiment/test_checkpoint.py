from fractions import Fraction

import pytest
import torch

from itemrec.experiment.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from itemrec.experiment.errors import UserError


def test_round_trip_with_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    gen = torch.Generator().manual_seed(5)
    state = {"task": "recsys", "config": "task: recsys\n", "model": model.state_dict(), "generator": gen.get_state(),
             "history": [{"epoch": 1, "loss": 0.5}], "best": 0.25}
    path = save_checkpoint(tmp_path / "a" / "last.pt", state)
    loaded = load_checkpoint(path)
    torch.testing.assert_close(loaded["model"]["weight"], model.weight.detach())
    restored = torch.Generator()
    restored.set_state(loaded["generator"])
    assert torch.equal(torch.rand(3, generator=restored), torch.rand(3, generator=gen))
    assert loaded["history"] == [{"epoch": 1, "loss": 0.5}]
    assert not (tmp_path / "a" / "last.pt.tmp").exists()


def test_arbitrary_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"task": "recsys", "obj": Fraction(1, 3)}, path)  # any non-tensor class
    with pytest.raises(UserError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(UserError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        load_checkpoint(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(1)}, other)
    with pytest.raises(UserError, match="has no 'task'"):
        resolve_checkpoint(str(other))
