"""Old import paths of modules that moved in 0.2, kept working for one release with a warning.

`import itemrec.models` (now `itemrec.recsys.models`) still works: a finder on `sys.meta_path`
answers the old name, and any submodule of it, with the module at its new path (the same module
object, so `isinstance` and monkeypatching agree), after a `DeprecationWarning` that names the new
path. Remove in 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType

MOVED = {
    "itemrec.config": "itemrec.recsys.config",
    "itemrec.train": "itemrec.recsys.frontend",  # train(), run_dir, TrainingDiverged
    "itemrec.evaluate": "itemrec.recsys.evaluate",
    "itemrec.pipeline": "itemrec.recsys.pipeline",
    "itemrec.recommend": "itemrec.recsys.recommend",
    "itemrec.serving": "itemrec.recsys.serving",
    "itemrec.serving_model": "itemrec.recsys.serving_model",
    "itemrec.data": "itemrec.recsys.data",
    "itemrec.models": "itemrec.recsys.models",
    "itemrec.sampling": "itemrec.recsys.sampling",
    "itemrec.tune": "itemrec.experiment.tune",
    "itemrec.compare": "itemrec.experiment.compare",
    "itemrec.distributed": "itemrec.experiment.distributed",
    "itemrec.errors": "itemrec.experiment.errors",
}
"""Old module path -> new module path (submodules follow their package)."""


def new_name(name: str) -> str | None:
    """The current path of a module imported by its old `name`, or None if it did not move."""
    for old, new in MOVED.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old) :]
    return None


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec) -> ModuleType:
        warnings.warn(
            f"{spec.name} moved to {self.target}; the old path stops working in itemrec 0.3",
            DeprecationWarning,
            stacklevel=2,
        )
        module = importlib.import_module(self.target)
        self.spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """The module at the new path is already executed; only its `__spec__`, which the import
        system set to the old name's, is put back."""
        module.__spec__ = self.spec


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds modules by their pre-0.2 paths (see `MOVED`)."""

    def find_spec(self, fullname, path=None, target=None):
        target_name = new_name(fullname)
        if target_name is None:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(target_name))


def install() -> None:
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())  # before the path finder: one module object per file
