"""The layout's rules (DESIGN.md §2), read from the source with `ast`, nothing imported.

Dependency direction: front ends (`itemrec.recsys`, `retrieval`) -> `itemrec.experiment` ->
`itemrec.ranking`. The core imports nothing of the rest of itemrec, nor MLflow, Optuna, pydantic
or YAML; the shared layer never names a front end; front ends never import each other; no import
cycles; no source file over `MAX_LINES` lines.

What counts as an import of module `m` by module `s`:

- `import a.b.c` anywhere in `s` (module level or inside a function): an edge to `a.b.c` (not to
  `a` or `a.b`, whose `__init__` Python runs implicitly);
- `from pkg import name`: an edge to `pkg.name` when that is a module, else to `pkg`;
- `importlib.import_module("x.y")` / `__import__("x.y")` with a literal name: an edge to `x.y`;
- a table of names to import: in a module that calls `import_module` / `__import__` on a computed
  name, every string constant of a module-level assignment that is exactly a dotted path to a
  module of this repository (optionally `module:attribute`) is an edge to that module. `itemrec/moved_modules.py`, whose
  table maps old paths to new ones for one release, is exempt.

Imports under `if TYPE_CHECKING:` never run: they count for the layering rules, not for cycles.
A module importing itself is not a cycle.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("itemrec", "retrieval")
SIZE_CHECKED = ("itemrec", "retrieval", "tests", "examples")
MAX_LINES = 500
STRING_TABLES_EXEMPT = {"itemrec.moved_modules"}
CORE_FORBIDDEN_THIRD_PARTY = {"mlflow", "optuna", "pydantic", "yaml"}
DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+(:[A-Za-z_][\w.]*)?")


@dataclass(frozen=True)
class Import:
    target: str
    line: int
    type_only: bool = False


def module_name(path: Path, root: Path = ROOT) -> str:
    """`itemrec/recsys/models/ease.py` -> `itemrec.recsys.models.ease`; a package's `__init__.py`
    is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files(root: Path = ROOT, folders: Iterable[str] = PACKAGES) -> list[Path]:
    return sorted(p for folder in folders for p in (root / folder).rglob("*.py") if "__pycache__" not in p.parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_import_call(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def _literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def imports_of(source: str, name: str, modules: set[str], is_package: bool = False) -> list[Import]:
    """The imports of module `name` (source text `source`), resolved against the known `modules`."""
    tree = ast.parse(source)
    found: list[Import] = []
    type_only_nodes: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                type_only_nodes.update(id(n) for n in ast.walk(child))
    package = name if is_package else name.rpartition(".")[0]
    computed_call = False
    for node in ast.walk(tree):
        type_only = id(node) in type_only_nodes
        if isinstance(node, ast.Import):
            found += [Import(alias.name, node.lineno, type_only) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.append(Import(full if full in modules else base, node.lineno, type_only))
        elif isinstance(node, ast.Call) and _is_import_call(node):
            literal = _literal(node.args[0]) if node.args else None
            if literal is not None:
                found.append(Import(literal, node.lineno, type_only))
            else:
                computed_call = True
    if computed_call and name not in STRING_TABLES_EXEMPT:
        tables = [n for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))]
        for node in (c for table in tables for c in ast.walk(table)):
            text = _literal(node) if isinstance(node, ast.Constant) else None
            if text and DOTTED.fullmatch(text) and text.split(":")[0] in modules:
                found.append(Import(text.split(":")[0], node.lineno))
    return sorted(dict.fromkeys(found), key=lambda i: i.line)


def repository_imports(root: Path = ROOT) -> dict[str, list[Import]]:
    """Every module of `PACKAGES` -> its imports."""
    files = {module_name(p, root): p for p in source_files(root)}
    modules = set(files)
    return {
        name: imports_of(path.read_text(encoding="utf-8"), name, modules, path.name == "__init__.py")
        for name, path in files.items()
    }


def import_graph(imports: dict[str, list[Import]]) -> dict[str, set[str]]:
    """Edges between the repository's own modules, from imports that run (no `TYPE_CHECKING`)."""
    return {
        name: {i.target for i in found if i.target in imports and i.target != name and not i.type_only}
        for name, found in imports.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle `[a, b, ..., a]` through each strongly connected component of more than one node
    (Tarjan's algorithm, iterative), components and cycles in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted((_cycle_in(graph, c) for c in components), key=lambda c: c[0])


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """The shortest cycle through the component's first module (breadth-first, inside it)."""
    first = min(component)
    parents: dict[str, str] = {}
    frontier = [first]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child == first:
                    path = [node]
                    while path[-1] != first:
                        path.append(parents[path[-1]])
                    return [*reversed(path), first]
                if child in component and child not in parents:
                    parents[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{sorted(component)} holds no cycle")


def _within(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


def violations(imports: dict[str, list[Import]], source: str, forbidden: Iterable[str]) -> list[str]:
    """`module:line imports target` for every import from a module in `source` of a target in
    (or under) one of `forbidden`."""
    return [
        f"{name}:{i.line} imports {i.target}"
        for name, found in sorted(imports.items())
        if _within(name, source)
        for i in found
        if any(_within(i.target, f) for f in forbidden)
    ]


# --------------------------------------------------------------------------- the checker itself


def test_cycles_found_in_a_hand_made_graph():
    graph = {
        "a": {"b"},
        "b": {"c"},
        "c": {"a", "d"},  # a -> b -> c -> a
        "d": set(),
        "e": {"f"},
        "f": {"e"},  # e <-> f
        "g": {"a"},  # into a cycle, not on one
    }
    assert cycles(graph) == [["a", "b", "c", "a"], ["e", "f", "e"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) == []
    # the shortest cycle through the component's first module, not the whole component
    assert cycles({"a": {"b", "c"}, "b": {"a"}, "c": {"b"}}) == [["a", "b", "a"]]


def test_imports_read_from_a_hand_made_module():
    modules = {"pkg", "pkg.mod", "pkg.sub", "pkg.sub.deep", "app.table"}
    source = '''
import importlib
import pkg.sub.deep
from pkg import mod, VALUE
from typing import TYPE_CHECKING
from . import deep
from .deep import thing
if TYPE_CHECKING:
    from pkg.sub import hidden

def later():
    import numpy.linalg
    importlib.import_module("pkg.mod")
    __import__("os.path")

TABLE = {"x": "app.table:Thing", "y": "not.a.module", "z": "pkg sub"}

def load(key):
    command = ["python", "-m", "app.table"]  # run, not imported
    return importlib.import_module(TABLE[key])
'''
    found = imports_of(source, "pkg.sub.here", modules)
    assert [(i.target, i.type_only) for i in found] == [
        ("importlib", False),
        ("pkg.sub.deep", False),
        ("pkg.mod", False),  # a module: the edge goes to it
        ("pkg", False),  # a name in pkg/__init__.py
        ("typing", False),
        ("pkg.sub.deep", False),  # `from . import deep` in pkg.sub
        ("pkg.sub.deep", False),
        ("pkg.sub", True),
        ("numpy.linalg", False),
        ("pkg.mod", False),  # import_module("pkg.mod")
        ("os.path", False),
        ("app.table", False),  # the table of a computed import_module
    ]
    graph = import_graph({"pkg.sub.here": found, "pkg.mod": [], "pkg.sub": [], "pkg.sub.deep": [], "pkg": []})
    assert graph["pkg.sub.here"] == {"pkg.sub.deep", "pkg.mod", "pkg"}  # no type-only edge, nothing external


def test_string_tables_count_only_next_to_a_computed_import():
    modules = {"app.table"}
    assert imports_of('TABLE = {"x": "app.table"}\n', "m", modules) == []
    literal = 'import importlib\nTABLE = {"x": "app.table"}\nimportlib.import_module("os")\n'
    assert [i.target for i in imports_of(literal, "m", modules)] == ["importlib", "os"]


def test_violations_match_whole_package_names():
    imports = {
        "app.core.x": [Import("app.front", 3), Import("app.frontier", 4), Import("app.front.deep", 5)],
        "app.coreutils": [Import("app.front", 1)],
    }
    assert violations(imports, "app.core", ["app.front"]) == [
        "app.core.x:3 imports app.front",
        "app.core.x:5 imports app.front.deep",
    ]


def test_the_repository_graph_is_read(imports):
    """The checker sees this repository's real imports (an empty graph would pass every rule)."""
    graph = import_graph(imports)
    assert "itemrec.experiment.errors" in graph["retrieval.pipeline"]
    assert "itemrec.ranking.losses" in graph["itemrec.ranking.modules"]
    assert sum(map(len, graph.values())) > 100


# --------------------------------------------------------------------------- the repository


@pytest.fixture(scope="module")
def imports() -> dict[str, list[Import]]:
    return repository_imports()


def test_no_import_cycles(imports):
    found = cycles(import_graph(imports))
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_core_imports_nothing_of_the_rest(imports):
    bad = [
        f"{name}:{i.line} imports {i.target}"
        for name, found in sorted(imports.items())
        if _within(name, "itemrec.ranking")
        for i in found
        if (_within(i.target, "itemrec") and not _within(i.target, "itemrec.ranking"))
        or _within(i.target, "retrieval")
        or i.target.split(".")[0] in CORE_FORBIDDEN_THIRD_PARTY
    ]
    assert not bad, "itemrec.ranking must stay pure torch:\n" + "\n".join(bad)


def test_shared_layer_never_names_a_front_end(imports):
    bad = violations(imports, "itemrec.experiment", ["itemrec.recsys", "retrieval"])
    assert not bad, "itemrec.experiment imports a front end:\n" + "\n".join(bad)


def test_front_ends_never_import_each_other(imports):
    bad = violations(imports, "itemrec.recsys", ["retrieval"]) + violations(imports, "retrieval", ["itemrec.recsys"])
    assert not bad, "front ends import each other:\n" + "\n".join(bad)


def test_no_source_file_over_the_line_limit():
    long = [
        f"{path.relative_to(ROOT)}: {n} lines"
        for path in source_files(ROOT, SIZE_CHECKED)
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert not long, f"over {MAX_LINES} lines (split them):\n" + "\n".join(long)


def test_test_modules_have_distinct_import_names():
    """pytest imports a test file by its package path (folders with `__init__.py`): two files of the
    same basename in folders without one would both be `test_x` and collide."""
    names: dict[str, list[str]] = {}
    for path in source_files(ROOT, ["tests"]):
        if not (path.name.startswith("test_") or path.name == "conftest.py"):
            continue
        folder, parts = path.parent, [path.stem]
        while (folder / "__init__.py").is_file():
            parts.insert(0, folder.name)
            folder = folder.parent
        names.setdefault(".".join(parts), []).append(str(path.relative_to(ROOT)))
    clashes = {name: paths for name, paths in names.items() if len(paths) > 1}
    assert not clashes, f"test modules sharing an import name: {clashes}"
