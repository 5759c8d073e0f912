"""A run's noise on log loss, per posterior draw: its draws and its density in one place.

Every family's runs scatter about the mean log loss by one of three noises (the ``noise``
option): ``"student_t"`` (scale ``sigma``, degrees of freedom ``nu``), ``"normal"`` (``sigma``)
or ``"skewed"``: Normal seed noise plus an exponential under-tuning ``shortfall`` (its mean),
an exponentially modified Gaussian. A new run is a run like the fitted ones, so under skewed
noise it may fall short of the law as they did; the law itself (``kind="mean"``) is the tuned
edge. :class:`Noise` holds the parameters' draws with a trailing point axis, and everything
that draws a new run or scores a run against the fit goes through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.data import lazy

stats = lazy.module("scipy.stats")
special = lazy.module("scipy.special")

__all__ = ["MisfitWarning", "Noise", "misfit_message", "set_aside", "set_aside_message"]

#: A Student-t fit sets a run aside when its log loss lies this many noise scales or more from
#: the fit's mean (at the posterior median): the heavy tail then gives it almost no weight.
SET_ASIDE_SIGMAS = 4.0
#: The largest runs: those at or above this quantile of ``params`` (of ``flops`` without it).
LARGEST_QUANTILE = 0.9
#: A warning when the heavy tail sets aside at least this share of the largest runs (and at
#: least ``SET_ASIDE_MIN`` of them).
SET_ASIDE_SHARE = 1 / 3
SET_ASIDE_MIN = 3
#: At most this many posterior draws measure the residuals (the check is a median).
_CHECK_DRAWS = 200
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class MisfitWarning(UserWarning):
    """The runs disagree with the law in a way the noise model hides: a Student-t fit sets
    aside (as broken runs) a large share of the runs that matter most past the sweep."""


@dataclass(frozen=True)
class Noise:
    """The noise parameters per draw (arrays broadcasting against draws x points); ``nu`` for
    Student-t noise, ``shortfall`` for skewed noise, neither for Normal noise."""

    sigma: np.ndarray
    nu: np.ndarray | None = None
    shortfall: np.ndarray | None = None

    @classmethod
    def of(cls, noise: str, posterior: xr.Dataset) -> Noise:
        """The noise of a fit with option ``noise`` from its posterior: (chain, draw, 1)."""
        get = lambda name: posterior[name].values[..., None]  # noqa: E731
        return cls(sigma=get("sigma"), nu=get("nu") if noise == "student_t" else None,
                   shortfall=get("shortfall") if noise == "skewed" else None)

    def map(self, fn) -> Noise:
        """The same noise with ``fn`` applied to each parameter's draws (reshaping, indexing)."""
        return Noise(*(None if v is None else fn(np.asarray(v, float))
                       for v in (self.sigma, self.nu, self.shortfall)))

    def flat(self, keep=None) -> Noise:
        """Draws flattened to one axis (chain * draw), optionally only the draws ``keep``; a
        parameter that differs by point keeps its point axis last (draws x points)."""
        def flatten(v):
            v = v.reshape(-1, v.shape[-1]) if v.ndim > 2 and v.shape[-1] > 1 else v.reshape(-1)
            return v if keep is None else v[keep]
        return self.map(flatten)

    def draw(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        """A fresh draw of the noise on log loss per posterior draw (a new run)."""
        if self.nu is not None:
            return self.sigma * rng.standard_t(self.nu, size=shape)
        out = self.sigma * rng.standard_normal(shape)
        if self.shortfall is not None:
            out = out + self.shortfall * rng.standard_exponential(shape)
        return out

    def logpdf(self, y: np.ndarray, loc: np.ndarray) -> np.ndarray:
        """Log density of log losses ``y`` about ``loc``; broadcasts over draws and points.
        The Normal and Student-t densities are written out with their constants at the
        draws' own shape: SciPy's evaluate ``gammaln(nu)`` at every point, two thirds of
        the log-likelihood's time at 100,000 runs x 4,000 draws (``tests/test_noise.py``
        checks them against SciPy)."""
        sigma = np.asarray(self.sigma, dtype=float)
        if self.shortfall is not None and self.nu is None:
            return stats.exponnorm.logpdf(y, self.shortfall / self.sigma, loc=loc,
                                          scale=self.sigma)
        r = np.subtract(y, loc) / sigma
        if self.nu is None:
            return -0.5 * (r * r) - (np.log(sigma) + _HALF_LOG_2PI)
        nu = np.asarray(self.nu, dtype=float)
        const = (special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2)
                 - 0.5 * np.log(nu * np.pi) - np.log(sigma))
        return const - (nu + 1) / 2 * np.log1p(r * r / nu)

    def variance(self) -> np.ndarray:
        """The Fisher-equivalent variance of one run (Student-t: ``sigma^2 (nu + 3) / (nu +
        1)``; skewed: ``sigma^2 + shortfall^2``, the variance)."""
        var = np.asarray(self.sigma, float) ** 2
        if self.nu is not None:
            var = var * (self.nu + 3) / (self.nu + 1)
        if self.shortfall is not None:
            var = var + np.asarray(self.shortfall, float) ** 2
        return var


def set_aside(family, posterior: xr.Dataset) -> np.ndarray | None:
    """Per run of ``family.runs``: whether its log loss lies :data:`SET_ASIDE_SIGMAS` noise
    scales or more from the fit's mean (:meth:`bayescale.model.family.Family.run_residuals`
    over at most 200 posterior draws); None unless the noise is Student-t."""
    if family.noise != "student_t":
        return None
    n = posterior.sizes["chain"] * posterior.sizes["draw"]
    post = posterior.isel(draw=slice(None, None, max(1, n // _CHECK_DRAWS)))
    return family.run_residuals(post) >= SET_ASIDE_SIGMAS


def set_aside_message(runs: pd.DataFrame, aside: np.ndarray | None) -> str | None:
    """The :class:`MisfitWarning` text when the heavy tail sets aside at least
    :data:`SET_ASIDE_SHARE` of the largest runs (the top tenth of ``params``, else of
    ``flops``), or None."""
    if aside is None:
        return None
    column = "params" if "params" in runs.columns else "flops"
    x = runs[column].to_numpy(dtype=float)
    largest = x >= np.quantile(x, LARGEST_QUANTILE)
    k, m = int(np.count_nonzero(aside & largest)), int(np.count_nonzero(largest))
    if k < SET_ASIDE_MIN or k < SET_ASIDE_SHARE * m:
        return None
    return (f"the Student-t noise sets aside {k} of the {m} runs with the largest {column} "
            f"({int(np.count_nonzero(aside))} of {aside.size} runs in all lie "
            f"{SET_ASIDE_SIGMAS:g} noise scales or more off the law): it reads them as broken "
            f"runs, and answers past the sweep rest on the others. If they are a kind of run "
            f"the law misfits (a shape, a setup) rather than broken ones, fit with "
            f"noise='normal' and compare")


def misfit_message(family, posterior: xr.Dataset) -> str | None:
    """The :class:`MisfitWarning` text for ``family``'s fit with draws ``posterior``, or None."""
    return set_aside_message(family.runs, set_aside(family, posterior))
