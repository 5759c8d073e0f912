"""Skewed noise: Normal seed noise plus an exponential under-tuning shortfall (ExGaussian).

Simulated truth: 120 runs of the Chinchilla law with 0.5% Normal noise on log loss and an
exponential shortfall of mean 3% (runs miss the law upward, as under-tuned runs do). Fixed data
and sampler seeds; a small fit (2 chains x 400 draws). The skewed noise must put E, alpha,
beta, sigma and the shortfall inside their 90% intervals and centre a new run at 100x the
largest budget on the law (the tuned run), not on the law plus the shortfall.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pymc as pm
import pytest

import bayescale as bs
from test_robust_noise import LAW, simulated_runs

SIGMA, SHORTFALL, N_RUNS = 0.005, 0.03, 120


def undertuned_runs(seed: int = 3) -> pd.DataFrame:
    return simulated_runs(N_RUNS, seed, lambda rng, n: SIGMA * rng.standard_normal(n)
                          + rng.exponential(SHORTFALL, n))


@pytest.fixture(scope="module")
def skewed_fit():
    runs = undertuned_runs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplerWarning)
        return bs.ScalingLaw(runs, law="chinchilla", noise="skewed", discrepancy="off").fit(
            draws=400, tune=400, chains=2, random_seed=5, progressbar=False)


def test_skewed_noise_recovers_the_law_and_the_shortfall(skewed_fit):
    post = skewed_fit.posterior
    truth = {**{k: LAW[k] for k in ("E", "alpha", "beta")}, "sigma": SIGMA,
             "shortfall": SHORTFALL}
    for name, value in truth.items():
        lo, hi = np.quantile(post[name].values, [0.05, 0.95])
        assert lo <= value <= hi, (name, lo, value, hi)


def test_a_new_run_is_predicted_as_a_tuned_run(skewed_fit):
    target = 100 * skewed_fit.runs["flops"].max()
    n_opt = float(bs.laws.compute_optimal(LAW, target)["params_opt"])
    law_loss = float(bs.laws.mean("chinchilla", LAW,
                                  {"params": n_opt, "tokens": target / 6 / n_opt}))
    with pytest.warns(bs.ExtrapolationWarning):  # N* at 100x lies past the runs' sizes
        pred = skewed_fit.predict({"flops": [target], "params": [n_opt]}, kind="new_run")
    median = float(np.median(pred["loss"].values))
    # the law itself within 2%; the law plus the mean shortfall (3%) would be a miss
    assert abs(median / law_loss - 1) < 0.02
    assert abs(np.log(median / law_loss)) < abs(np.log(median / law_loss) - SHORTFALL)


def test_the_pointwise_likelihood_is_the_exgaussian_density(skewed_fit):
    """The runs' log likelihood (LOO's input) against PyMC's own ExGaussian log density."""
    post = skewed_fit.posterior.isel(chain=[0], draw=[0, 1])
    y = np.log(skewed_fit.runs["loss"].to_numpy())
    ll = skewed_fit.model.log_likelihood(post, y)
    log_mu = skewed_fit.model.log_mean_draws(post, skewed_fit.runs, np.random.default_rng(0))
    for j in range(2):
        dist = pm.ExGaussian.dist(mu=log_mu[0, j], sigma=float(post["sigma"][0, j]),
                                  nu=float(post["shortfall"][0, j]))
        np.testing.assert_allclose(ll[0, j], pm.logp(dist, y).eval(), rtol=1e-6)


def test_skewed_noise_is_named_in_the_errors():
    with pytest.raises(ValueError, match="skewed"):
        bs.ScalingLaw(undertuned_runs(), law="chinchilla", noise="lognormal")
