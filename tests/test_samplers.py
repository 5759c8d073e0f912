"""Every NUTS backend runs the same model and is reproducible by its random_seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayescale as bs

TRUTH = {"E": 2.0, "A": 30.0, "alpha": 0.15}


@pytest.fixture(scope="module")
def flops_runs() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    flops = np.repeat(np.geomspace(1e17, 1e21, 6), 4)
    loss = (TRUTH["E"] + TRUTH["A"] * flops ** -TRUTH["alpha"]) * np.exp(
        0.01 * rng.standard_normal(flops.size))
    return bs.prepare(pd.DataFrame({"flops": flops, "loss": loss}))


@pytest.mark.parametrize("sampler", ["pymc", "numpyro"])
def test_backend_runs_and_is_reproducible(flops_runs, sampler):
    model = bs.ScalingLaw(flops_runs, law="flops", noise="normal")
    settings = {"draws": 100, "tune": 150, "chains": 2, "random_seed": 4, "sampler": sampler,
                "progressbar": False}
    with pytest.warns(bs.SamplerWarning):  # 200 draws cannot reach ESS 400
        first = model.fit(**settings)
    with pytest.warns(bs.SamplerWarning):
        second = model.fit(**settings)
    assert first.posterior.attrs["sampler"] == sampler
    for name in ("E", "A", "alpha", "sigma"):
        assert first.posterior[name].dims == ("chain", "draw")
        assert np.array_equal(first.posterior[name].values, second.posterior[name].values), name
    assert first.idata.log_likelihood["log_loss"].dims == ("chain", "draw", "run")
    # a crude check that the backend samples the right posterior: 24 runs with 1% noise pin
    # the loss at the largest budget to well within 2% of the truth
    top = flops_runs["flops"].max()
    predicted = float(first.predict({"flops": [top]})["loss"].median())
    assert predicted == pytest.approx(TRUTH["E"] + TRUTH["A"] * top ** -TRUTH["alpha"], rel=0.02)
