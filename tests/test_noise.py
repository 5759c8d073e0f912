"""The noise densities of the log-likelihood against SciPy's.

``bayescale.model.noise.Noise.logpdf`` writes the Normal and Student-t densities out (their
constants at the draws' shape); they must equal ``scipy.stats.norm.logpdf`` and
``scipy.stats.t.logpdf`` for draws shaped (chain, draw, 1), for parameters that differ by run
(a group's noise scale), and in the far tails. Tolerance: 1e-12 relative, 1e-12 absolute.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayescale.model.noise import Noise


def _values(seed: int, per_run: bool):
    rng = np.random.default_rng(seed)
    runs = 50
    shape = (3, 40, runs) if per_run else (3, 40, 1)
    sigma = rng.uniform(0.005, 0.2, shape)
    nu = rng.uniform(1.0, 60.0, shape)
    loc = rng.normal(0.7, 0.1, (3, 40, runs))
    y = rng.normal(0.7, 0.3, runs)
    y[:3] = [0.7 + 40.0, 0.7 - 25.0, 0.7]  # far tails and the centre
    return y, loc, sigma, nu


@pytest.mark.parametrize("per_run", [False, True])
def test_the_normal_density_is_scipys(per_run):
    y, loc, sigma, _ = _values(0, per_run)
    got = Noise(sigma=sigma).logpdf(y, loc)
    want = stats.norm.logpdf(y, loc=loc, scale=sigma)
    assert got.shape == want.shape == (3, 40, 50)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("per_run", [False, True])
def test_the_student_t_density_is_scipys(per_run):
    y, loc, sigma, nu = _values(1, per_run)
    got = Noise(sigma=sigma, nu=nu).logpdf(y, loc)
    want = stats.t.logpdf(y, df=nu, loc=loc, scale=sigma)
    assert got.shape == want.shape == (3, 40, 50)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_the_skewed_density_is_scipys_exponnorm():
    y, loc, sigma, _ = _values(2, False)
    shortfall = np.full_like(sigma, 0.03)
    got = Noise(sigma=sigma, shortfall=shortfall).logpdf(y[3:], loc[..., 3:])
    want = stats.exponnorm.logpdf(y[3:], shortfall / sigma, loc=loc[..., 3:], scale=sigma)
    np.testing.assert_allclose(got, want, rtol=1e-12)
