"""nutpie's compilation kept on disk (bayescale.inference.compiled): the same draws as nutpie's
own compilation, loaded from the cache by a later process, data swapped exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import bayescale as bs

SETTINGS = {"draws": 100, "tune": 150, "chains": 2, "seed": 3, "progress_bar": False,
            "cores": 1, "save_warmup": False}


@pytest.fixture(scope="module")
def law() -> bs.ScalingLaw:
    rng = np.random.default_rng(2)
    flops = np.repeat(np.geomspace(1e17, 1e21, 5), 3)
    loss = (2.0 + 30.0 * flops ** -0.15) * np.exp(0.01 * rng.standard_normal(flops.size))
    runs = bs.prepare(pd.DataFrame({"flops": flops, "loss": loss}))
    return bs.ScalingLaw(runs, law="flops", noise="normal", discrepancy="prior")


@pytest.fixture(scope="module")
def cached(law):
    from bayescale.inference.compiled import compile_pymc_model

    return compile_pymc_model(law.model)


def _draws(compiled) -> dict[str, np.ndarray]:
    import nutpie

    posterior = nutpie.sample(compiled, **SETTINGS).posterior
    return {name: posterior[name].values for name in ("E", "A", "alpha", "sigma")}


def test_the_cached_compilation_samples_the_draws_of_nutpies_own(law, cached):
    import nutpie

    from bayescale.inference.compiled import _cached_class

    assert isinstance(cached, _cached_class())
    ours, theirs = _draws(cached), _draws(nutpie.compile_pymc_model(law.model))
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-9, err_msg=name)


def test_swapped_data_give_the_draws_of_a_fresh_compilation(law, cached):
    import nutpie

    names = {var.name for var in cached.shared_var_keys}
    assert "log_loss_observed" in names
    log_loss = np.log(law.runs["loss"].to_numpy()) + 0.02  # every loss 2% higher
    swapped = cached.with_data(log_loss_observed=log_loss)
    fresh = nutpie.compile_pymc_model(law.model).with_data(log_loss_observed=log_loss)
    ours, theirs, before = _draws(swapped), _draws(fresh), _draws(cached)
    np.testing.assert_allclose(ours["E"], theirs["E"], rtol=1e-9)
    assert np.median(ours["E"]) > np.median(before["E"])  # the new losses were read
    with pytest.raises(KeyError, match="no_such_data"):
        cached.with_data(no_such_data=log_loss)
    with pytest.raises(ValueError, match="log_loss_observed must have rank 1"):
        cached.with_data(log_loss_observed=log_loss[:, None])


def test_without_a_cache_key_it_compiles_as_nutpie_does(law):
    """Where PyTensor gives no cache key (its numba__cache flag off), nutpie compiles."""
    import nutpie
    import pytensor

    from bayescale.inference.compiled import _cached_class, compile_pymc_model

    with pytensor.config.change_flags(numba__cache=False):
        compiled = compile_pymc_model(law.model)
    assert isinstance(compiled, nutpie.compile_pymc.CompiledPyMCModel)
    assert not isinstance(compiled, _cached_class())


#: A fresh process builds the module's model, compiles it and prints how many of the two
#: callbacks numba loaded from its cache, and the log density and gradient the cached
#: callback returns at fixed points (through nutpie's calling convention).
PROCESS = """
import ctypes, json
import numpy as np, pandas as pd
import bayescale as bs
from bayescale.inference.compiled import compile_pymc_model
flops = np.repeat(np.geomspace(1e17, 1e21, 5), 3)
loss = (2.0 + 30.0 * flops ** -0.15) * np.exp(0.01 * np.sin(np.arange(flops.size)))
runs = bs.prepare(pd.DataFrame({"flops": flops, "loss": loss}))
model = bs.ScalingLaw(runs, law="flops", noise="normal", discrepancy="prior").model
compiled = compile_pymc_model(model)
hits = compiled.compiled_logp_func.cache_hits + compiled.compiled_expand_func.cache_hits
double = ctypes.POINTER(ctypes.c_double)
values = []
for x in np.random.default_rng(0).normal(0, 2, (50, compiled.n_dim)):
    grad, logp = np.zeros(compiled.n_dim), np.zeros(())
    code = compiled.compiled_logp_func.ctypes(
        compiled.n_dim, x.ctypes.data_as(double), grad.ctypes.data_as(double),
        logp.ctypes.data_as(double), ctypes.c_void_p(compiled.user_data.ctypes.data))
    values.append([code, float(logp), *grad.tolist()])
print(json.dumps({"hits": hits, "values": values}))
"""


def test_a_later_process_loads_the_compilation_from_disk(tmp_path):
    """The second process loads both callbacks; they return the first's log density and
    gradient. Not to the last bit: PyTensor's numba reductions may add in another order
    (vectorised sums depend on the alignment of their arrays), so the draws of a first and a
    later run agree to Monte Carlo error, not bit for bit."""
    env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={tmp_path / 'pytensor'}",
               NUMBA_CACHE_DIR=str(tmp_path / "numba"), PYTHONWARNINGS="ignore")

    def run() -> dict:
        done = subprocess.run([sys.executable, "-c", PROCESS], env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    first, second = run(), run()
    assert first["hits"] == 0 and second["hits"] == 2
    first, second = np.array(first["values"]), np.array(second["values"])
    assert (first[:, 0] == 0).all() and np.isfinite(first).all()
    np.testing.assert_allclose(second, first, rtol=1e-12, atol=0)
