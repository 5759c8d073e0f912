"""The terms of a family's log mean loss, each written once for the graph and for draws.

A term (:class:`Term`) adds to the log mean loss. It owns its default priors (scaled to the
run table), its parameters (those that must be positive named), and its contribution, written
against an array namespace ``xp`` (``pytensor.tensor`` in the PyMC graph, ``numpy`` on
posterior draws of shape ``(chain, draw, 1)``), so that the model a family samples and the
answers of its :class:`bayescale.Fit` evaluate the same expression. A family is its mean plus
its terms (``Family.terms``); a new term is one class here (or in its family's module, as the
learning-curve schedule in ``curves.py``).

- :class:`Offsets`: a latent offset per level of a categorical column (``u[level]``), zero-sum
  and partially pooled with scale ``<col>_tau``.
- :class:`ContinuousOptimum`: ``kappa (log x - log x*(C))^2`` for a continuous column whose
  best value moves with compute, ``log x*(C) = opt_ref + opt_slope (log C - log C0)``.
- :class:`Discrepancy`: the law's misfit past the runs, ``d(x) (b + s (z + t x_N))`` with ``d``
  the decades from the nearest run, jointly in its coordinates (zero on the runs), and a tilt
  across model sizes that moves N* (see docs/discrepancy.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayescale.data import lazy
from bayescale.data.runs import check_positive_column

pm = lazy.module("pymc")
pt = lazy.module("pytensor.tensor")
spatial = lazy.module("scipy.spatial")

__all__ = ["law_at_points", "Term", "Offsets", "ContinuousOptimum", "Discrepancy",
           "pooled_levels", "level_draws"]


def pooled_levels(variable: str, tau, dims: str, centred: bool):
    """Zero-sum deviations of a column's levels with scale ``tau``, in the PyMC model:
    ``variable ~ ZeroSumNormal(tau)`` (``centred``: every level pinned by its runs), else
    ``variable = tau * <variable>_z``, ``<variable>_z ~ ZeroSumNormal(1)``."""
    if centred:
        return pm.ZeroSumNormal(variable, sigma=tau, dims=dims)
    z = pm.ZeroSumNormal(f"{variable}_z", sigma=1.0, dims=dims)
    return pm.Deterministic(variable, tau * z, dims=dims)


def level_draws(posterior, variable: str, tau_name: str, index: np.ndarray, n_levels: int,
                rng: np.random.Generator, *, sum_to_zero: bool = True) -> np.ndarray:
    """The deviations :func:`pooled_levels` drew, per draw at levels ``index`` (chain, draw,
    n): a known level's posterior, a level the fit has not seen (-1) a fresh draw, sd ``tau
    sqrt(1 + 1/k)`` seen from the observed levels' mean (``sum_to_zero``; ``tau`` for a
    bayescale 0.1 fit made before offsets summed to zero)."""
    known = posterior[variable].values[..., np.maximum(index, 0)]
    if (index >= 0).all():  # every level seen: no fresh draws to make
        return known
    tau = posterior[tau_name].values[..., None]
    if sum_to_zero:
        tau = tau * math.sqrt(1 + 1 / n_levels)
    return np.where(index >= 0, known, tau * rng.standard_normal(known.shape))


class Term:
    """A term on the log mean loss of a family (:class:`bayescale.model.family.Family`).

    A term owns its parameters (:attr:`names`, those that must be positive in
    :attr:`positive`), their default priors scaled to the run table (:meth:`default_priors`)
    and its contribution, written once against an array namespace in :meth:`effect`:
    :meth:`graph` creates the parameters in the PyMC model (through the family's priors) and
    returns the contribution at the runs; :meth:`draws` reads the same parameters from
    posterior draws and returns the contribution at the rows of any table. A family is its
    mean (the law) plus a list of terms; the discrepancy past the runs is the base's own.
    """

    #: the term's parameters, in the order :meth:`summary_names` reports them
    names: tuple[str, ...] = ()
    positive: frozenset[str] = frozenset()

    def default_priors(self, runs: pd.DataFrame) -> dict:
        return {}

    def summary_names(self) -> list[str]:
        """The posterior variables a fit's summary reports for this term."""
        return list(self.names)

    def graph(self, family):
        """The contribution at the family's runs, in the family's PyMC model (inside its
        context; the parameters created by ``family.prior(name)``)."""
        raise NotImplementedError

    def draws(self, family, posterior, table, rng: np.random.Generator):
        """The contribution per posterior draw at the rows of ``table`` (a table or a dict of
        arrays): shape (chain, draw, row), or 0.0 where ``table`` lacks the term's input."""
        raise NotImplementedError

    @staticmethod
    def parameters(posterior, names) -> list[np.ndarray]:
        """``names``' draws with a trailing point axis: shape (chain, draw, 1)."""
        return [posterior[n].values[..., None] for n in names]


@dataclass(frozen=True)
class Offsets(Term):
    """Offsets on log loss for the levels of categorical column ``column``: zero-sum (a
    column's offsets sum to zero, so the law is that of the average observed level) and
    partially pooled with scale ``<col>_tau``. ``centred``: sampled as ``u ~
    ZeroSumNormal(tau)`` (every level holds many runs), else ``u = tau z``. A level the fit
    has not seen gets a fresh draw, with sd ``tau sqrt(1 + 1/k)`` seen from the observed
    levels' mean (``sum_to_zero``; ``tau`` for a bayescale 0.1 fit made before)."""

    column: str
    levels: tuple = ()
    centred: bool = False
    sum_to_zero: bool = True

    @property
    def names(self) -> tuple[str, str]:
        return (f"{self.column}_tau", self.variable)

    @property
    def variable(self) -> str:
        """The posterior variable of the offsets (one value per level)."""
        return f"{self.column}_offset"

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

    def graph(self, family):
        col = self.column
        offset = pooled_levels(self.variable, family.prior(f"{col}_tau"), col, self.centred)
        index = pm.Data(f"{col}_level_index", self.index(self.levels, family.runs[col]),
                        dims="run")
        return self.effect(pt, offset, index)

    def draws(self, family, posterior, table, rng):
        if self.column not in table:
            return 0.0  # absent column: the average of the observed levels
        index = self.index(self.levels, np.asarray(table[self.column]))
        return level_draws(posterior, self.variable, f"{self.column}_tau", index,
                           len(self.levels), rng, sum_to_zero=self.sum_to_zero)


@dataclass(frozen=True)
class ContinuousOptimum(Term):
    """The quadratic penalty of continuous column ``column`` about its moving optimum,
    ``log x*(C) = opt_ref + opt_slope (log C - log C0)`` (``log C0``: ``log_flops_reference``)."""

    column: str
    log_flops_reference: float = 0.0

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

    def graph(self, family):
        kappa, ref, slope = (family.prior(n) for n in self.names)
        log_x = pm.Data(f"{self.column}_log_value",
                        np.log(family.runs[self.column].to_numpy(dtype=float)), dims="run")
        return self.effect(pt, kappa, ref, slope, log_x, family.graph_column("flops"))

    def draws(self, family, posterior, table, rng):
        if self.column not in table:
            return 0.0  # absent column: the hyperparameter sits at its optimum
        if not isinstance(table, pd.DataFrame):
            table = pd.DataFrame({self.column: np.ravel(table[self.column])})
        log_x = np.log(check_positive_column(table, self.column, argument="points"))
        log_c = np.log(np.asarray(table["flops"], dtype=float)) - self.log_flops_reference
        return self.effect(np, *self.parameters(posterior, self.names), log_x, log_c)

    def log_optimum_draws(self, posterior, log_flops) -> np.ndarray:
        """``log x*(C)`` per draw at ``log_flops``: shape (chain, draw, n)."""
        _, ref, slope = self.parameters(posterior, self.names)
        return self.log_optimum(np, ref, slope, log_flops - self.log_flops_reference)


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
        d, _ = spatial.cKDTree(where).query(flat, p=np.inf)
        return d.reshape(x[0].shape)

    @staticmethod
    def effect(xp, scale, distance, z, bias=0.0, tilt=0.0, across=0.0):
        """``d * (b + s * (z + t * x))``: the bias ``b`` per decade, the bend ``s * z``, and
        the tilt ``s * t`` per decade of ``x`` (decades of N from the law's compute-optimal
        size at the point's compute), which moves N* past the runs."""
        return distance * (bias + scale * (z + tilt * across))


def law_at_points(law, p, values: np.ndarray, points_name: str = "law_points",
                  index_name: str = "law_point_of_run"):
    """The law's log mean at the runs, evaluated once at each distinct point of its inputs
    (``values``: one row per input, one column per run) and read at each run through its
    point's index, both held as ``pm.Data`` (``points_name``, ``index_name``; inside the model
    context). A sweep's runs share few points (its hyperparameters and seeds vary at each),
    and the law's powers and logs are most of a gradient's cost: at 100,000 simulated runs on
    1,800 points a gradient takes 2.6 ms instead of 11.3 ms."""
    points, at = np.unique(values, axis=1, return_inverse=True)
    points = pm.Data(points_name, points)
    at = pm.Data(index_name, at.reshape(-1).astype(np.int64))
    return law.log_mean_sampled(pt, p, {x: points[i] for i, x in enumerate(law.inputs)})[at]
