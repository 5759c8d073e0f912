"""The Chinchilla law with a size-dependent data exponent (``law="chinchilla_sized"``): a
NUTS fit recovers a known gamma, and finds none where the truth has none."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.model import laws


def _sweep(gamma: float, seed: int) -> pd.DataFrame:
    """7 budgets (1e17-1e21 FLOPs) x 6 sizes about the compute-optimal N, 1% noise; the data
    exponent beta (N / N_p)^gamma with beta = 0.3 at the pivot, the runs' geometric means (as
    a fit's: the data term turns about the pivot, so another pivot is another law)."""
    rng = np.random.default_rng(seed)
    budgets = np.repeat(np.geomspace(1e17, 1e21, 7), 6)
    params = np.sqrt(budgets / 120.0) * np.tile(np.geomspace(1 / 5, 5, 6), 7)
    tokens = budgets / (6 * params)
    log_d_p = np.log(tokens).mean()
    law = laws.get_law("chinchilla_sized").bind({"params": np.log(params).mean(),
                                                 "tokens": log_d_p})
    theta = {"E": 1.8, "A": 400.0, "B": 0.5 * np.exp(0.3 * log_d_p), "alpha": 0.34,
             "beta": 0.3, "gamma": gamma}  # the data term 0.5 at the pivot
    loss = laws.mean(law, theta, {"params": params, "tokens": tokens})
    return bs.prepare(pd.DataFrame({"params": params, "tokens": tokens,
                                    "loss": loss * np.exp(0.01 * rng.standard_normal(loss.size))}))


@pytest.mark.parametrize("gamma", [0.0, 0.1])
def test_a_fit_recovers_gamma(gamma):
    model = bs.ScalingLaw(_sweep(gamma, seed=3), law="chinchilla_sized", discrepancy="off")
    with warnings.catch_warnings():  # a tiny fit's R-hat and ESS: warned, not judged here
        warnings.simplefilter("ignore", bs.SamplerWarning)
        fit = model.fit(draws=300, tune=300, chains=2, random_seed=1, progressbar=False)
    lo, hi = np.quantile(fit.posterior["gamma"].values, [0.05, 0.95])
    assert lo < gamma < hi
    assert hi - lo < 0.13  # informed by the runs: the prior's 90% interval is 0.16 wide
    # the compute-optimal N is the numerical optimum of each draw's own law
    with pytest.warns(bs.ExtrapolationWarning, match="past the runs"):  # 100x the top budget
        opt = fit.optimal([1e23])["params_opt"].values.reshape(-1)
    assert np.all(np.isfinite(opt)) and np.all(opt > 0)
