"""Shared fixtures: the few real fits of the default run, and cheap fake posteriors.

Real NUTS fits cost ~15 s each (mostly nutpie's compilation), so the default run makes at most a
handful and shares them through session-scoped fixtures. Tiny fits always trip the ESS < 400
check; the fixtures expect that ``SamplerWarning`` on purpose (never filtered globally).
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytest

import bayescale as bs

#: Settings of the shared tiny fit. The reproducibility test re-runs exactly these.
TINY = {"draws": 200, "tune": 200, "chains": 2, "random_seed": 20240611, "progressbar": False}

#: Epoch AI's refit of the Chinchilla runs (Besiroglu et al. 2024): point estimates.
EPOCH = {"E": 1.817, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}


def tiny_fit(runs: pd.DataFrame, **model_kwargs) -> bs.Fit:
    """A tiny nutpie fit with :data:`TINY` settings, expecting the ESS < 400 warning.

    The discrepancy's scale is drawn from its prior (``discrepancy="prior"``) unless the test
    asks otherwise: the default backtests cost two more fits (tests/test_discrepancy.py fits
    them)."""
    model = bs.ScalingLaw(runs, **({"discrepancy": "prior"} | model_kwargs))
    with pytest.warns(bs.SamplerWarning, match="ESS"):
        return model.fit(**TINY)


@pytest.fixture(scope="session")
def tiny() -> dict:
    """The settings of the shared tiny fit (a copy: tests may not change the shared one)."""
    return dict(TINY)


@pytest.fixture(scope="session")
def make_tiny_fit():
    """:func:`tiny_fit`, for tests that need one more fit (count them: each costs ~15 s)."""
    return tiny_fit


@pytest.fixture(scope="session")
def chinchilla_runs() -> pd.DataFrame:
    return bs.datasets.load("chinchilla")


@pytest.fixture(scope="session")
def chinchilla_fit(chinchilla_runs) -> bs.Fit:
    """One tiny nutpie fit of the bundled Chinchilla runs (chinchilla law, Student-t noise).

    Treat as read-only: it is shared by every test of the session.
    """
    return tiny_fit(chinchilla_runs, law="chinchilla")


def fake_posterior(n_chain: int = 2, n_draw: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
    """Draws scattered around Epoch's Chinchilla estimates, shaped (chain, draw); no sampler."""
    rng = np.random.default_rng(seed)
    shape = (n_chain, n_draw)
    draws = {name: value * np.exp(0.02 * rng.standard_normal(shape))
             for name, value in EPOCH.items()}
    draws["sigma"] = 0.004 * np.exp(0.1 * rng.standard_normal(shape))
    draws["nu"] = 2.0 * np.exp(0.1 * rng.standard_normal(shape))
    return draws


def with_sampled(draws: dict, spec: dict) -> dict:
    """Natural-unit draws plus the sampled (centred) parameters the law's formula reads."""
    law = bs.laws.get_law(spec["law"])
    return draws | law.sampled_from(draws, spec["log_reference"])


@pytest.fixture(scope="session")
def fake_fit(chinchilla_runs) -> bs.Fit:
    """A Fit of the Chinchilla runs whose posterior is :func:`fake_posterior`: plumbing only."""
    spec = bs.ScalingLaw(chinchilla_runs, law="chinchilla").spec
    idata = az.from_dict({"posterior": with_sampled(fake_posterior(), spec)})
    return bs.Fit.from_sampler(idata, spec=spec, runs=chinchilla_runs, sampler="fake", seed=0)
