"""Hyperparameter terms of a scaling law, each written once for the graph and for draws.

A term adds to the log mean loss. It owns its default priors (scaled to the run table), the
names of its parameters that must be positive, and its contribution, written against an array
namespace ``xp`` (``pytensor.tensor`` in the PyMC graph, ``numpy`` on posterior draws of shape
``(chain, draw, 1)``), so that :class:`bayescale.ScalingLaw` and :class:`bayescale.Fit`
evaluate the same expression.

- :class:`Offsets`: a latent offset per level of a categorical column (``u[level]``), zero-sum
  and partially pooled with scale ``<col>_tau``.
- :class:`ContinuousOptimum`: ``kappa (log x - log x*(C))^2`` for a continuous column whose
  best value moves with compute, ``log x*(C) = opt_ref + opt_slope (log C - log C0)``.
- :class:`Discrepancy`: the law's misfit past the runs, ``d(x) (b + s (z + t x_N))`` with ``d``
  the decades from the nearest run, jointly in its coordinates (zero on the runs), and a tilt
  across model sizes that moves N* (see docs/discrepancy.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

__all__ = ["Offsets", "ContinuousOptimum", "Discrepancy"]


@dataclass(frozen=True)
class Offsets:
    """Offsets on log loss for the levels of categorical column ``column``."""

    column: str

    @property
    def positive(self) -> frozenset[str]:
        return frozenset({f"{self.column}_tau"})

    def default_priors(self, runs: pd.DataFrame) -> dict:
        """``<col>_tau ~ HalfNormal(0.1)``: offsets of a few percent of the loss are typical."""
        return {f"{self.column}_tau": {"dist": "HalfNormal", "sigma": 0.1}}

    @staticmethod
    def index(levels, values) -> np.ndarray:
        """Position of each value among ``levels`` (-1 for a level the fit has not seen)."""
        return pd.Index(levels).get_indexer(values)

    @staticmethod
    def effect(xp, offset, index):
        """The contribution of the offsets ``offset`` (levels last) to runs at ``index``."""
        return offset[..., index]


@dataclass(frozen=True)
class ContinuousOptimum:
    """The quadratic penalty of continuous column ``column`` about its moving optimum."""

    column: str

    @property
    def names(self) -> tuple[str, str, str]:
        c = self.column
        return (f"{c}_kappa", f"{c}_opt_ref", f"{c}_opt_slope")

    @property
    def positive(self) -> frozenset[str]:
        return frozenset({f"{self.column}_kappa"})

    def default_priors(self, runs: pd.DataFrame) -> dict:
        """- ``<col>_kappa ~ HalfNormal(0.1)``: a factor e off the optimum costs ~10% in loss.
        - ``<col>_opt_ref ~ Normal(mean log x, 2 sd log x + 0.5)``: the optimum at C0.
        - ``<col>_opt_slope ~ Normal(0, 0.5)``: how fast log x* moves per e-fold of compute.
        """
        log_x = np.log(runs[self.column].to_numpy(dtype=float))
        kappa, ref, slope = self.names
        return {kappa: {"dist": "HalfNormal", "sigma": 0.1},
                ref: {"dist": "Normal", "mu": float(log_x.mean()),
                      "sigma": float(2 * log_x.std() + 0.5)},
                slope: {"dist": "Normal", "mu": 0.0, "sigma": 0.5}}

    @staticmethod
    def log_optimum(xp, ref, slope, log_flops_centred):
        """``log x*(C)`` with ``log C`` measured from the runs' reference ``log C0``."""
        return ref + slope * log_flops_centred

    @classmethod
    def effect(cls, xp, kappa, ref, slope, log_x, log_flops_centred):
        """``kappa (log x - log x*(C))^2``."""
        return kappa * (log_x - cls.log_optimum(xp, ref, slope, log_flops_centred)) ** 2


@dataclass(frozen=True)
class Discrepancy:
    """Model discrepancy on log loss that grows with the distance from the runs.

    ``delta(x) = d(x) * (b + s * z)``: ``d(x)`` is how many decades point ``x`` lies from the
    nearest run, jointly in ``columns`` (compute, N, D, continuous hyperparameters; the
    largest of the coordinates' differences in log10, so 0 at a run and the fit itself is
    unchanged), ``s`` the scale in log loss per decade and ``z ~ Normal(0, 1)`` one draw per
    posterior draw (the law bends away from its fit by an unknown amount, the same for every
    point at one distance); ``b`` is the bias per decade that laws fitted to real sweeps show
    past their runs (they over-predict the loss of larger runs). A law that trades N against
    D also gets a tilt, ``d * s * t * x`` with ``t ~ Normal(0, 1)`` and ``x`` the decades of
    N from the law's own compute-optimal size at that compute: past the runs the misfit has
    a slope across sizes as large per decade as its value per decade of distance, so the
    isoFLOP profile's minimum (N*) moves by an amount that the data past the runs would
    decide (zero at the law's optimum, so the loss there is unchanged).

    The distance is measured from where runs are, not from the range of each coordinate: a
    model size the sweep holds only at small budgets is far from every run at a large budget,
    though it lies inside the sweep's range of N and of C taken one at a time.
    """

    columns: tuple[str, ...]

    def ranges(self, runs: pd.DataFrame) -> dict[str, np.ndarray]:
        """Where the runs are: ``log10`` of each column at every run."""
        return {c: np.log10(runs[c].to_numpy(dtype=float)) for c in self.columns}

    @staticmethod
    def distance(points, ranges: dict[str, np.ndarray]) -> np.ndarray | float:
        """Decades from the nearest run (``ranges``: :meth:`ranges`) over the columns that
        ``points`` (a table or a dict of arrays of one shape) holds: the largest
        coordinate-wise difference in log10, minimised over runs."""
        columns = [c for c in ranges if c in points]
        if not columns:
            return 0.0
        where = np.unique(np.column_stack([np.asarray(ranges[c], float) for c in columns]), axis=0)
        x = np.broadcast_arrays(*(np.log10(np.asarray(points[c], dtype=float)) for c in columns))
        flat = np.column_stack([a.reshape(-1) for a in x])
        d, _ = cKDTree(where).query(flat, p=np.inf)
        return d.reshape(x[0].shape)

    @staticmethod
    def effect(xp, scale, distance, z, bias=0.0, tilt=0.0, across=0.0):
        """``d * (b + s * (z + t * x))``: the bias ``b`` per decade, the bend ``s * z``, and
        the tilt ``s * t`` per decade of ``x`` (decades of N from the law's compute-optimal
        size at the point's compute), which moves N* past the runs."""
        return distance * (bias + scale * (z + tilt * across))
