"""Checkpoints: plain dicts of tensors and Python values, written atomically, read safely.

Only what `torch.load(..., weights_only=True)` accepts goes in (tensors, numbers, strings, lists,
dicts), so loading a checkpoint never unpickles arbitrary objects.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from itemrec.experiment.errors import UserError


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` to `path` atomically (a crash mid-write leaves the previous file intact)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with `weights_only=True`; a missing or corrupt file is a user error."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: not a readable checkpoint ({first})") from None
    if not isinstance(state, dict):
        raise UserError(f"{path}: not an itemrec checkpoint (expected a dict)")
    return state


BEST_ARTIFACT = "checkpoint/best.pt"
"""Where every run logs its best checkpoint among its MLflow artifacts."""


def resolve_checkpoint(ref: str, tracking_uri: str | None = None) -> tuple[dict[str, Any], str | None]:
    """A checkpoint from a file path or an MLflow run id; returns `(state, run_id or None)`.

    Every checkpoint holds at least `task` (front end) and `config` (the resolved YAML).
    """
    path = Path(ref).expanduser()
    if path.suffix in (".pt", ".pth") or path.exists():
        state = load_checkpoint(path)
        run_id = state.get("run_id")
    else:
        from itemrec.experiment.tracking import download_artifact

        state = load_checkpoint(download_artifact(ref, BEST_ARTIFACT, tracking_uri))
        run_id = ref
    for key in ("task", "config"):
        if key not in state:
            raise UserError(f"{ref}: checkpoint has no {key!r}; not written by itemrec train")
    return state, run_id
