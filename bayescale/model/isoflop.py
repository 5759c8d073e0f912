"""The IsoFLOP model (Hoffmann et al. 2022, approach 2), Bayesian and pooled across budgets.

Runs are grouped by compute budget ``c`` (equal ``flops``); within a budget, log loss is a
parabola in log model size around the budget's optimum ``N*_c``, and the optima lie near a line
in log compute::

    log L_i   = m_c + k_c (log N_i - log N*_c)^2 + eps_i,     eps_i ~ StudentT(nu, 0, sigma)
    log N*_c  = log N0 + n0 + a (log C_c - log C0) + delta_c,  delta_c ~ Normal(0, tau_delta)
    m_c       = log(E + A (C_c / C0)^-gamma) + eta_c,          eta_c ~ Normal(0, tau_loss)
    k_c > 0

``C0`` is the geometric mean budget and ``N0`` the geometric mean model size, so that ``n0``
and ``a`` are nearly uncorrelated. ``a`` is the exponent of ``N* ~ C^a`` and ``b = 1 - a``
that of ``D* = C / (6 N*) ~ C^b``. The minimum loss per budget follows a saturating power law
in compute (the form the Chinchilla law implies at its optimum). Both budget-level effects
(``delta_c``, ``eta_c``) are pooled, and a *new* budget gets a fresh draw of each, so that
extrapolated intervals include the scatter of budgets around the lines.

Both budget-level effects are non-centred (``log N*_c = line + tau_delta * delta_z_c``,
``m_c = curve + tau_loss * eta_z_c``, standard normal ``*_z``): with ~1% noise on the losses
(a simulated sweep of 5 budgets x 7 sizes) this samples without divergences, where a centred
``m_c`` gave hundreds. On noise-free synthetic profiles (the CS336 set) both scales shrink
towards zero and the minimum-loss curve (E, A, gamma) can mix slowly (R-hat up to ~1.2 in one
run of 4 x 1000 draws); N*, D* and the exponents still mix well there.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.data import lazy
from bayescale.model.family import Family
from bayescale.inference.trees import group, set_groups
from bayescale.model.points import points_table
from bayescale.model.spec import IsoFlopSpec
from bayescale.data.runs import (check_loss_varies, check_positive_column, check_table,
                                 require_columns, with_float_columns)

pm = lazy.module("pymc")
pt = lazy.module("pytensor.tensor")

__all__ = ["IsoFlop", "MIN_BUDGETS", "MIN_SIZES"]

#: Fewest distinct compute budgets, and model sizes per budget, that the model accepts.
#: Fewest compute budgets the IsoFLOP model accepts (a line in log C needs a third to check it).
MIN_BUDGETS = 3
#: Fewest model sizes per budget (a parabola needs three points).
MIN_SIZES = 3
_POSITIVE = frozenset({"tau_delta", "k", "gamma", "tau_loss"})
_SUMMARY = ("a", "b", "params_opt_ref", "tau_delta", "E", "gamma", "tau_loss", "sigma", "nu",
            "shortfall")


class IsoFlop(Family):
    """The Bayesian IsoFLOP model for runs grouped by compute budget.

    Parameters
    ----------
    runs
        A run table (see :func:`bayescale.prepare`) with ``params``, ``flops`` and ``loss``.
        Runs with equal ``flops`` form a budget; round jittered budgets before passing them.
        At least 3 budgets, each with at least 3 distinct model sizes.
    priors
        Overrides of the default priors by name (see :meth:`default_priors`), each
        ``{"dist": <PyMC name>, **parameters}``.
    noise
        ``"student_t"`` (robust, default), ``"normal"`` or ``"skewed"`` (Normal plus an
        exponential under-tuning shortfall; see :class:`bayescale.ScalingLaw`): the noise on
        log loss.
    discrepancy
        The lines' misfit past the runs, ``d * (b + s * z)`` on log loss (``d`` the decades
        from the nearest run in N and C; :class:`bayescale.model.terms.Discrepancy`), on every
        loss answer: ``"prior"`` (default: the scale and bias from their priors, learned on
        real sweeps), ``"backtest"`` (learned from backtests of these runs, as for
        :class:`bayescale.ScalingLaw`: two more fits) or ``"off"`` (the lines taken as
        exact). N* keeps the budgets' own scatter about the line (``tau_delta``).

    Raises
    ------
    TypeError, ValueError
        For a run table that lacks columns or holds bad values, too few budgets or sizes per
        budget, unknown or invalid priors, or an unknown noise.

    Examples
    --------
    >>> import bayescale as bs
    >>> from bayescale.model.isoflop import IsoFlop
    >>> model = IsoFlop(bs.datasets.load("cs336_isoflops"))
    >>> len(model.budgets), sorted(model.priors)[:3]
    (9, ['a', 'discrepancy_scale', 'gamma'])
    """

    def __init__(self, runs: pd.DataFrame, *, priors: dict | None = None,
                 noise: str = "student_t", discrepancy: str = "prior") -> None:
        self._set_options(noise, discrepancy)
        self.runs = _check_runs(runs)
        self.budgets = np.unique(self.runs["flops"].to_numpy())
        self.budget_index = np.searchsorted(self.budgets, self.runs["flops"].to_numpy())
        self.log_flops_reference = float(np.mean(np.log(self.budgets)))
        self.log_params_reference = float(np.mean(np.log(self.runs["params"])))
        self.priors = self._checked_priors(priors, _POSITIVE)
        self.user_priors = dict(priors or {})

    family = "isoflop"
    spec_class = IsoFlopSpec

    @classmethod
    def example(cls, **options) -> IsoFlop:
        """The CS336 isoFLOP profiles (``cs336_isoflops``: 9 budgets, noise-free)."""
        from bayescale.data.datasets import load

        return cls(load("cs336_isoflops"), **options)
    report_view = "isoflop"
    theta_names = ("a", "b", "params_opt_ref", "E", "gamma")

    @staticmethod
    def options(spec) -> dict:
        """The constructor keywords recorded in an IsoFLOP spec."""
        return {"priors": dict(spec.get("user_priors") or {}) or None,
                "noise": spec.get("noise", "student_t"),
                "discrepancy": spec.get("discrepancy", "off")}

    def default_priors(self) -> dict[str, dict]:
        """The default priors, scaled to this run table (natural-log units throughout).

        - ``n0 ~ Normal(u_min, 2)``: log N* at the reference budget C0 relative to N0, centred
          on the mean over budgets of the best run's log size ``u_min``, within a factor ~e^4.
        - ``a ~ Normal(0.5, 0.25)``: the N* exponent; 95% prior mass in 0-1 (Chinchilla ~0.5).
        - ``tau_delta ~ HalfNormal(0.3)``: scatter of budgets' log N* about the line.
        - ``k ~ LogNormal(log k0, 1)`` per budget: curvature of each parabola; ``k0`` is the
          median over budgets of (range of log loss) / (half range of log N)^2.
        - ``log_E ~ Normal(log(min loss / 2), 1)``, ``log_A_ref ~ Normal(log(median loss / 2), 2)``:
          irreducible loss and the reducible part at C0 of the minimum-loss curve.
        - ``gamma ~ LogNormal(log 0.15, 0.75)``: its compute exponent, 90% mass in 0.04-0.5.
        - ``tau_loss ~ HalfNormal(0.1)``: scatter of budgets' minimum log loss about the curve.
        - ``sigma ~ HalfNormal(s)``, ``s`` the sd of log loss about each budget's mean;
          ``nu ~ Gamma(2, 0.1)`` (Student-t noise only).
        """
        log_loss = np.log(self.runs["loss"].to_numpy())
        u = np.log(self.runs["params"].to_numpy()) - self.log_params_reference
        groups = pd.DataFrame({"b": self.budget_index, "u": u, "y": log_loss}).groupby("b")
        u_min = groups.apply(lambda g: g["u"].iloc[int(np.argmin(g["y"]))], include_groups=False)
        curv = groups.apply(lambda g: np.ptp(g["y"]) / (np.ptp(g["u"]) / 2) ** 2,
                            include_groups=False)
        spread = log_loss - groups["y"].transform("mean").to_numpy()
        out = {
            "n0": {"dist": "Normal", "mu": float(u_min.mean()), "sigma": 2.0},
            "a": {"dist": "Normal", "mu": 0.5, "sigma": 0.25},
            "tau_delta": {"dist": "HalfNormal", "sigma": 0.3},
            "k": {"dist": "LogNormal", "mu": float(np.log(max(np.median(curv), 1e-6))),
                  "sigma": 1.0},
            "log_E": {"dist": "Normal", "mu": float(log_loss.min() - math.log(2)), "sigma": 1.0},
            "log_A_ref": {"dist": "Normal", "mu": float(np.median(log_loss) - math.log(2)),
                          "sigma": 2.0},
            "gamma": {"dist": "LogNormal", "mu": math.log(0.15), "sigma": 0.75},
            "tau_loss": {"dist": "HalfNormal", "sigma": 0.1},
        }
        return out | self._noise_priors(np.std(spread)) | self._discrepancy_priors()

    @property
    def spec(self) -> IsoFlopSpec:
        """The model's full specification (typed, JSON-serialisable): travels with every fit."""
        return IsoFlopSpec(
            noise=self.noise, budgets=[float(c) for c in self.budgets], priors=self.priors,
            user_priors=self.user_priors, log_flops_reference=self.log_flops_reference,
            log_params_reference=self.log_params_reference,
            flops_per_param_token=self.flops_per_param_token, discrepancy=self.discrepancy)

    def _coords(self) -> dict:
        run = self.runs.index.tolist() if self.runs.index.is_unique else list(range(len(self.runs)))
        return {"budget": self.budgets.tolist(), "run": run}

    def _mean_graph(self):
        """The parabola of each run's budget at its N, the budgets' optima and minimum losses
        on the lines (:meth:`lines`, the same expressions as the answers)."""
        x = np.log(self.budgets) - self.log_flops_reference
        u = np.log(self.runs["params"].to_numpy()) - self.log_params_reference
        n0 = self.prior("n0")
        a = self.prior("a")
        pm.Deterministic("b", 1 - a)
        pm.Deterministic("params_opt_ref", pt.exp(self.log_params_reference + n0))
        delta_z = pm.Normal("delta_z", 0.0, 1.0, dims="budget")
        tau_delta = self.prior("tau_delta")
        log_e = self.prior("log_E")
        pm.Deterministic("E", pt.exp(log_e))
        log_a, gamma = self.prior("log_A_ref"), self.prior("gamma")
        eta_z = pm.Normal("eta_z", 0.0, 1.0, dims="budget")
        u_line, curve = self.lines(pt, n0, a, log_e, log_a, gamma, x)
        u_opt = pm.Deterministic("u_opt", u_line + tau_delta * delta_z, dims="budget")
        pm.Deterministic("params_opt", pt.exp(self.log_params_reference + u_opt), dims="budget")
        m = pm.Deterministic("log_loss_opt", curve + self.prior("tau_loss") * eta_z,
                             dims="budget")
        pm.Deterministic("loss_opt", pt.exp(m), dims="budget")
        k = self.prior("k", dims="budget")
        b = self.budget_index
        return self.parabola(m[b], k[b], u, u_opt[b])

    @staticmethod
    def lines(xp, n0, a, log_e, log_a, gamma, x):
        """log N*/N0 on its line and the minimum log loss on its curve at ``x = log C - log
        C0`` (without the budgets' scatter about them)."""
        return n0 + a * x, xp.logaddexp(log_e, log_a - gamma * x)

    @staticmethod
    def parabola(log_loss_opt, k, u, u_opt):
        """A budget's log loss at log size ``u`` about its optimum ``u_opt``."""
        return log_loss_opt + k * (u - u_opt) ** 2

    def _complete(self, idata: xr.DataTree) -> xr.DataTree:
        """The budget coordinates are the budgets in FLOPs."""
        set_groups(idata, posterior=group(idata, "posterior").assign_coords(budget=self.budgets))
        return idata

    # -- answers from draws --------------------------------------------------------------------
    def points(self, points) -> pd.DataFrame:
        k = self.flops_per_param_token
        return points_table(points, ("params", "flops"), k, why="the IsoFLOP model")

    def mean_draws(self, posterior, table: pd.DataFrame, rng) -> np.ndarray:
        """The parabola of each row's budget at its N: a fitted budget's own posterior; at a new
        budget the lines with fresh budget-level draws and the curvature of a fitted budget
        drawn at random per posterior draw (the budgets' curvatures are not pooled)."""
        flops = table["flops"].to_numpy(dtype=float)
        budgets = np.unique(flops)
        log_n, log_loss = self.optimum_lines(posterior, budgets, rng, pooled=False)
        k = posterior["k"].values
        index = _match(self.budgets, budgets)
        pick = rng.integers(0, self.budgets.size, size=log_n.shape)
        curvature = np.where(index >= 0, k[..., np.maximum(index, 0)],
                             np.take_along_axis(k, pick, axis=-1))
        at = np.searchsorted(budgets, flops)
        u = np.log(table["params"].to_numpy(dtype=float))
        return self.parabola(log_loss[..., at], curvature[..., at], u, log_n[..., at])

    @property
    def has_optimum(self) -> bool:
        return True

    def optimal(self, posterior, budgets: np.ndarray, rng) -> dict[str, np.ndarray]:
        """At a fitted budget the posterior of that budget's own optimum; at any other budget
        the line in log compute plus a fresh budget-level draw ``delta ~ Normal(0, tau_delta)``
        (and ``eta ~ Normal(0, tau_loss)`` for the loss), so that intervals at new budgets
        include the scatter of budgets about the lines. The loss at the optimum carries the
        discrepancy past the runs at (N*, C)."""
        log_n, log_loss = self.optimum_lines(posterior, budgets, rng, pooled=False)
        log_d = np.log(budgets / self.flops_per_param_token) - log_n
        at = {"params": np.exp(log_n), "flops": np.broadcast_to(budgets, log_n.shape)}
        return {"params_opt": np.exp(log_n), "tokens_opt": np.exp(log_d),
                "tokens_per_param": np.exp(log_d - log_n),
                "loss_opt": np.exp(log_loss + self.discrepancy_draws(posterior, at))}

    def optimum_lines(self, posterior, budgets: np.ndarray, rng: np.random.Generator, *,
                      pooled: bool) -> tuple[np.ndarray, np.ndarray]:
        """log N* and log min-loss at ``budgets`` per draw: (chain, draw, budget). At a fitted
        budget (unless ``pooled``) that budget's own posterior; elsewhere the lines with a
        fresh draw of each budget-level effect (``pooled``: the lines alone, for every
        budget)."""
        budgets = np.asarray(budgets, dtype=float)
        post = {k: posterior[k].values[..., None] for k in
                ("n0", "a", "tau_delta", "log_E", "log_A_ref", "gamma", "tau_loss")}
        x = np.log(budgets) - self.log_flops_reference
        shape = post["a"].shape[:2] + (budgets.size,)
        u_line, curve = self.lines(np, post["n0"], post["a"], post["log_E"], post["log_A_ref"],
                                   post["gamma"], x)
        log_n = (self.log_params_reference + u_line
                 + post["tau_delta"] * rng.standard_normal(shape))
        log_loss = curve + post["tau_loss"] * rng.standard_normal(shape)
        if not pooled:
            index = _match(self.budgets, budgets)
            fitted = index >= 0
            own_n = np.log(posterior["params_opt"].values)[..., np.maximum(index, 0)]
            own_loss = posterior["log_loss_opt"].values[..., np.maximum(index, 0)]
            log_n = np.where(fitted, own_n, log_n)
            log_loss = np.where(fitted, own_loss, log_loss)
        return log_n, log_loss

    def profile(self, posterior, params, budget: float) -> xr.DataArray:
        """Mean loss of the fitted parabola of ``budget`` at model sizes ``params``.

        Returns a DataArray over (chain, draw, params). ``budget`` must be a fitted budget.
        """
        if _match(self.budgets, np.array([float(budget)]))[0] < 0:
            raise ValueError(f"budget={budget!r} is not a fitted budget; fitted budgets are "
                             f"{[float(c) for c in self.budgets]}")
        params = np.atleast_1d(np.asarray(params, dtype=float))
        table = pd.DataFrame({"params": params, "flops": float(budget)})
        log_loss = self.log_mean_draws(posterior, table, np.random.default_rng(0))
        return xr.DataArray(np.exp(log_loss), dims=("chain", "draw", "params"),
                            coords={"chain": posterior.chain, "draw": posterior.draw,
                                    "params": params})

    def summary_variables(self, posterior):
        """The exponents ``a`` (N* ~ C^a) and ``b = 1 - a`` (D* ~ C^b), ``params_opt_ref``
        (N* at the geometric-mean budget), ``tau_delta``, the minimum-loss curve (``E``,
        ``gamma``, ``tau_loss``), the noise (``sigma``, ``nu``), then per budget
        ``params_opt[<C>]``, ``loss_opt[<C>]`` and ``k[<C>]``."""
        names = [n for n in _SUMMARY if n in posterior] + self._discrepancy_summary(posterior)
        names += ["params_opt", "loss_opt", "k"]
        return posterior[names]

    def diagnostic_vars(self, posterior) -> list[str]:
        """Every sampled parameter but the derived per-budget optima."""
        return [v for v in posterior.data_vars if v not in ("params_opt", "loss_opt")]

    def predict_attrs(self) -> dict:
        return {"model": "isoflop"}

    def describe(self) -> str:
        """One line: the model and what it was fitted to."""
        return (f"IsoFLOP model (Hoffmann approach 2): per budget a parabola in log N, minima "
                f"on a line in log C; {len(self.budgets)} budgets; noise `{self.noise}`; "
                f"discrepancy past the runs `{self.discrepancy}`")

    def describe_short(self) -> str:
        return f"model='isoflop' budgets={len(self.budgets)}"


# -- validation ------------------------------------------------------------------------------
def _check_runs(runs: object) -> pd.DataFrame:
    check_table(runs, argument="runs", why=" (see bayescale.prepare)")
    require_columns(runs, ["params", "flops", "loss"], why="the IsoFLOP model")
    values = {col: check_positive_column(runs, col, argument=col)
              for col in ("params", "flops", "loss")}
    check_loss_varies(values["loss"])
    runs = with_float_columns(runs, values)
    sizes = runs.groupby("flops")["params"].nunique()
    if sizes.size < MIN_BUDGETS:
        raise ValueError(f"the IsoFLOP model needs runs at {MIN_BUDGETS} or more compute budgets "
                         f"(distinct flops values); got {sizes.size}: "
                         f"{[f'{c:.3g}' for c in sizes.index]}")
    few = sizes[sizes < MIN_SIZES]
    if few.size:
        raise ValueError(
            f"the IsoFLOP model needs at least {MIN_SIZES} distinct model sizes (params) per "
            f"budget to fit a parabola; budget(s) {', '.join(f'{c:.3g}' for c in few.index)} "
            f"FLOPs have {[int(v) for v in few]}. Drop those budgets, or round jittered flops "
            "so that runs of one budget share a value")
    return runs


def _match(fitted: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """Index of each of ``budgets`` among ``fitted`` (relative tolerance 1e-9), -1 if absent."""
    index = np.full(budgets.shape, -1)
    for i, c in enumerate(budgets):
        hit = np.flatnonzero(np.isclose(fitted, c, rtol=1e-9, atol=0))
        if hit.size:
            index[i] = hit[0]
    return index
