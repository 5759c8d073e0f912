"""The docs site: the API reference covers the public API; the tutorials' generator runs."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import bayescale as bs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: Modules the API reference documents beside ``bayescale.__all__``.
MODULES = ("analysis.baselines", "analysis.compare", "model.isoflop", "report.plots", "report.recipe",
           "report.answer", "model.laws", "data.datasets", "model.terms", "model.family")
SNIPPET = re.compile(r'^\s*--8<--\s+"([^"]+)"', re.MULTILINE)
GENERATED_IMAGE = re.compile(r"\]\((?:\.\./)*generated/([^)\s]+)\)")


def _resolve(path: str) -> object:
    """The object a mkdocstrings identifier names: the longest importable module, then
    attributes."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"cannot import anything of {path!r}")


def _api_blocks() -> list[str]:
    return re.findall(r"^:::\s+([\w.]+)\s*$", (DOCS / "api.md").read_text(), re.MULTILINE)


def _documented() -> list[object]:
    return [_resolve(ident) for ident in _api_blocks()]


@pytest.mark.parametrize("name", bs.__all__)
def test_api_reference_lists_every_public_name(name):
    documented = _documented()
    assert any(obj is getattr(bs, name) for obj in documented), (
        f"bayescale.{name} has no ::: block in docs/api.md (blocks: {_api_blocks()})")


@pytest.mark.parametrize("module", MODULES)
def test_api_reference_documents_the_modules(module):
    target = importlib.import_module(f"bayescale.{module}")
    assert isinstance(target, types.ModuleType)
    assert any(obj is target for obj in _documented()), f"no ::: bayescale.{module} in docs/api.md"


def _members_options() -> dict[str, list[str]]:
    """``members:`` lists of the ``:::`` blocks that restrict them, by identifier."""
    text = (DOCS / "api.md").read_text()
    found = re.findall(r"^:::\s+([\w.]+)\s*\n((?:[ \t]+.*\n)*)", text, re.MULTILINE)
    out = {}
    for ident, options in found:
        match = re.search(r"members:\s*\[([^\]]*)\]", options)
        if match:
            out[ident] = [m.strip() for m in match.group(1).split(",") if m.strip()]
    return out


@pytest.mark.parametrize("ident", sorted(_members_options()))
def test_api_reference_restricted_modules_miss_no_public_name(ident):
    """A block with a ``members`` list (the others render all of ``__all__``) leaves out only
    names that another block documents."""
    target = _resolve(ident)
    documented = _documented()
    missing = [name for name in getattr(target, "__all__", ())
               if name not in _members_options()[ident]
               and not any(obj is getattr(target, name) for obj in documented)]
    assert not missing, f"{ident}: {missing} are public but not in docs/api.md"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_tutorials", DOCS / "gen_tutorials.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _snippets_used() -> dict[str, set[str]]:
    """Generated files the pages include (``--8<--``) or show (``../generated/*.png``)."""
    used: dict[str, set[str]] = {}
    for page in DOCS.rglob("*.md"):
        if "generated" in page.parts:
            continue
        text = page.read_text()
        for name in SNIPPET.findall(text) + GENERATED_IMAGE.findall(text):
            used.setdefault(name, set()).add(str(page.relative_to(DOCS)))
    return used


def test_generator_writes_the_cli_and_recipe_snippets(tmp_path):
    """The parts of the generator that need no sampling, against the pages that include them."""
    gen = _generator()
    verbs = gen.write_cli_help(tmp_path)
    gen.write_recipes(tmp_path)
    assert {"fit", "predict", "datasets"} <= set(verbs)
    for verb in verbs:
        assert f"bayescale {verb}" in (tmp_path / f"cli_{verb}.txt").read_text()
    assert (tmp_path / "cli_errors.txt").read_text().count("\n2\n") == len(gen.BAD_RECIPES)
    recipes = (tmp_path / "recipes_models.md").read_text()
    assert all(f"models/{p.name}" in recipes for p in (ROOT / "models").glob("*.toml"))
    wanted = {n for n in _snippets_used() if n.startswith(("cli_", "recipes_"))}
    assert wanted and all((tmp_path / n).is_file() for n in wanted), wanted


@pytest.mark.slow
def test_generator_runs_end_to_end(tmp_path):
    """Slow (about 1-2 minutes on 2 cores): even at 50 draws the generator compiles two models
    with nutpie (~15-25 s each), runs two L-BFGS fits with a bootstrap and draws a dozen figures.
    CI runs the full generator anyway, through the docs build in .ci/run."""
    env = dict(os.environ, BAYESCALE_DOCS_DRAWS="50", BAYESCALE_DOCS_CHAINS="2",
               BAYESCALE_DOCS_BOOTSTRAP="5", BAYESCALE_DOCS_STRICTER="0", MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, str(DOCS / "gen_tutorials.py"), "--out", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    missing = {name: pages for name, pages in _snippets_used().items()
               if not (tmp_path / name).is_file() or (tmp_path / name).stat().st_size == 0}
    assert not missing, f"generated files the pages use but the generator did not write: {missing}"
    assert "2 chains x 50 draws" in (tmp_path / "chinchilla_settings.md").read_text()
    assert "skipped" in (tmp_path / "cs336_stricter.md").read_text()


def test_mkdocs_config_is_valid_and_nav_pages_exist():
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    from mkdocs.config import load_config

    config = load_config(config_file=str(ROOT / "mkdocs.yml"))

    def pages(nav):
        for item in nav:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            yield from pages(value) if isinstance(value, list) else [value]

    missing = [p for p in pages(config["nav"]) if not (DOCS / p).is_file()]
    assert not missing, f"pages in mkdocs.yml's nav that docs/ lacks: {missing}"
