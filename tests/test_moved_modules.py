"""Old import paths (before 0.2) keep working for one release: the same module object, with a
DeprecationWarning that names the new path; names that did not move are left alone."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from itemrec import moved_modules
from itemrec.moved_modules import MOVED, MovedModuleFinder, new_name

ROOT = Path(__file__).resolve().parents[1]

OLD_IMPORT = """
import json, sys, warnings

with warnings.catch_warnings(record=True) as caught:  # the default filters: what a user sees
    import itemrec.models.lightgcn
    from itemrec.models.lightgcn import LightGCN
import itemrec.recsys.models
import itemrec.recsys.models.lightgcn

new = sys.modules["itemrec.recsys.models.lightgcn"]  # not the package attribute: it is checked too

print(json.dumps({
    "warnings": [[w.category.__name__, str(w.message)] for w in caught],
    "same_module": sys.modules["itemrec.models.lightgcn"] is new,
    "same_class": LightGCN is new.LightGCN,
    "package_attribute": itemrec.recsys.models.lightgcn is new,
    "spec_names": [itemrec.recsys.models.__spec__.name, new.__spec__.name],
}))
"""


@pytest.fixture(scope="module")
def old_import() -> dict:
    """A fresh interpreter (no module cached yet) importing `itemrec.models.lightgcn`."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    done = subprocess.run(
        [sys.executable, "-c", OLD_IMPORT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_old_path_warns_naming_the_new_path(old_import):
    deprecations = [message for category, message in old_import["warnings"] if category == "DeprecationWarning"]
    assert any(m.startswith("itemrec.models moved to itemrec.recsys.models;") for m in deprecations), deprecations
    assert any(
        m.startswith("itemrec.models.lightgcn moved to itemrec.recsys.models.lightgcn;") for m in deprecations
    ), deprecations
    assert all("stops working in itemrec 0.3" in m for m in deprecations)


def test_old_path_gives_the_module_at_the_new_path(old_import):
    assert old_import["same_module"] and old_import["same_class"]
    # the old name neither loads a second copy into the package nor renames the real modules
    assert old_import["package_attribute"]
    assert old_import["spec_names"] == ["itemrec.recsys.models", "itemrec.recsys.models.lightgcn"]


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_moved_entry_resolves(old):
    new = MOVED[old]
    assert new_name(old) == new and new_name(old + ".sub") == new + ".sub"
    assert importlib.util.find_spec(new) is not None, f"{old} -> {new}: no such module"
    spec = MovedModuleFinder().find_spec(old)
    assert spec is not None and spec.name == old and spec.loader.target == new
    # nothing left at the old path that Python's own finders would load instead
    old_path = ROOT.joinpath(*old.split("."))
    assert not old_path.with_suffix(".py").exists() and not old_path.is_dir(), old_path


@pytest.mark.parametrize(
    "name", ["itemrec", "itemrec.ranking.losses", "itemrec.recsys.models", "itemrec.modelsx", "itemrec.configs", "retrieval"]
)
def test_unmoved_names_are_not_intercepted(name):
    assert new_name(name) is None
    assert MovedModuleFinder().find_spec(name) is None


def test_the_finder_is_installed_once():
    moved_modules.install()
    moved_modules.install()
    assert sum(isinstance(f, MovedModuleFinder) for f in sys.meta_path) == 1
