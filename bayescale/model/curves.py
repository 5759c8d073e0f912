"""LearningCurves: the checkpoints of training runs under a law and a schedule term.

For checkpoint j of run r (model size N_r, tokens seen t_rj)::

    log L_rj = log mu(N_r, t_rj; theta)                    the law of annealed runs at (N, t)
               + h_rj (c0 + c1 z_r)                        the schedule term
               + q z_r^2                                   the run-length term
               + u[curve r] + (other offsets) + eps_rj
    z_r  = log(T_r / N_r) - m                              T_r: the run's final tokens
    h_rj = (lr_rj - final lr_r) / peak lr_r                the learning rate not yet annealed
    u[curve] ~ ZeroSumNormal(curve_tau),   eps ~ StudentT(nu, 0, sigma)

``h`` is 0 at the end of every run, so a final loss is the law's alone and the law means what
it means for final losses: the loss of a run trained, and annealed, to t tokens. A checkpoint
before the decay sits above it by ``h (c0 + c1 ...)``: ``c0`` (``anneal``) is the log-loss
excess of a checkpoint at the peak learning rate in a run of the reference length ``m`` (log
final tokens per parameter), and ``c1`` (``anneal_slope``) how that excess changes with the
run's length: at the same point of their schedules, longer runs sit higher above the law
(``docs/curves.md`` has the measurement). ``q`` (``length_curvature``) bends the law along
the runs' length in tokens per parameter: on the OLMo ladder the run offsets without it follow
a U in log(T/N) (0.5x and 10x Chinchilla runs above the law, 2x and 5x below, at every size),
and with it the run offsets fall from 0.65% to 0.1%. ``z`` is held within the fitted runs'
range (a quadratic is no law to extrapolate); past it the discrepancy term widens. This is the
annealing term of Tissue et al. (2024), ``L = L0 + A S1^-alpha - C S2``, with the annealing
area ``S2`` taken as the learning-rate drop so far (their momentum form without the lag) and
written relative to the end of the schedule; the lr-area ``S1`` was tried for the tokens and
fitted the OLMo ladder worse (``docs/curves.md``).

**Parameterised for NUTS.** Checkpoints pin the law's value and log-slopes at the runs' mean
N and D tightly, but its curvature in each loosely. So ``log_E``, ``log_A_ref``, ``log_B_ref``,
``alpha`` and ``beta`` lie on long, narrow, curved ridges: E trades against A0 and alpha, and
against B0 and beta. On the OLMo ladder's 190M-1B runs, R-hat was 1.4-1.5 in
``log_E``/``alpha``, and 1.05-1.06 in ``beta`` once that was fixed (4 chains x 1000 draws).
For the chinchilla law the sampler therefore moves in coordinates along the ridges:

- ``ridge_level``: ``log(E + A0 + B0)``, the law at the reference point;
- ``ridge_logit_A``, ``ridge_logit_B``: ``log(A0 / E)`` and ``log(B0 / E)``, the shares of
  its three parts;
- ``ridge_log_slope_N``, ``ridge_log_slope_D``: ``log(alpha A0 / (E + A0 + B0))`` and the same
  for D, its log-slopes.

Then ``alpha = slope_N (E + A0 + B0) / A0`` and ``beta`` likewise. Along a ridge only a share
and its exponent move. The priors stay those of the law's parameters: a potential holds them,
plus the change of variables' log-Jacobian ``log alpha + log beta`` (the shares' part has
determinant 1). So the posterior is the same model's. The same fits then reach R-hat 1.006
and bulk ESS above 400 at the default 4 x 1000 draws.

``curve_tau`` defaults to HalfNormal(0.02): a run's offset from the law is the misfit of one
configuration (0.6% on the ladder's finals), and with the default HalfNormal(0.1) the posterior also holds a mode where offsets of 10-30%
free the law to follow each run's shape alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayescale.data import lazy
from bayescale.data.curves import CURVE, LR_LEFT
from bayescale.data.runs import require_columns
from bayescale.model import priors as _priors
from bayescale.model.points import decades_past
from bayescale.model.scaling import ScalingLaw
from bayescale.model.spec import LearningCurvesSpec
from bayescale.model.terms import Term

pm = lazy.module("pymc")
pt = lazy.module("pytensor.tensor")

__all__ = ["LearningCurves", "SCHEDULE_PARAMS", "RIDGE_PARAMS", "final_losses"]

#: The schedule term's parameters: c0 and c1 of the module docstring.
SCHEDULE_PARAMS = ("anneal", "anneal_slope", "length_curvature")
#: The sampled coordinates along the E-A-alpha ridge (chinchilla law).
RIDGE_PARAMS = ("ridge_level", "ridge_logit_A", "ridge_logit_B", "ridge_log_slope_N",
                "ridge_log_slope_D")
_RIDGE_LAW = ("log_E", "log_A_ref", "log_B_ref", "alpha", "beta")
#: The column of each checkpoint's run length (final tokens), from bs.learning_curves.
FINAL = "final_tokens"


class LearningCurves(ScalingLaw):
    """A Bayesian scaling law fitted to learning curves, with a learning-rate schedule term.

    Parameters
    ----------
    curves
        A table from :func:`bayescale.learning_curves`: one row per checkpoint with
        ``params``, ``tokens`` (seen so far), ``loss``, ``curve`` (the run), ``final_tokens``
        and ``lr_left``.
    law
        A law in ``params`` and ``tokens`` (``"chinchilla"``, default, or ``"kaplan"``).
    offsets
        More categorical offset columns besides ``curve`` (every run gets its own offset).
    priors, noise
        As for :class:`bayescale.ScalingLaw`; the schedule term adds ``anneal ~ Normal(0,
        0.1)`` and ``anneal_slope ~ Normal(0, 0.1)``, the run-length term
        ``length_curvature ~ Normal(0, 0.05)``; ``curve_tau ~ HalfNormal(0.02)``.
    discrepancy
        As for :class:`bayescale.ScalingLaw`; ``"prior"`` by default (the backtests cut
        runs by compute, which splits learning curves part-way).

    Examples
    --------
    >>> import bayescale as bs
    >>> table = bs.learning_curves(bs.datasets.load("olmo_ladder_curves"))
    >>> model = bs.LearningCurves(table)
    >>> sorted(name for name in model.priors if name.startswith(("anneal", "curve")))
    ['anneal', 'anneal_slope', 'curve_tau']
    """

    #: a curve's points are not runs trained to their compute: no isoFLOP profiles
    profiles_measure_allocation = False

    family = "learning_curves"
    spec_class = LearningCurvesSpec

    @classmethod
    def variants(cls) -> list[dict]:
        """The Chinchilla law (sampled along its ridges) with the discrepancy, and Kaplan's
        law taken as exact."""
        return [{"law": "chinchilla", "discrepancy": "prior"},
                {"law": "kaplan", "discrepancy": "off"}]

    @classmethod
    def example(cls, **options) -> LearningCurves:
        """The OLMo ladder's learning curves (``olmo_ladder_curves``: 30 runs, 12 checkpoints
        each)."""
        from bayescale.data.curves import learning_curves
        from bayescale.data.datasets import load

        return cls(learning_curves(load("olmo_ladder_curves")), **options)
    #: the schedule and ridge terms hold constants of the run table: compiled per table
    graph_from_data = False

    def __init__(self, curves: pd.DataFrame, *, law: str = "chinchilla", offsets=None,
                 priors: dict | None = None, noise: str = "student_t",
                 discrepancy: str = "prior") -> None:
        if not isinstance(curves, pd.DataFrame):
            raise TypeError(f"curves must be a pandas DataFrame (see bayescale.learning_curves), "
                            f"got {type(curves).__name__}")
        require_columns(curves, [CURVE, LR_LEFT, FINAL], why="LearningCurves (make the table with "
                        "bayescale.learning_curves)")
        if offsets is not None and (isinstance(offsets, str) or CURVE in offsets):
            raise ValueError(f"offsets must be a list of further columns (every run already "
                             f"has its {CURVE!r} offset), got {offsets!r}")
        ratio = np.log(pd.to_numeric(curves[FINAL], errors="coerce").to_numpy(dtype=float)
                       / curves["params"].to_numpy(dtype=float))
        finite = bool(np.all(np.isfinite(ratio)))
        self.log_tpp_reference = float(np.mean(ratio)) if finite else 0.0
        self.log_tpp_range = ((float(ratio.min()) - self.log_tpp_reference,
                               float(ratio.max()) - self.log_tpp_reference) if finite
                              else (0.0, 0.0))
        super().__init__(curves, law=law, offsets=[CURVE, *(offsets or [])], priors=priors,
                         noise=noise, discrepancy=discrepancy)
        if set(self.law.inputs) != {"params", "tokens"}:
            raise ValueError(f"law {law!r} is not a law in params and tokens; learning curves "
                             "need N and the tokens seen (law='chinchilla' or 'kaplan')")

    @property
    def hyperparameter_offsets(self) -> tuple[str, ...]:
        """The offsets besides each run's own ``curve`` offset."""
        return tuple(c for c in self.offsets if c != CURVE)

    @staticmethod
    def options(spec) -> dict:
        out = ScalingLaw.options(spec)
        out["offsets"] = [c for c in out["offsets"] or [] if c != CURVE] or None
        out["discrepancy"] = spec.get("discrepancy", "prior")
        out.pop("continuous")
        return out

    @property
    def spec(self) -> LearningCurvesSpec:
        base = super().spec
        return LearningCurvesSpec(**{k: v for k, v in base.to_dict().items() if k != "model"},
                                  log_tokens_per_param_reference=self.log_tpp_reference)

    def default_priors(self) -> dict[str, dict]:
        """The scaling law's (:meth:`bayescale.ScalingLaw.default_priors`) with ``curve_tau
        ~ HalfNormal(0.02)``, the schedule term's ``anneal``, ``anneal_slope ~ Normal(0,
        0.1)`` (a checkpoint at the peak learning rate within about 20% of the law) and
        ``length_curvature ~ Normal(0, 0.05)``."""
        out = super().default_priors()
        out[f"{CURVE}_tau"] = {"dist": "HalfNormal", "sigma": 0.02}
        return out

    # -- the graph ---------------------------------------------------------------------------
    def _law_parameters(self) -> dict:
        if not set(_RIDGE_LAW) <= set(self.law.sampled):
            return super()._law_parameters()
        p = {name: _priors.create(name, self.priors[name])
             for name in self.law.sampled if name not in _RIDGE_LAW}
        p.update(_ridge(self.priors, self._ridge_start()))
        return p

    def _ridge_start(self) -> tuple[float, ...]:
        """Starting values of the ridge coordinates: the priors' centres of log E, log A0 and
        log B0, both exponents 0.3 (their defaults' median)."""
        log_e, log_a, log_b = (float(self.priors[n].get("mu", 0.0)) for n in _RIDGE_LAW[:3])
        level = float(np.logaddexp(np.logaddexp(log_e, log_a), log_b))
        return (level, log_a - log_e, log_b - log_e, math.log(0.3) + log_a - level,
                math.log(0.3) + log_b - level)

    @property
    def terms(self) -> tuple:
        """The schedule term, then the scaling law's (each run's ``curve`` offset first)."""
        return (Schedule(self.log_tpp_reference, self.log_tpp_range), *super().terms)

    # -- answers -----------------------------------------------------------------------------
    def discrepancy_distance(self, points) -> np.ndarray | float:
        """Decades from the nearest run as for a scaling law, at least the decades past the
        last fitted checkpoint of a point's own curve: a run's final loss predicted from its
        first part is an extrapolation along that run even inside the sweep's range."""
        return np.maximum(super().discrepancy_distance(points), self._along(points))

    def _along(self, points) -> np.ndarray:
        """Decades of tokens past the last fitted checkpoint of each point's curve (0 for a
        point without a fitted curve)."""
        if CURVE not in points:
            return np.zeros(np.shape(points["tokens"]))
        return np.nan_to_num(_decades_along(self.runs, points), nan=0.0)

    def describe(self) -> str:
        return (super().describe() + "; learning curves: a schedule term in the learning rate "
                "not yet annealed, lr_left (anneal + anneal_slope z), and a run-length term "
                "length_curvature z^2 (z: log final tokens per parameter, centred)")

    def describe_short(self) -> str:
        return f"learning curves, law={self.law.name!r} offsets={list(self.offsets)}"


@dataclass(frozen=True)
class Schedule(Term):
    """The schedule and run-length terms of learning curves, ``h (c0 + c1 z) + q z^2``
    (module docstring): ``h`` the learning rate not yet annealed (``lr_left``), ``z`` the
    run's log final tokens per parameter less ``reference``, held within ``range`` (the
    fitted runs', relative to the reference)."""

    reference: float = 0.0
    range: tuple[float, float] = (0.0, 0.0)
    names = SCHEDULE_PARAMS

    def default_priors(self, runs: pd.DataFrame) -> dict:
        """``anneal``, ``anneal_slope ~ Normal(0, 0.1)`` (a checkpoint at the peak learning
        rate within about 20% of the law), ``length_curvature ~ Normal(0, 0.05)``."""
        out = {name: {"dist": "Normal", "mu": 0.0, "sigma": 0.1} for name in SCHEDULE_PARAMS}
        out["length_curvature"] = {"dist": "Normal", "mu": 0.0, "sigma": 0.05}
        return out

    @staticmethod
    def effect(xp, c0, c1, q, left, ratio):
        """``h (c0 + c1 z) + q z^2``, ``z = log(T/N) - m`` (``ratio``, already centred)."""
        return left * (c0 + c1 * ratio) + q * ratio**2

    def graph(self, family):
        return self.effect(pt, *(family.prior(n) for n in self.names),
                           *self.inputs(family.runs))

    def draws(self, family, posterior, table, rng):
        return self.effect(np, *self.parameters(posterior, self.names), *self.inputs(table))

    def inputs(self, table) -> tuple[np.ndarray, np.ndarray]:
        """``h`` and the centred log final tokens per parameter, held within the fitted runs'
        range. A point without ``lr_left`` is the end of a run: ``h = 0``, ``T`` its tokens."""
        tokens = np.asarray(table["tokens"], dtype=float)
        if LR_LEFT not in table:
            left, final = np.zeros(tokens.shape), tokens
        else:
            left = pd.to_numeric(table[LR_LEFT], errors="coerce").to_numpy(float)
            if not np.all((left >= 0) & (left <= 1)):
                raise ValueError(f"column {LR_LEFT!r} must lie in [0, 1] (see bayescale."
                                 f"learning_curves), got {list(table[LR_LEFT])[:5]}")
            require_columns(table, [FINAL], why=f"the schedule term ({LR_LEFT})")
            final = table[FINAL].to_numpy(dtype=float)
        ratio = np.log(final / np.asarray(table["params"], dtype=float)) - self.reference
        return left, np.clip(ratio, *self.range)


def _decades_along(fitted: pd.DataFrame, points) -> np.ndarray:
    """``log10(tokens / last fitted tokens of the point's curve)``, at least 0; NaN for a
    point whose curve ``fitted`` lacks."""
    last = fitted.groupby(CURVE)["tokens"].max()
    seen = pd.Series(np.asarray(points[CURVE]).astype(str)).map(last).to_numpy(dtype=float)
    return np.maximum(np.log10(np.asarray(points["tokens"], dtype=float) / seen), 0.0)


def _ridge(priors: dict, start: tuple[float, ...]) -> dict:
    """log_E, log_A_ref, log_B_ref, alpha and beta from the ridge coordinates (module
    docstring), with their priors as a potential plus the log-Jacobian, log alpha + log beta."""
    level, logit_a, logit_b, slope_n, slope_d = (
        pm.Flat(name, initval=value) for name, value in zip(RIDGE_PARAMS, start))
    log_total = pt.logaddexp(pt.logaddexp(0.0, logit_a), logit_b)
    log_e = pm.Deterministic("log_E", level - log_total)
    log_a = pm.Deterministic("log_A_ref", level + logit_a - log_total)
    log_b = pm.Deterministic("log_B_ref", level + logit_b - log_total)
    alpha = pm.Deterministic("alpha", pt.exp(slope_n - logit_a + log_total))
    beta = pm.Deterministic("beta", pt.exp(slope_d - logit_b + log_total))
    values = (log_e, log_a, log_b, alpha, beta)
    prior = sum(pm.logp(_priors.distribution(priors[name]), value)
                for name, value in zip(_RIDGE_LAW, values))
    pm.Potential("ridge_prior", prior + pt.log(alpha) + pt.log(beta))
    return dict(zip(_RIDGE_LAW, values))


def final_losses(fit, runs: pd.DataFrame, *, prob: float = 0.9,
                 random_seed: int | None = None) -> pd.DataFrame:
    """The final loss of each run of ``runs``, with a ``prob`` predictive interval.

    ``runs`` has one row per run: ``params``, ``final_tokens`` and ``curve``. A curve the fit
    has seen (a run not yet finished, fitted on its first part) keeps its learned offset; an
    unseen one (a larger run nobody has trained) draws a new one. Each gets fresh noise, and
    the discrepancy past the fitted checkpoints where the fit has one.

    Returns
    -------
    pandas.DataFrame
        Per run: ``curve``, ``params``, ``final_tokens``, ``seen`` (whether the fit has the
        curve), ``median``, ``lower``, ``upper``, ``decades_params`` / ``decades_tokens``
        (how far N and the final tokens lie past the fitted checkpoints' largest) and
        ``decades_along`` (how far the final tokens lie past the run's own last checkpoint).
    """
    require_columns(runs, ["params", "final_tokens", CURVE], why="final_losses")
    points = pd.DataFrame({"params": runs["params"].to_numpy(dtype=float),
                           "tokens": runs["final_tokens"].to_numpy(dtype=float),
                           CURVE: runs[CURVE].astype(str).to_numpy()})
    draws = fit.predict(points, kind="new_run", random_seed=random_seed)["loss"].values
    draws = draws.reshape(-1, len(points))
    lo, mid, hi = np.quantile(draws, [(1 - prob) / 2, 0.5, (1 + prob) / 2], axis=0)
    fitted = fit.runs
    along = (_decades_along(fitted, points) if CURVE in fitted.columns
             else np.full(len(points), np.nan))
    return points.rename(columns={"tokens": "final_tokens"}).assign(
        seen=np.isfinite(along), median=mid, lower=lo, upper=hi,
        decades_params=decades_past(fitted, "params", points["params"]),
        decades_tokens=decades_past(fitted, "tokens", points["tokens"]),
        decades_along=np.nan_to_num(along, nan=0.0))
