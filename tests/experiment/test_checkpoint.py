import math
from fractions import Fraction

import pytest
import torch

from itemrec.experiment.checkpoint import (
    CHECKPOINT_VERSION,
    Checkpoint,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)
from itemrec.experiment.errors import UserError


def test_round_trip_with_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    gen = torch.Generator().manual_seed(5)
    checkpoint = Checkpoint(
        task="recsys", config="task: recsys\n", model=model.state_dict(), run_id="abc", epoch=1,
        history=[{"epoch": 1, "loss": 0.5}], best=0.25, best_epoch=1, rng={"generator": gen.get_state()},
        extra={"n_users": 7},
    )
    path = save_checkpoint(tmp_path / "a" / "last.pt", checkpoint)
    raw = torch.load(path, weights_only=True)
    assert raw["version"] == CHECKPOINT_VERSION == 2 and raw["extra"] == {"n_users": 7}
    loaded = load_checkpoint(path)
    torch.testing.assert_close(loaded.model["weight"], model.weight.detach())
    restored = torch.Generator()
    restored.set_state(loaded.rng["generator"])
    assert torch.equal(torch.rand(3, generator=restored), torch.rand(3, generator=gen))
    assert (loaded.history, loaded.best, loaded.run_id, loaded.bad_evals) == ([{"epoch": 1, "loss": 0.5}], 0.25, "abc", 0)
    assert not (tmp_path / "a" / "last.pt.tmp").exists()


def test_version_1_files_are_converted(tmp_path):
    """itemrec 0.1 wrote each front end's own dict; they load as typed checkpoints."""
    gen = torch.Generator().manual_seed(1)
    weights = {"w": torch.ones(2)}
    recsys = {"task": "recsys", "config": "c", "run_id": "r1", "epoch": 5, "model": weights, "optimizer": {},
              "generator": gen.get_state(), "torch_rng": torch.get_rng_state(), "history": [], "best": 0.3,
              "bad_epochs": 2, "n_users": 4, "n_items": 9}
    torch.save(recsys, tmp_path / "recsys.pt")
    got = load_checkpoint(tmp_path / "recsys.pt")
    assert (got.version, got.epoch, got.best, got.bad_evals, got.best_epoch) == (CHECKPOINT_VERSION, 5, 0.3, 2, 3)
    assert got.extra == {"optimizer": {}, "n_users": 4, "n_items": 9} and set(got.rng) == {"torch", "generator"}
    retrieval = {"task": "retrieval", "config": "c", "run_id": "r2", "epoch": 6, "model": weights,
                 "criterion": {}, "optimizer": {}, "scheduler": {}, "sampler_rng": gen.get_state(),
                 "torch_rng": torch.get_rng_state(), "history": [], "best": 0.7, "best_epoch": 4}
    torch.save(retrieval, tmp_path / "retrieval.pt")
    got = load_checkpoint(tmp_path / "retrieval.pt")
    assert (got.best_epoch, got.bad_evals, sorted(got.extra)) == (4, 2, ["criterion", "optimizer", "scheduler"])
    torch.save({"task": "recsys", "config": "c", "model": weights}, tmp_path / "export.pt")  # an exported model
    got = load_checkpoint(tmp_path / "export.pt")
    assert (got.epoch, got.best, got.rng, got.extra) == (0, -math.inf, {}, {})


def test_a_newer_format_is_one_line_naming_the_version(tmp_path):
    path = tmp_path / "future.pt"
    torch.save({**Checkpoint(task="recsys", config="c", model={}).to_dict(), "version": 3}, path)
    with pytest.raises(UserError, match=r"future.pt: checkpoint format 3; this itemrec reads formats 1 and 2"):
        load_checkpoint(path)


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
    with pytest.raises(UserError, match="checkpoint format 1 with no 'task'; not written by itemrec"):
        resolve_checkpoint(str(other))
    torch.save([1, 2], other)
    with pytest.raises(UserError, match="not an itemrec checkpoint"):
        load_checkpoint(other)
