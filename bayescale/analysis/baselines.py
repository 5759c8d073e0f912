"""Classic point methods for scaling laws, to set beside the Bayesian answer.

NumPy and SciPy only (no sampler). Three methods that practitioners use today:

- :func:`argmin_loglinear`: the best (lowest-loss) run per compute budget, then an ordinary
  least-squares line of ``log10(loss)`` on ``log10(flops)`` (a pure power law ``L = k C^s``).
- :func:`isoflop_argmin`: the best run per budget, then log-log least-squares lines
  ``N_opt = k_N C^a`` and ``D_opt = k_D C^b`` (a crude form of Hoffmann et al.'s approach 2).
- :func:`huber_lbfgs`: Hoffmann et al.'s approach 3 as Epoch AI replicated it (Besiroglu et al.
  2024): minimise the Huber loss of log-loss residuals of ``L = E + A N^-alpha + B D^-beta`` with
  L-BFGS-B from a grid of starts, optionally with a bootstrap over runs.

A *budget* is a distinct value of the ``flops`` column; round it first when budgets are noisy.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import huber

from bayescale.inference.intervals import check_prob
from bayescale.model.laws import compute_optimal, get_law, mean
from bayescale.model.points import check_budgets, points_table
from bayescale.data.runs import check_positive_column, require_columns

try:  # installed with PyMC; optional here so that this module needs only NumPy and SciPy
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - exercised only without PyMC
    threadpool_limits = None

__all__ = [
    "HOFFMANN_GRID",
    "HuberFit",
    "IsoflopFit",
    "LogLinearFit",
    "argmin_loglinear",
    "best_per_budget",
    "huber_lbfgs",
    "isoflop_argmin",
]

#: Hoffmann et al. (2022)'s grid of initialisations for approach 3, in the optimiser's units:
#: ``e = log E``, ``a = log A``, ``b = log B`` (natural logs), ``alpha``, ``beta``. 4500 starts.
HOFFMANN_GRID: dict[str, tuple[float, ...]] = {
    "e": (-1.0, -0.5, 0.0, 0.5, 1.0),
    "a": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "b": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "alpha": (0.0, 0.5, 1.0, 1.5, 2.0),
    "beta": (0.0, 0.5, 1.0, 1.5, 2.0),
}
_GRID_KEYS = tuple(HOFFMANN_GRID)
#: Tighter stopping rules than SciPy's defaults (ftol 2.2e-9, gtol 1e-5): with delta = 1e-3 most
#: residuals sit on the linear arms of the Huber loss, where L-BFGS-B otherwise stops early. On
#: the 240 Chinchilla runs this takes the share of Hoffmann's 4500 starts that reach the best
#: objective from 7% to 34%, at about twice the iterations per start; the best fit is the same.
_LBFGS_OPTIONS = {"ftol": 1e-15, "gtol": 1e-12}
_PARAMS = ("E", "A", "B", "alpha", "beta")


# -- best run per budget ---------------------------------------------------------------------
def best_per_budget(runs: pd.DataFrame, *, drop_budgets: int | Sequence[float] = 0) -> pd.DataFrame:
    """The lowest-loss run of each compute budget (each distinct ``flops`` value).

    Parameters
    ----------
    runs
        A run table with columns ``flops`` and ``loss`` (see :func:`bayescale.prepare`).
    drop_budgets
        An int k drops the k smallest budgets; a list of budgets drops exactly those (each must
        be a budget of ``runs``). At least two budgets must remain.

    Returns
    -------
    pandas.DataFrame
        One row per remaining budget, sorted by ``flops``: the best run's row of ``runs`` (its
        original index kept). On ties the first run wins.

    Raises
    ------
    TypeError
        If ``runs`` is not a DataFrame or ``drop_budgets`` is neither an int nor a list of numbers.
    ValueError
        If a column is missing or holds a non-positive value, a budget to drop is not in
        ``runs``, or fewer than two budgets remain.

    Examples
    --------
    >>> import pandas as pd
    >>> runs = pd.DataFrame({"flops": [1e18, 1e18, 1e19, 1e19], "loss": [3.0, 2.9, 2.7, 2.8]})
    >>> best_per_budget(runs)["loss"].tolist()
    [2.9, 2.7]
    """
    _check_table(runs, ("flops", "loss"), why="best_per_budget")
    best = runs.loc[runs.groupby("flops", sort=True)["loss"].idxmin()]
    budgets = best["flops"].to_numpy(dtype=float)
    drop = _budgets_to_drop(drop_budgets, budgets)
    kept = best.loc[~np.isin(budgets, drop)]
    if len(kept) < 2:
        raise ValueError(
            f"a line through the best run per budget needs at least 2 compute budgets; runs has "
            f"{budgets.size} distinct flops value(s) {budgets.tolist()}"
            + (f" and drop_budgets={drop_budgets!r} leaves {len(kept)}" if drop.size else "")
        )
    return kept


def _budgets_to_drop(drop_budgets, budgets: np.ndarray) -> np.ndarray:
    """The budgets (values of ``budgets``) that ``drop_budgets`` names."""
    if isinstance(drop_budgets, (int, np.integer)) and not isinstance(drop_budgets, bool):
        if drop_budgets < 0:
            raise ValueError(
                f"drop_budgets must be >= 0 or a list of budgets, got {drop_budgets!r}")
        return budgets[: int(drop_budgets)]
    if isinstance(drop_budgets, (str, bytes, bool, Mapping)) or not isinstance(
            drop_budgets, (Sequence, np.ndarray)):
        raise TypeError(f"drop_budgets must be an int or a list of budgets (FLOPs), "
                        f"got {drop_budgets!r}")
    if len(drop_budgets) == 0:
        return budgets[:0]
    wanted = check_budgets(drop_budgets, argument="drop_budgets")
    out = []
    for value in wanted:
        hit = np.flatnonzero(np.isclose(budgets, value, rtol=1e-9, atol=0.0))
        if hit.size == 0:
            raise ValueError(f"drop_budgets holds {float(value)!r}, which is not a budget of runs; "
                             f"the budgets are {budgets.tolist()}")
        out.append(budgets[hit[0]])
    return np.asarray(out)


def _check_table(runs, columns: Sequence[str], *, why: str) -> dict[str, np.ndarray]:
    if not isinstance(runs, pd.DataFrame):
        raise TypeError(f"runs must be a pandas DataFrame (a run table), got {type(runs).__name__}")
    require_columns(runs, columns, why=why)
    return {c: check_positive_column(runs, c, argument=c) for c in columns}


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope and intercept of the ordinary least-squares line of ``y`` on ``x``."""
    dx = x - x.mean()
    slope = float(dx @ (y - y.mean()) / (dx @ dx))
    return slope, float(y.mean() - slope * x.mean())


# -- argmin + log-log line of loss -----------------------------------------------------------
@dataclass(frozen=True)
class LogLinearFit:
    """A pure power law in compute through the best run per budget: ``L = 10^intercept C^slope``.

    Attributes
    ----------
    slope, intercept
        The least-squares line ``log10(L) = intercept + slope * log10(C)``.
    best_runs
        The best run of each budget that the line was fitted to.
    dropped_budgets
        Budgets left out of the fit.

    Examples
    --------
    >>> import pandas as pd
    >>> runs = pd.DataFrame({"flops": [1e18, 1e19, 1e20], "loss": [4.0, 3.2, 2.56]})
    >>> fit = argmin_loglinear(runs)
    >>> round(fit.slope, 4), round(float(fit.predict(1e21)[0]), 3)
    (-0.0969, 2.048)
    """

    slope: float
    intercept: float
    best_runs: pd.DataFrame = field(repr=False, compare=False)
    dropped_budgets: tuple[float, ...] = ()

    @property
    def coefficient(self) -> float:
        """``k`` in ``L = k C^slope``."""
        return 10.0 ** self.intercept

    def predict(self, budgets) -> np.ndarray:
        """Predicted loss ``10^intercept budgets^slope``.

        Parameters
        ----------
        budgets
            A compute budget or a list of them, in FLOPs.

        Returns
        -------
        numpy.ndarray
            The loss at each budget (1-D, in the order given).

        Raises
        ------
        TypeError
            If a budget is not a number.
        ValueError
            If a budget is not a finite positive number.

        Examples
        --------
        >>> import pandas as pd
        >>> fit = argmin_loglinear(pd.DataFrame({"flops": [1e18, 1e20], "loss": [4.0, 2.56]}))
        >>> fit.predict([1e19]).round(2).tolist()
        [3.2]
        """
        flops = check_budgets(budgets)
        return 10.0 ** (self.intercept + self.slope * np.log10(flops))


def argmin_loglinear(runs: pd.DataFrame, *,
                     drop_budgets: int | Sequence[float] = 0) -> LogLinearFit:
    """Fit ``log10(loss) = intercept + slope log10(flops)`` to the best run of each budget.

    Parameters
    ----------
    runs
        A run table with columns ``flops`` and ``loss``.
    drop_budgets
        An int k drops the k smallest budgets; a list of budgets drops exactly those.

    Returns
    -------
    LogLinearFit
        ``slope``, ``intercept``, ``best_runs`` and ``predict(budgets)`` giving the loss.

    Raises
    ------
    TypeError
        If ``runs`` is not a DataFrame or a column is not numeric.
    ValueError
        If a column is missing or not positive, or fewer than two budgets remain.

    Examples
    --------
    >>> import bayescale as bs
    >>> fit = argmin_loglinear(bs.datasets.load("cs336_api_2024"), drop_budgets=[1e13])
    >>> round(float(fit.predict(1e19)[0]), 2)
    2.74
    """
    best = best_per_budget(runs, drop_budgets=drop_budgets)
    slope, intercept = _ols(np.log10(best["flops"].to_numpy(float)),
                            np.log10(best["loss"].to_numpy(float)))
    return LogLinearFit(slope, intercept, best, _dropped(runs, best))


def _dropped(runs: pd.DataFrame, best: pd.DataFrame) -> tuple[float, ...]:
    return tuple(float(b) for b in np.setdiff1d(runs["flops"].to_numpy(float),
                                                best["flops"].to_numpy(float)))


# -- argmin + log-log lines of the optimal allocation ----------------------------------------
@dataclass(frozen=True)
class IsoflopFit:
    """Optimal allocation from the best run per budget: ``N_opt = k_N C^a``, ``D_opt = k_D C^b``.

    Attributes
    ----------
    params_coefficient, params_exponent
        ``k_N`` and ``a`` of the least-squares line ``log10 N_opt = log10 k_N + a log10 C``.
    tokens_coefficient, tokens_exponent
        ``k_D`` and ``b`` of the same line for the best run's tokens.
    best_runs
        The best run of each budget that the lines were fitted to.
    dropped_budgets
        Budgets left out of the fit.

    Examples
    --------
    >>> import bayescale as bs
    >>> fit = isoflop_argmin(bs.datasets.load("cs336_isoflops"))
    >>> round(fit.params_coefficient, 2), round(fit.params_exponent, 2)
    (1.16, 0.47)
    """

    params_coefficient: float
    params_exponent: float
    tokens_coefficient: float
    tokens_exponent: float
    best_runs: pd.DataFrame = field(repr=False, compare=False)
    dropped_budgets: tuple[float, ...] = ()

    def predict(self, budgets) -> pd.DataFrame:
        """The compute-optimal model size and tokens that the two lines give at ``budgets``.

        Parameters
        ----------
        budgets
            A compute budget or a list of them, in FLOPs.

        Returns
        -------
        pandas.DataFrame
            Columns ``params_opt``, ``tokens_opt`` and ``tokens_per_param``; index ``budget``.

        Raises
        ------
        TypeError
            If a budget is not a number.
        ValueError
            If a budget is not a finite positive number.

        Examples
        --------
        >>> import bayescale as bs
        >>> fit = isoflop_argmin(bs.datasets.load("cs336_isoflops"))
        >>> f"{fit.predict(1e23)['params_opt'].iloc[0]:.2e}"
        '7.01e+10'
        """
        flops = check_budgets(budgets)
        params = self.params_coefficient * flops ** self.params_exponent
        tokens = self.tokens_coefficient * flops ** self.tokens_exponent
        return pd.DataFrame({"params_opt": params, "tokens_opt": tokens,
                             "tokens_per_param": tokens / params},
                            index=pd.Index(flops, name="budget"))


def isoflop_argmin(runs: pd.DataFrame, *,
                   drop_budgets: int | Sequence[float] = 0) -> IsoflopFit:
    """Fit log-log lines of the best run's model size and tokens against its compute budget.

    Parameters
    ----------
    runs
        A run table with columns ``params``, ``tokens``, ``flops`` and ``loss``.
    drop_budgets
        An int k drops the k smallest budgets; a list of budgets drops exactly those.

    Returns
    -------
    IsoflopFit
        Coefficients and exponents of ``N_opt = k_N C^a`` and ``D_opt = k_D C^b`` and
        ``predict(budgets)`` giving a DataFrame of ``params_opt`` and ``tokens_opt``.

    Raises
    ------
    TypeError
        If ``runs`` is not a DataFrame or a column is not numeric.
    ValueError
        If a column is missing or not positive, or fewer than two budgets remain.

    Examples
    --------
    >>> import bayescale as bs
    >>> fit = isoflop_argmin(bs.datasets.load("cs336_isoflops"))
    >>> round(fit.params_exponent, 2), round(fit.tokens_exponent, 2)
    (0.47, 0.53)
    """
    _check_table(runs, ("params", "tokens", "flops", "loss"), why="isoflop_argmin")
    best = best_per_budget(runs, drop_budgets=drop_budgets)
    log_c = np.log10(best["flops"].to_numpy(float))
    a, log_kn = _ols(log_c, np.log10(best["params"].to_numpy(float)))
    b, log_kd = _ols(log_c, np.log10(best["tokens"].to_numpy(float)))
    return IsoflopFit(10.0 ** log_kn, a, 10.0 ** log_kd, b, best, _dropped(runs, best))


# -- Hoffmann approach 3: Huber loss + L-BFGS-B ------------------------------------------------
@dataclass(frozen=True)
class HuberFit:
    """The Chinchilla law ``L = E + A N^-alpha + B D^-beta`` fitted by Huber loss and L-BFGS-B.

    Attributes
    ----------
    E, A, B, alpha, beta
        The best fit, in natural units.
    objective
        The minimised sum of Huber losses of the log-loss residuals.
    delta
        The Huber threshold used.
    converged
        Whether SciPy reported success for the best start; ``message`` is its reason to stop.
    n_runs, n_starts
        Runs fitted and grid starts tried.
    flops_per_param_token
        ``k`` in ``C = k N D``, used by :meth:`optimal`.
    bootstrap_draws
        One row per bootstrap replicate (columns ``E, A, B, alpha, beta``), or None.

    Examples
    --------
    >>> import bayescale as bs
    >>> runs = bs.datasets.load("chinchilla")
    >>> fit = huber_lbfgs(runs.drop(runs["loss"].nlargest(5).index), grid=[[0.5, 6, 7, 0.4, 0.4]])
    >>> round(fit.params_exponent, 3)
    0.514
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float
    delta: float
    converged: bool
    message: str
    n_runs: int
    n_starts: int
    flops_per_param_token: float = 6.0
    bootstrap_draws: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    @property
    def theta(self) -> dict[str, float]:
        """The law's parameters as a dict (the form :mod:`bayescale.model.laws` takes)."""
        return {name: getattr(self, name) for name in _PARAMS}

    @property
    def params_exponent(self) -> float:
        """The compute-optimal exponent ``a = beta / (alpha + beta)`` of ``N_opt ∝ C^a``."""
        return self.beta / (self.alpha + self.beta)

    def predict(self, points) -> np.ndarray:
        """The fitted law's loss at ``points``.

        Parameters
        ----------
        points
            A run table or a dict of arrays with two of ``params``, ``tokens``, ``flops`` (the
            third is derived with :attr:`flops_per_param_token`).

        Returns
        -------
        numpy.ndarray
            ``E + A N^-alpha + B D^-beta`` at each point.

        Raises
        ------
        TypeError
            If ``points`` is not a DataFrame or dict, or holds non-numbers.
        ValueError
            If a value is not finite and positive, or N and D cannot be had from the columns.

        Examples
        --------
        >>> fit = HuberFit(1.7, 400.0, 1500.0, 0.3, 0.3, 0.0, 1e-3, True, "", 0, 0)
        >>> fit.predict({"params": [1e10], "tokens": [1e10]}).round(3).tolist()  # 1.7 + 1900e-3
        [3.6]
        """
        law = get_law("chinchilla")
        table = points_table(points, law.inputs, self.flops_per_param_token,
                             why=f"law {law.name!r}")
        return mean("chinchilla", self.theta, {c: table[c].to_numpy(float)
                                               for c in ("params", "tokens")})

    def optimal(self, budgets, *, prob: float | None = None) -> pd.DataFrame:
        """The compute-optimal allocation at ``budgets`` (:func:`bayescale.model.laws.compute_optimal`).

        Parameters
        ----------
        budgets
            Compute budgets in FLOPs.
        prob
            With bootstrap draws, add equal-tailed ``<column>_lower``/``<column>_upper`` bounds
            holding this probability.

        Returns
        -------
        pandas.DataFrame
            ``params_opt``, ``tokens_opt``, ``tokens_per_param``, ``loss_opt``; index ``budget``.

        Raises
        ------
        ValueError
            If a budget is not a finite positive number or ``prob`` is not in (0, 1).
        RuntimeError
            If ``prob`` is given but the fit has no bootstrap draws.

        Examples
        --------
        >>> fit = HuberFit(1.7, 400.0, 400.0, 0.3, 0.3, 0.0, 1e-3, True, "", 0, 0)
        >>> float(fit.optimal(6e20)["tokens_per_param"].iloc[0])  # equal laws in N and D
        1.0
        """
        flops = check_budgets(budgets)
        k = self.flops_per_param_token
        out = pd.DataFrame(compute_optimal(self.theta, flops, flops_per_param_token=k),
                           index=pd.Index(flops, name="budget"))
        if prob is None:
            return out
        draws = self._draws()
        theta = {name: draws[name].to_numpy(float)[:, None] for name in _PARAMS}
        lower, upper = _tails(prob)
        for name, values in compute_optimal(theta, flops[None, :], flops_per_param_token=k).items():
            out[f"{name}_lower"] = np.quantile(values, lower, axis=0)
            out[f"{name}_upper"] = np.quantile(values, upper, axis=0)
        return out

    def interval(self, prob: float = 0.95) -> pd.DataFrame:
        """Equal-tailed bootstrap intervals of the parameters.

        Parameters
        ----------
        prob
            Probability mass inside each interval, in (0, 1).

        Returns
        -------
        pandas.DataFrame
            Index ``E, A, B, alpha, beta, params_exponent``; columns ``estimate`` (the fit),
            ``lower`` and ``upper`` (quantiles ``(1 -+ prob) / 2`` of the bootstrap draws).

        Raises
        ------
        ValueError
            If ``prob`` is not strictly between 0 and 1.
        RuntimeError
            If the fit was made without a bootstrap.

        Examples
        --------
        >>> import bayescale as bs
        >>> runs = bs.datasets.load("chinchilla")
        >>> fit = huber_lbfgs(runs.drop(runs["loss"].nlargest(5).index),
        ...                   grid=[[0.5, 6, 7, 0.4, 0.4]], bootstrap=20, random_seed=0)
        >>> table = fit.interval(0.9)
        >>> bool(table.loc["alpha", "lower"] < fit.alpha < table.loc["alpha", "upper"])
        True
        """
        lower, upper = _tails(prob)
        draws = self._draws().assign(params_exponent=lambda d: d["beta"] / (d["alpha"] + d["beta"]))
        estimate = self.theta | {"params_exponent": self.params_exponent}
        return pd.DataFrame({"estimate": pd.Series(estimate),
                             "lower": draws.quantile(lower), "upper": draws.quantile(upper)})

    def _draws(self) -> pd.DataFrame:
        if self.bootstrap_draws is None:
            raise RuntimeError(
                "this fit has no bootstrap draws; call huber_lbfgs(..., bootstrap=n)")
        return self.bootstrap_draws


def _tails(prob) -> tuple[float, float]:
    check_prob(prob)
    return (1 - prob) / 2, (1 + prob) / 2


def huber_lbfgs(runs: pd.DataFrame, *, delta: float = 1e-3, grid=None, bootstrap: int = 0,
                random_seed: int | np.random.Generator | None = None) -> HuberFit:
    """Fit ``L = E + A N^-alpha + B D^-beta`` as Hoffmann et al. (approach 3) and Epoch AI did.

    Minimises ``sum_i Huber_delta(log Lpred_i - log L_i)`` with
    ``log Lpred = logsumexp(e, a - alpha log N, b - beta log D)`` (``E = exp(e)``, ...) by
    :func:`scipy.optimize.minimize` (``method="L-BFGS-B"``, analytic gradient) from every start
    of a grid, keeping the lowest objective.

    Parameters
    ----------
    runs
        A run table with columns ``params``, ``tokens`` and ``loss``.
    delta
        The Huber threshold on log-loss residuals (1e-3 in both papers).
    grid
        Starts of the optimiser. None: :data:`HOFFMANN_GRID` (4500 starts, about a minute on
        two cores). A mapping of some of the keys ``e, a, b, alpha, beta`` to lists of values
        replaces those axes of Hoffmann's grid (a thinner grid is faster); an array of shape
        ``(n, 5)`` gives the starts ``(e, a, b, alpha, beta)`` explicitly.
    bootstrap
        Number of bootstrap replicates: each resamples the runs with replacement and refits
        from the best fit's parameters. 0 for none.
    random_seed
        Seed (or :class:`numpy.random.Generator`) of the bootstrap resampling.

    Returns
    -------
    HuberFit
        ``E, A, B, alpha, beta``, ``predict(points)``, ``optimal(budgets)`` and, with a
        bootstrap, ``bootstrap_draws`` and ``interval(prob)``.

    Raises
    ------
    TypeError
        If ``runs`` is not a DataFrame, a column is not numeric, or an option has the wrong type.
    ValueError
        If a column is missing or not positive, there are fewer than 5 runs, or ``delta``,
        ``grid`` or ``bootstrap`` hold bad values.
    RuntimeError
        If no start reaches a finite objective.

    Examples
    --------
    >>> import bayescale as bs
    >>> runs = bs.datasets.load("chinchilla")
    >>> runs = runs.drop(runs["loss"].nlargest(5).index)  # the 240 runs Epoch used
    >>> fit = huber_lbfgs(runs, grid={"e": [0.0, 1.0], "a": [0, 10], "b": [0, 10],
    ...                               "alpha": [0, 1], "beta": [0, 1]})  # 32 of Hoffmann's starts
    >>> round(fit.E, 2), round(fit.alpha, 2), round(fit.beta, 2)
    (1.82, 0.35, 0.37)
    >>> fit.optimal(5.88e23)["tokens_per_param"].round(1).tolist()
    [17.9]
    """
    data = _check_table(runs, ("params", "tokens", "loss"), why="huber_lbfgs")
    if len(runs) < len(_PARAMS):
        raise ValueError(f"huber_lbfgs needs at least {len(_PARAMS)} runs to fit 5 parameters, "
                         f"got {len(runs)}")
    delta = _check_delta(delta)
    starts = _grid_starts(grid)
    bootstrap = _check_count(bootstrap)
    rng = _check_seed(random_seed)
    logs = tuple(np.log(data[c]) for c in ("params", "tokens", "loss"))
    with _one_blas_thread():
        best = _fit_from(starts, logs, delta)
        draws = _bootstrap(best.x, logs, delta, bootstrap, rng) if bootstrap else None
    e, a, b, alpha, beta = (float(v) for v in best.x)
    k = float(runs.attrs.get("flops_per_param_token", 6.0))
    return HuberFit(float(np.exp(e)), float(np.exp(a)), float(np.exp(b)), alpha, beta,
                    float(best.fun), delta,
                    bool(best.success), str(best.message), len(runs), len(starts), k, draws)


def _one_blas_thread():
    """Single-threaded BLAS while L-BFGS-B runs.

    SciPy's L-BFGS-B calls BLAS on 5 x m matrices thousands of times; a multi-threaded OpenBLAS
    spin-waits on such tiny work, and when the cores are busy (two fits at once on two cores)
    the grid search ran about 40x slower.
    """
    if threadpool_limits is None:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _huber_objective(x: np.ndarray, log_n: np.ndarray, log_d: np.ndarray,
                     log_loss: np.ndarray, delta: float) -> tuple[float, np.ndarray]:
    """Sum of Huber losses of log-loss residuals and its gradient in ``(e, a, b, alpha, beta)``."""
    e, a, b, alpha, beta = x
    terms = np.stack([np.full_like(log_n, e), a - alpha * log_n, b - beta * log_d])
    peak = terms.max(axis=0)
    weights = np.exp(terms - peak)
    total = weights.sum(axis=0)
    resid = peak + np.log(total) - log_loss
    slope = np.clip(resid, -delta, delta) * weights / total   # d(loss)/d(term), per run
    grad = np.array([slope[0].sum(), slope[1].sum(), slope[2].sum(),
                     -slope[1] @ log_n, -slope[2] @ log_d])
    return float(huber(delta, resid).sum()), grad


def _fit_from(starts: np.ndarray, logs: tuple[np.ndarray, ...], delta: float):
    """Run L-BFGS-B from every start; the result with the lowest finite objective."""
    best = None
    for x0 in starts:
        result = minimize(_huber_objective, x0, args=(*logs, delta), jac=True, method="L-BFGS-B",
                          options=_LBFGS_OPTIONS)
        if np.isfinite(result.fun) and (best is None or result.fun < best.fun):
            best = result
    if best is None:
        raise RuntimeError("L-BFGS-B reached no finite objective from any start of the grid")
    return best


def _bootstrap(x0: np.ndarray, logs: tuple[np.ndarray, ...], delta: float, replicates: int,
               rng: np.random.Generator) -> pd.DataFrame:
    """Refit on ``replicates`` resamples of the runs, each from ``x0``."""
    n = logs[0].size
    rows = []
    for _ in range(replicates):
        pick = rng.integers(0, n, size=n)
        result = _fit_from(x0[None, :], tuple(v[pick] for v in logs), delta)
        e, a, b, alpha, beta = result.x
        rows.append((np.exp(e), np.exp(a), np.exp(b), alpha, beta))
    return pd.DataFrame(rows, columns=list(_PARAMS),
                        index=pd.RangeIndex(replicates, name="replicate"))


def _grid_starts(grid) -> np.ndarray:
    """Optimiser starts ``(e, a, b, alpha, beta)`` as an ``(n, 5)`` array."""
    if grid is None or isinstance(grid, Mapping):
        grid = {} if grid is None else grid
        unknown = [k for k in grid if k not in _GRID_KEYS]
        if unknown:
            raise ValueError(
                f"grid has unknown key(s) {unknown}; valid keys are {list(_GRID_KEYS)}")
        axes = [_grid_axis(grid.get(key, HOFFMANN_GRID[key]), key) for key in _GRID_KEYS]
        return np.array(list(itertools.product(*axes)), dtype=float)
    try:
        starts = np.asarray(grid, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"grid must be None, a mapping of axes or an (n, 5) array of starts, "
                        f"got {grid!r}") from None
    if starts.ndim != 2 or starts.shape[1] != 5 or not starts.size or not np.isfinite(starts).all():
        raise ValueError(f"grid as an array must have shape (n, 5) with n >= 1 finite rows "
                         f"(e, a, b, alpha, beta); got shape {starts.shape}")
    return starts


def _grid_axis(values, key: str) -> np.ndarray:
    axis = np.atleast_1d(np.asarray(values, dtype=object))
    if not all(isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
               for v in axis.ravel()):
        raise TypeError(f"grid[{key!r}] must hold numbers, got {values!r}")
    if axis.ndim != 1 or axis.size == 0 or not np.isfinite(axis.astype(float)).all():
        raise ValueError(
            f"grid[{key!r}] must be a non-empty list of finite numbers, got {values!r}")
    return axis.astype(float)


def _check_delta(delta) -> float:
    if isinstance(delta, bool) or not isinstance(delta, (int, float, np.number)):
        raise TypeError(f"delta must be a number, got {delta!r}")
    if not np.isfinite(delta) or delta <= 0:
        raise ValueError(f"delta must be a finite positive number, got {delta!r}")
    return float(delta)


def _check_count(bootstrap) -> int:
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, (int, np.integer)):
        raise TypeError(f"bootstrap must be an int (number of replicates), got {bootstrap!r}")
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0, got {bootstrap!r}")
    return int(bootstrap)


def _check_seed(random_seed) -> np.random.Generator:
    if random_seed is None or isinstance(random_seed, np.random.Generator):
        return np.random.default_rng(random_seed)
    if isinstance(random_seed, bool) or not isinstance(random_seed, (int, np.integer)):
        raise TypeError(
            f"random_seed must be None, an int or a numpy Generator, got {random_seed!r}")
    if random_seed < 0:
        raise ValueError(f"random_seed must be a non-negative int, got {random_seed!r}")
    return np.random.default_rng(int(random_seed))
