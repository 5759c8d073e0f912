"""The package's shape: imports flow one way between layers, no import cycle, no name checks.

Every ``import`` of a bayescale module, at the top of a file or inside a function, is an edge.
The layers, bottom to top: data -> inference -> model -> results -> analysis -> report. A module
may import its own layer and those below it; only the command line (the entry point) may import
the package root.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import bayescale as bs

PACKAGE = Path(bs.__file__).resolve().parent
LAYERS = ("data", "inference", "model", "results", "analysis", "report")


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The bayescale modules ``path`` imports (``from bayescale.x import y`` counts
    ``bayescale.x.y`` when that is a module, else ``bayescale.x``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "bayescale"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "bayescale":
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                out.add(child if child in MODULES else node.module)
    return out


FILES = sorted(PACKAGE.rglob("*.py"))
MODULES = {_module(p) for p in FILES}
GRAPH = {_module(p): _imports(p) - {_module(p)} for p in FILES}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_the_layers_are_folders():
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} \
        == set(LAYERS)


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _layer(m) is not None))
def test_imports_flow_one_way(module):
    own = _layer(module)
    upward = sorted(m for m in GRAPH[module] if (_layer(m) or 0) > own)
    assert not upward, f"{module} imports a higher layer: {upward}"
    if module != "bayescale.report.cli":
        assert "bayescale" not in GRAPH[module], f"{module} imports the package root"


def test_no_import_cycle():
    """Depth-first search over every import edge; a back edge is a cycle."""
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for other in sorted(GRAPH.get(module, ())):
            if other == "bayescale":
                continue  # the root re-exports the API; only the CLI imports it
            if state.get(other) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path, module, other]))
            if other not in state:
                visit(other, [*path, module])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [])


def test_the_cycle_check_finds_a_planted_cycle(monkeypatch):
    planted = {m: set(e) for m, e in GRAPH.items()}
    planted["bayescale.data.runs"].add("bayescale.model.fit")
    monkeypatch.setattr(__import__(__name__), "GRAPH", planted)
    with pytest.raises(AssertionError, match="import cycle"):
        test_no_import_cycle()


NAME_CHECK = re.compile(r"""(law|family|model)(\.name|\[["']model["']\]|\.get\(["']model["']\))"""
                        r"""\s*[!=]=\s*["']""")


@pytest.mark.parametrize("path", FILES, ids=lambda p: _module(p))
def test_no_law_or_family_name_checks(path):
    """Whether a model has an optimum or a view is a property of its law or family, never a
    comparison of its name with a string."""
    hits = [line.strip() for line in path.read_text().splitlines() if NAME_CHECK.search(line)]
    assert not hits, hits


def _code_lines(path: Path) -> tuple[list[int], ast.Module]:
    """Line numbers holding code: not blank, not a comment, not a docstring."""
    source = path.read_text()
    tree = ast.parse(source)
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) \
                and ast.get_docstring(node, clean=False) is not None:
            first = node.body[0]
            docs.update(range(first.lineno, first.end_lineno + 1))
    code = [i for i, line in enumerate(source.splitlines(), 1)
            if line.strip() and not line.strip().startswith("#") and i not in docs]
    return code, tree


@pytest.mark.parametrize("path", FILES, ids=lambda p: _module(p))
def test_modules_and_functions_stay_small(path):
    """At most 400 lines of code a module and 40 a function (docstrings and comments aside)."""
    code, tree = _code_lines(path)
    assert len(code) <= 400, f"{len(code)} lines of code"
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = sum(node.lineno <= i <= node.end_lineno for i in code)
            assert lines <= 40, f"{node.name} has {lines} lines of code"
