"""Imports on demand: what ``import bayescale``, ``--help`` and answers from a saved fit load.

The package root exports its API lazily (``bayescale/__init__.py``) and the modules that use
PyMC, PyTensor, ArviZ or matplotlib import them on first use (``bayescale.data.lazy``). These
tests check which libraries each entry point leaves imported, in a fresh interpreter, and that
every exported name is the object its module defines. (How long imports take is measured by
``benchmarks/bench_fit.py``, not here.)
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import bayescale as bs
from bayescale.data import lazy

HEAVY = ("pymc", "pytensor", "nutpie", "numba", "arviz_stats", "arviz_plots", "matplotlib",
         "jax", "scipy.optimize", "scipy.stats")


def _imported_after(code: str) -> set[str]:
    """The HEAVY modules imported once ``code`` has run in a fresh interpreter."""
    probe = (f"{code}\nimport json, sys\n"
             f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_import_bayescale_imports_no_heavy_library():
    assert _imported_after("import bayescale") == set()


def test_the_model_and_its_priors_need_no_sampler():
    code = ("import bayescale as bs\n"
            "model = bs.ScalingLaw(bs.datasets.load('chinchilla'), law='chinchilla')\n"
            "model.priors")
    assert _imported_after(code) == set()


def test_help_imports_no_heavy_library():
    code = ("import contextlib, io\nfrom bayescale.report.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    main(['--help'])")
    assert _imported_after(code) == set()


def test_predict_from_a_saved_fit_needs_no_sampler_and_no_plotting(tmp_path, chinchilla_fit):
    path = tmp_path / "posterior.nc"
    chinchilla_fit.save(path)
    code = ("import contextlib, io\nfrom bayescale.report.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert main(['predict', {str(path)!r}, '--budgets', '1e24']) == 0")
    assert _imported_after(code) == set()


JAX_LOADED = "type(sys.modules.get('jax')).__name__ not in ('NoneType', '_LazyModule')"


def test_a_fit_and_its_results_folder_never_load_jax(tmp_path):
    """arviz_base registers JAX to be imported on first use, and SciPy's functions look up
    ``jax.Array`` to learn that an array is NumPy's: JAX (a second to import) is hidden from
    them wherever nothing samples with NumPyro (the CLI's fit; a library fit's backtests)."""
    models = Path(__file__).resolve().parents[1] / "models"
    code = ("import contextlib, io, sys\nfrom bayescale.report.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert main(['fit', {str(models / 'chinchilla.toml')!r}, '--out', "
            f"{str(tmp_path / 'out')!r}, '--draws', '100', '--tune', '100', '--chains', '2', "
            "'--no-progress']) == 0\n"
            f"print('jax loaded:', {JAX_LOADED})")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.splitlines()[-1] == "jax loaded: False"


@pytest.mark.parametrize("name", [n for n in bs.__all__ if n != "__version__"])
def test_every_exported_name_is_its_module_s_object(name):
    value = getattr(bs, name)
    where = bs._ATTRIBUTES.get(name)
    if where is None:
        assert value is importlib.import_module(bs._MODULES[name])
    else:
        assert value is getattr(importlib.import_module(where), name)
    assert name in dir(bs)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'ScalingLow'"):
        bs.ScalingLow  # noqa: B018


def test_a_deferred_module_imports_on_first_use_and_is_read_only():
    json_module = lazy.module("json")
    assert "not imported yet" in repr(json_module)
    assert json_module.dumps([1]) == "[1]"
    assert "imported on demand (imported)" in repr(json_module)
    with pytest.raises(AttributeError, match="cannot set"):
        json_module.dumps = None
