"""Checkpoints: one typed record (`Checkpoint`), written atomically, read safely.

A checkpoint file holds `Checkpoint.to_dict()`: only what `torch.load(..., weights_only=True)`
accepts (tensors, numbers, strings, lists, dicts), so loading one never unpickles arbitrary objects.
Its `version` says which layout it has; files from before versioning (itemrec 0.1, format 1: a
front end's own untyped dict) are converted on load.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from itemrec.experiment.errors import UserError

CHECKPOINT_VERSION = 2
"""Format written by this release. 1: itemrec 0.1's untyped dicts (read, converted)."""


@dataclass
class Checkpoint:
    """Everything a run needs to resume exactly, or to be evaluated and served."""

    task: str
    """Front end (`recsys`, `retrieval`)."""
    config: str
    """The resolved config as YAML."""
    model: dict[str, torch.Tensor]
    """The model's `state_dict`."""
    run_id: str | None = None
    epoch: int = 0
    """Epochs done."""
    history: list[dict[str, float]] = field(default_factory=list)
    """One row per epoch: loss, timings, validation metrics."""
    best: float = -math.inf
    """Best validation value of the selection metric so far."""
    best_epoch: int = 0
    bad_evals: int = 0
    """Validations since the best one (early stopping)."""
    rng: dict[str, torch.Tensor] = field(default_factory=dict)
    """`torch`: the global CPU generator's state; `generator`: the run's seeded generator."""
    extra: dict[str, Any] = field(default_factory=dict)
    """The front end's own state (optimizer, scheduler, data sizes, ...)."""
    version: int = CHECKPOINT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, state: Any, source: str = "checkpoint") -> Checkpoint:
        """The checkpoint in `state` (a loaded file); a user error naming the problem otherwise."""
        if not isinstance(state, dict):
            raise UserError(f"{source}: not an itemrec checkpoint (expected a dict)")
        version = state.get("version", 1)
        if version == 1:
            state = _from_version_1(state, source)
        elif version != CHECKPOINT_VERSION:
            raise UserError(
                f"{source}: checkpoint format {version!r}; this itemrec reads formats 1 and {CHECKPOINT_VERSION} "
                "(a newer itemrec wrote it: upgrade itemrec)"
            )
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(state) - names)
        missing = [n for n in ("task", "config", "model") if n not in state]
        if unknown or missing:
            problem = f"unknown fields {unknown}" if unknown else f"no {missing[0]!r}"
            raise UserError(f"{source}: checkpoint format {version} with {problem}; not written by itemrec")
        return cls(**state)


_V1_FIELDS = ("task", "config", "model", "run_id", "epoch", "history", "best", "best_epoch")


def _from_version_1(state: dict[str, Any], source: str) -> dict[str, Any]:
    """itemrec 0.1's dicts: recommendation (`generator`, `bad_epochs`, `n_users`, ...), retrieval
    (`sampler_rng`, `best_epoch`, `criterion`, `scheduler`, `memory`), exported models (task,
    config, model)."""
    state = dict(state)
    out = {k: state.pop(k) for k in _V1_FIELDS if k in state}
    rng = {"torch": state.pop("torch_rng", None), "generator": state.pop("generator", state.pop("sampler_rng", None))}
    out["rng"] = {k: v for k, v in rng.items() if v is not None}
    epoch = out.get("epoch", 0)
    if "bad_epochs" in state:  # recommendation: validations since the best; one per epoch in 0.1 runs
        out["bad_evals"] = state.pop("bad_epochs")
        out.setdefault("best_epoch", epoch - out["bad_evals"] if out.get("best", -math.inf) > -math.inf else 0)
    else:
        out["bad_evals"] = max(epoch - out.get("best_epoch", 0), 0) if out.get("best_epoch") else 0
    out["extra"] = state  # optimizer, scheduler, criterion, memory, n_users, n_items
    return out


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> Path:
    """Write `checkpoint` to `path` atomically (a crash mid-write leaves the previous file intact)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(checkpoint.to_dict(), tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint with `weights_only=True`; a missing, corrupt or foreign file is a user error."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: not a readable checkpoint ({first})") from None
    return Checkpoint.from_dict(state, str(path))


BEST_ARTIFACT = "checkpoint/best.pt"
"""Where every run logs its best checkpoint among its MLflow artifacts."""


def resolve_checkpoint(ref: str, tracking_uri: str | None = None) -> tuple[Checkpoint, str | None]:
    """A checkpoint from a file path or an MLflow run id; returns `(checkpoint, run_id or None)`."""
    path = Path(ref).expanduser()
    if path.suffix in (".pt", ".pth") or path.exists():
        checkpoint = load_checkpoint(path)
        return checkpoint, checkpoint.run_id
    from itemrec.experiment.tracking import download_artifact

    return load_checkpoint(download_artifact(ref, BEST_ARTIFACT, tracking_uri)), ref
