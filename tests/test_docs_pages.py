"""What the built documentation pages show: the loss and metric formulas of `itemrec.ranking` as
math (pymdownx.arithmatex, typeset by KaTeX in the browser), and benchmarks pages whose table of
contents lists their sections.

The site is built once for the module (`mkdocs build --strict`, as in `test_docs.py`); the
tests that need it skip where mkdocs is not installed (it comes with the `docs` extra, which the
`dev` extra includes)."""

from __future__ import annotations

import ast
import importlib.util
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from itemrec.experiment.registry import LOSSES
from itemrec.ranking import modules
from tests.test_docs import ROOT, build

RANKING = ROOT / "itemrec" / "ranking"
BENCHMARK_PAGES = ROOT / "docs" / "guides" / "benchmarks"
MATH = 'class="arithmatex"'
# Metric functions whose docstrings give a formula.
METRICS = ("ap", "map_at_r", "ndcg_at_k", "recall_at_k", "precision_at_k", "hit_at_k", "mrr", "h_ap", "asi")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
    pytest.importorskip("pymdownx", reason="pymdown-extensions is not installed (pip install -e '.[docs]')")
    out_dir = tmp_path_factory.mktemp("docs") / "site"
    out = build(ROOT / "mkdocs.yml", out_dir)
    assert out.returncode == 0, out.stderr[-3000:]
    return out_dir


def hook_module():
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
    spec = importlib.util.spec_from_file_location("results_sections", ROOT / "docs" / "hooks" / "results_sections.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def api_section(page: str, identifier: str) -> str:
    """The HTML of one object's docstring on an API page: from its heading to the next heading."""
    opened = page.find(f'id="{identifier}"')
    assert opened >= 0, f"{identifier} is not on the page"
    closed = page.find('class="doc doc-heading"', page.find("</h", opened))
    return page[opened : closed if closed >= 0 else len(page)]


def wrapped_function(cls: type) -> str:
    """`module.function` a loss module calls, as its docstring's first line names it."""
    found = re.match(r"`((?:losses|softmax_losses|dcg_losses|lambda_losses)\.\w+)`", cls.__doc__ or "")
    assert found, f"{cls.__name__}'s docstring does not start with the function it calls"
    return found.group(1)


def text_of(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


# --------------------------------------------------------------------------- formulas as math


def test_every_registered_loss_shows_its_formula_as_math(site):
    page = (site / "reference" / "ranking" / "index.html").read_text()
    with_math = []
    for name, cls in LOSSES.items():
        assert cls.__module__ in (modules.__name__, "itemrec.ranking.dcg_losses", "itemrec.ranking.lambda_losses"), name
        for identifier in (f"{cls.__module__}.{cls.__name__}", f"itemrec.ranking.{wrapped_function(cls)}"):
            section = api_section(page, identifier)
            assert MATH in section, f"loss {name!r}: no rendered formula in the section of {identifier}"
        with_math.append(name)
    assert len(with_math) == len(LOSSES) == 18


def test_metric_formulas_are_math_and_no_formula_is_a_code_block(site):
    page = (site / "reference" / "ranking" / "index.html").read_text()
    for name in METRICS:
        assert MATH in api_section(page, f"itemrec.ranking.metrics.{name}"), name
    assert page.count(MATH) >= 150  # inline and display formulas across the page
    # Display formulas are math blocks, never fixed-width code blocks that run past the right edge.
    assert "<pre" not in page
    assert '<div class="arithmatex">\\[' in page
    assert "::" not in text_of(page), "reStructuredText's '::' shows up as text"


def test_no_docstring_of_the_core_uses_restructuredtext_literal_blocks():
    for path in sorted(RANKING.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef))]
        for node in nodes:
            doc = ast.get_docstring(node, clean=False) or ""
            where = f"{path.name}:{getattr(node, 'name', '<module>')}"
            assert "::" not in doc, where
            # Display formulas open and close on lines of their own.
            assert sum(line.strip() == "$$" for line in doc.splitlines()) % 2 == 0, where


# --------------------------------------------------------------------------- benchmarks pages


class _TocLinks(HTMLParser):
    """Links of the page's table of contents: the first `nav.md-nav--secondary` (the theme
    repeats it inside the site navigation for small screens), nested navs included."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0  # nav elements open inside the table of contents
        self.done = False
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self.done:
            return
        if tag == "nav" and (self.depth or "md-nav--secondary" in (attrs.get("class") or "")):
            self.depth += 1
        elif tag == "a" and self.depth and (attrs.get("href") or "").startswith("#"):
            self.links.append(attrs["href"][1:])

    def handle_endtag(self, tag):
        if tag == "nav" and self.depth:
            self.depth -= 1
            self.done = self.depth == 0


def toc_links(html: str) -> list[str]:
    parser = _TocLinks()
    parser.feed(html)
    return parser.links


def test_benchmarks_pages_have_a_table_of_contents(site):
    pages = sorted(p.stem for p in BENCHMARK_PAGES.glob("*.md") if p.stem != "index")
    assert len(pages) >= 4
    total = 0
    for stem in pages:
        html = (site / "guides" / "benchmarks" / stem / "index.html").read_text()
        assert html.count("<h1") == 1, stem
        headings = re.findall(r'<h[23] id="([^"]+)"', html)
        links = toc_links(html)
        assert len(links) >= 2 and links == headings, (stem, links, headings)
        total += len(links)
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    assert total >= len(re.findall(r"^## ", results, re.M)) >= 17


def _top_level_sections(text: str) -> list[str]:
    """Names of the RESULTS.md sections that do not lie inside another one."""
    names, open_until = [], -1
    for found in re.finditer(r"<!-- ([\w\-]+):start -->", text):
        if found.start() > open_until:
            names.append(found.group(1))
            open_until = text.find(f"<!-- {found.group(1)}:end -->", found.end())
    return names


def test_every_results_section_is_on_one_benchmarks_page():
    from benchmarks import harness

    hook = hook_module()
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    included: list[str] = []
    for page in BENCHMARK_PAGES.glob("*.md"):
        for found in hook.DIRECTIVE.finditer(page.read_text()):
            included += found.group(1).split()
    sections = _top_level_sections(results)
    assert len(sections) >= 17
    assert sorted(included) == sorted(sections)  # each once, none missing, none unknown
    for name in sections:  # the hook reads a section as the harness writes it
        assert hook.section(results, name) == harness.read_section(results, name).strip("\n"), name


def test_a_page_naming_a_missing_results_section_fails():
    hook = hook_module()
    from mkdocs.exceptions import PluginError

    text = "<!-- a:start -->\n## A\n\nbody\n<!-- a:end -->\n"
    assert hook.include("# P\n\n<!-- results: a -->\n", text, "p.md") == "# P\n\n## A\n\nbody\n"
    with pytest.raises(PluginError, match="no section 'b'"):
        hook.include("<!-- results: a b -->\n", text, "p.md")
