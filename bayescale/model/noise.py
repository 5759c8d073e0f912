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

from dataclasses import dataclass

import numpy as np
import xarray as xr

from bayescale.data import lazy

stats = lazy.module("scipy.stats")

__all__ = ["Noise"]


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
        """Log density of log losses ``y`` about ``loc``; broadcasts over draws and points."""
        if self.nu is not None:
            return stats.t.logpdf(y, df=self.nu, loc=loc, scale=self.sigma)
        if self.shortfall is not None:
            return stats.exponnorm.logpdf(y, self.shortfall / self.sigma, loc=loc,
                                          scale=self.sigma)
        return stats.norm.logpdf(y, loc=loc, scale=self.sigma)

    def variance(self) -> np.ndarray:
        """The Fisher-equivalent variance of one run (Student-t: ``sigma^2 (nu + 3) / (nu +
        1)``; skewed: ``sigma^2 + shortfall^2``, the variance)."""
        var = np.asarray(self.sigma, float) ** 2
        if self.nu is not None:
            var = var * (self.nu + 3) / (self.nu + 1)
        if self.shortfall is not None:
            var = var + np.asarray(self.shortfall, float) ** 2
        return var
