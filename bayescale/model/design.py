"""Which runs next: candidate runs ranked by what they teach about a target per FLOP.

:func:`design` scores candidate runs (rows of a table of configurations, each with its FLOPs)
by the expected reduction of the posterior variance of a target quantity (the log loss at the
compute-optimal allocation of a budget, log N*, log D*, the log optimum of a continuous
hyperparameter, or the log mean loss of a given configuration), and picks a batch within a FLOP
budget greedily, each pick conditioned on those before it.

The method: Bayes linear adjustment of the posterior draws (Goldstein & Wooff 2007), which is
the ensemble Kalman update of the draws. For a target t and the outcomes y of a batch (log
losses: the fit's log mean at each candidate plus its noise), the expected posterior variance
is bounded by the variance left by the best linear predictor of t from y::

    E_y[Var(t | y)] <= Var(t) - Cov(t, y) Var(y)^-1 Cov(y, t)

with every moment estimated from the draws (``Var(y) = Cov(mu) + noise``). The bound holds
whatever the shape of the posterior (the conditional mean is the best predictor of all, the
linear one the best of its kind), so the gain it reports is a lower bound on the expected
variance reduction of exact Bayesian updating with Gaussian noise. Student-t noise enters
through its Fisher-equivalent variance ``sigma^2 (nu + 3) / (nu + 1)``: an observation with
t_nu noise carries as much information about its location as a Normal one with that variance.

Why not preposterior importance reweighting of the draws (simulate outcomes, weight each draw
by their likelihood, average the weighted variance)? It is exact for a nonlinear posterior in
the limit of many draws, but a batch of runs whose noise (about 1% of the loss) is smaller than
the posterior's spread of their prediction leaves few draws with any weight: in the timing case
of ``benchmarks/design.py`` (1,000 draws from a fit of 24 simulated runs) the outcomes of the
10-run batch chosen leave a median effective sample size of 5 draws (1 in one outcome scenario
in ten), and the weighted variance of so few draws is biased low (it reads as a larger gain)
by an amount that differs from batch to batch. The linear adjustment has no weights to degenerate and costs, for S draws,
K candidates and Q targets, O(S K Q) for the covariances plus O(S K) per pick (one column of
candidate covariances), so a batch of 10 from 1,000 candidates takes well under a second;
importance reweighting with M outcome scenarios costs O(M S K) likelihood evaluations per pick.
The variances are the law's: the discrepancy past the runs (``docs/discrepancy.md``) is left
out (:func:`law_draws`), because the runs' outcomes do not update it; otherwise a run far outside
the sweep in any direction would seem to reveal the bend of the law at the target.
What the linear adjustment gives up is nonlinear dependence: a run whose outcome tells about
the target only through a nonlinear relation (t = theta^2 seen through y = theta + noise, with
theta centred on 0) shows no gain in the bound, though it is informative.

Greedy selection by gain per FLOP can be arbitrarily poor when one expensive run is worth more
than many cheap ones; as Krause & Guestrin (2005) suggest for budgeted submodular selection, the
greedy batch by gain per FLOP and the greedy batch by gain alone are both formed and the one
with the larger total gain kept.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bayescale.model.discrepancy import without_discrepancy
from bayescale.data.runs import check_positive_column, run_flops
from bayescale.model.points import check_budgets

__all__ = ["design", "candidate_grid", "default_candidates", "OPTIMUM_TARGETS",
           "DEFAULT_TARGETS", "MAX_GRID"]

#: Targets read from the compute-optimal allocation at the target budget ``at``.
OPTIMUM_TARGETS = ("loss_opt", "params_opt", "tokens_opt", "tokens_per_param")
#: What :func:`design` reduces when no target is given (for a law with an optimum).
DEFAULT_TARGETS = ("loss_opt", "params_opt")
#: Largest table :func:`candidate_grid` builds.
MAX_GRID = 200_000
_RELATIVE_FLOOR = 1e-12
_SAME_SIZE = 1e-3
#: :func:`default_candidates`: sizes per decade, budgets, the reach past N* and how far past
#: the runs' tokens per parameter (a factor each side) a candidate may go.
_SIZES_PER_DECADE, _DEFAULT_BUDGETS, _PAST_N_STAR, _RATIO_SLACK = 4, 5, 3.0, 2.0


def design(fit, candidates, *, budget: float, target: str | Sequence[str] | Mapping |
           pd.DataFrame | None = None, at: float | None = None, max_runs: int | None = None,
           random_seed: int | None = 0) -> pd.DataFrame:
    """The next runs to do: a batch of candidates within ``budget`` FLOPs, ranked greedily by
    the expected reduction of the target's posterior variance per FLOP.

    Parameters
    ----------
    fit
        A :class:`bayescale.Fit`.
    candidates
        A DataFrame (or dict of arrays) of possible runs: the inputs of the fit's law (two of
        ``params``, ``tokens``, ``flops``; the third is derived) and every hyperparameter column
        of the fit (``offsets`` and ``continuous``). A run's cost is its ``flops``.
        :func:`candidate_grid` builds one from the sweep's own grid at new budgets.
    budget
        FLOPs to spend on the batch (the sum of the chosen runs' ``flops``).
    target
        What to learn about: one or a list of ``"loss_opt"``, ``"params_opt"``, ``"tokens_opt"``,
        ``"tokens_per_param"`` (at the compute-optimal allocation of ``at``), the name of a
        continuous hyperparameter (its loss-optimal value at ``at``), or a one-row DataFrame /
        dict of a configuration (its mean loss). Each is taken on the log scale; several targets
        count equally (the gain is the sum of the fractions of their variances removed).
        Default ``("loss_opt", "params_opt")``.
    at
        The target compute budget (FLOPs) of optimum and hyperparameter targets.
    max_runs
        At most this many runs in the batch (default: as many as the budget allows).
    random_seed
        Seed of the fresh offsets of levels the fit has not seen.

    Returns
    -------
    pandas.DataFrame
        One row per chosen run, in the order picked: the candidate's columns (its index kept),
        ``gain`` (the fraction of the targets' posterior variance it is expected to remove,
        given the runs above it; summed over targets), ``gain_per_flop`` (per 1e18 FLOPs),
        ``total_flops`` (the running cost) and ``sd_<target>`` (the expected posterior sd of
        each log target after the runs so far). ``attrs`` holds ``sd_before``, ``sd_after``,
        ``target``, ``at``, ``budget``, ``method`` and ``candidates``.

    Raises
    ------
    TypeError
        For candidates that are not a table, or a budget, target or ``at`` of the wrong type.
    ValueError
        For no candidates, candidates lacking a column the fit needs, a budget that is not a
        finite positive number or is smaller than the cheapest candidate, an unknown target, or
        a target that needs ``at`` without it.

    Examples
    --------
    >>> import bayescale as bs
    >>> fit = bs.load("results/cs336/posterior.nc")                     # doctest: +SKIP
    >>> grid = bs.candidate_grid(fit, budgets=[3e17, 1e18])             # doctest: +SKIP
    >>> bs.design(fit, grid, budget=2e18, at=1e19)                      # doctest: +SKIP
    """
    table = _check_candidates(fit, candidates)
    cost = table["flops"].to_numpy(float)
    budget = _check_budget(budget, cost)
    max_runs = _check_max_runs(max_runs)
    rng = np.random.default_rng(random_seed)
    post = law_draws(fit)
    targets = _targets(fit, post, target, at, rng)
    means = fit.model.log_mean_draws(post, table, rng)
    noise = _noise_variance(fit)
    state = _LinearState(_flat(means), np.column_stack(list(targets.values())), noise)
    picks = _best_batch(state, cost, budget, max_runs)
    return _result(table, cost, picks, targets, state,
                   {"budget": budget, "at": at, "candidates": len(table)})


def candidate_grid(fit, budgets, *, configurations: str = "product") -> pd.DataFrame:
    """Candidate runs at new budgets from the sweep's own model sizes and hyperparameters.

    Parameters
    ----------
    fit
        A :class:`bayescale.Fit` (its runs give the sizes and levels).
    budgets
        Compute budgets (FLOPs) of the candidates; tokens are ``C / (k N)``.
    configurations
        ``"product"``: every combination of the runs' distinct ``params`` and distinct values of
        each hyperparameter column; ``"sweep"``: the combinations the runs hold. Sizes within
        0.1% of a smaller one count as that size.

    Returns
    -------
    pandas.DataFrame
        ``params``, ``tokens``, ``flops`` and the fit's hyperparameter columns.
    """
    budgets = check_budgets(budgets)
    if configurations not in ("product", "sweep"):
        raise ValueError(f"configurations must be 'product' or 'sweep', got {configurations!r}")
    runs = fit.runs
    columns = ["params", *_hyperparameter_columns(fit)]
    if "params" not in runs.columns:
        raise ValueError("candidate_grid needs runs with a params column (model sizes)")
    if configurations == "sweep":
        configs = runs[columns].assign(params=_sizes(runs["params"], runs["params"]))
        configs = configs.drop_duplicates().reset_index(drop=True)
    else:
        levels = [_sizes(runs["params"]), *(np.unique(runs[c].to_numpy()) for c in columns[1:])]
        size = int(np.prod([len(v) for v in levels])) * budgets.size
        if size > MAX_GRID:
            raise ValueError(f"the product grid would hold {size} candidates (more than "
                             f"{MAX_GRID}); use configurations='sweep' or fewer budgets")
        configs = pd.DataFrame(list(itertools.product(*levels)), columns=columns)
    k = fit.model.flops_per_param_token
    out = pd.concat([configs.assign(flops=float(c)) for c in budgets], ignore_index=True)
    out.insert(1, "tokens", out["flops"] / (k * out["params"]))
    return out


def default_candidates(fit, *, budget: float, at: float | None = None,
                       budgets=None) -> pd.DataFrame:
    """Candidate runs that reach the sizes and budgets the target needs.

    Model sizes run from the sweep's smallest to :data:`_PAST_N_STAR` (3) times the median N*
    at ``at`` (4 per decade, with the sweep's own sizes; without ``at`` or an optimum, to the
    sweep's largest size scaled by the square root of ``budget`` over its largest compute),
    at ``budgets`` (default: 5 log-spaced from the sweep's largest compute to ``budget``, the
    most one run of the batch may cost), with tokens ``C / (k N)``. Candidates whose tokens
    per parameter lie more than a factor 2 outside the runs' range are left out (a 10M model
    on 1.6T tokens teaches about nothing the target needs). Offset columns take each of their
    levels; continuous hyperparameters their median optimum at the candidate's budget.

    Returns
    -------
    pandas.DataFrame
        ``params``, ``tokens``, ``flops`` and the fit's hyperparameter columns.
    """
    runs = fit.runs
    if "params" not in runs.columns or "tokens" not in runs.columns:
        raise ValueError("default candidates need runs with params and tokens columns; give "
                         "candidates (a table or a CSV) instead")
    (budget,) = check_budgets(budget, argument="budget")
    flops = run_flops(runs)
    if budgets is None:
        low = flops.max() if flops.max() < budget else flops.min()
        budgets = np.geomspace(low, budget, _DEFAULT_BUDGETS)
    budgets = check_budgets(budgets)
    sizes = _default_sizes(fit, runs, float(flops.max()), budget, at)
    k = fit.model.flops_per_param_token
    table = pd.DataFrame([(n, c / (k * n), c) for c in budgets for n in sizes],
                         columns=["params", "tokens", "flops"])
    ratio = runs["tokens"].to_numpy(float) / runs["params"].to_numpy(float)
    keep = (table["tokens"] / table["params"]).between(ratio.min() / _RATIO_SLACK,
                                                        ratio.max() * _RATIO_SLACK)
    return _with_hyperparameters(fit, table[keep].reset_index(drop=True))


def _default_sizes(fit, runs, top_flops: float, budget: float, at) -> np.ndarray:
    own = _sizes(runs["params"])
    if at is not None and fit.model.has_optimum:
        reach = float(np.median(fit.model.optimal(law_draws(fit), check_budgets(at, argument="at"),
                                                  np.random.default_rng(0))["params_opt"]))
        reach *= _PAST_N_STAR
    else:
        reach = own.max() * np.sqrt(max(budget / top_flops, 1.0))
    reach = max(reach, own.max())
    decades = np.log10(reach / own.min())
    grid = np.geomspace(own.min(), reach, int(np.ceil(decades * _SIZES_PER_DECADE)) + 1)
    return np.unique(np.concatenate([own, grid]))


def _with_hyperparameters(fit, table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with each offset column at every level and continuous columns at their median
    optimum at each row's budget."""
    for col in fit.hyperparameter_offsets:
        levels = np.unique(fit.runs[col].to_numpy())
        table = pd.concat([table.assign(**{col: level}) for level in levels], ignore_index=True)
    continuous = fit.continuous
    if continuous:
        budgets = np.unique(table["flops"].to_numpy())
        optimum = fit.optimal_hyperparameters(budgets).median(("chain", "draw"))
        at = np.searchsorted(budgets, table["flops"].to_numpy())
        for col in continuous:
            table[col] = optimum[col].to_numpy()[at]
    return table


def _sizes(params: pd.Series, values: pd.Series | None = None) -> np.ndarray:
    """The distinct model sizes, those within 0.1% of a smaller one taken as it (the sizes of
    digitised or computed run tables differ in their last digits); with ``values``, each value
    mapped to its size."""
    unique = np.unique(params.to_numpy(float))
    keep = unique[np.concatenate([[True], unique[1:] / unique[:-1] > 1 + _SAME_SIZE])]
    if values is None:
        return keep
    at = np.searchsorted(keep, values.to_numpy(float) * (1 + _SAME_SIZE), side="right") - 1
    return keep[at]


# -- the linear adjustment -------------------------------------------------------------------
class _LinearState:
    """Moments of the candidates' log means and the targets over the draws, adjusted by the
    runs picked so far (sequential rank-one Bayes linear updates)."""

    def __init__(self, means: np.ndarray, targets: np.ndarray, noise: float) -> None:
        n = means.shape[0] - 1
        self.anomalies = means - means.mean(axis=0)
        centred = targets - targets.mean(axis=0)
        self.n, self.noise = n, noise
        self.var_targets0 = centred.var(axis=0, ddof=1)
        if np.any(self.var_targets0 <= 0):
            raise ValueError("a target does not vary over the posterior draws; nothing to learn")
        self.reset(centred)

    def reset(self, centred: np.ndarray | None = None) -> None:
        if centred is not None:
            self._cov0 = self.anomalies.T @ centred / self.n
        self.cov = self._cov0.copy()                        # Cov(mu_k, t_q)   (K, Q)
        self.var = self.anomalies.var(axis=0, ddof=1)       # Var(mu_k)        (K,)
        self.var_targets = self.var_targets0.copy()         # Var(t_q)         (Q,)
        self.directions: list[np.ndarray] = []

    def gains(self) -> np.ndarray:
        """Fraction of the targets' variance each candidate would remove now (summed)."""
        denom = np.maximum(self.var, 0.0) + self.noise
        return ((self.cov ** 2 / denom[:, None]) / self.var_targets0).sum(axis=1)

    def pick(self, j: int) -> None:
        column = self.anomalies.T @ self.anomalies[:, j] / self.n
        for h in self.directions:
            column = column - h * h[j]
        scale = np.sqrt(max(self.var[j], 0.0) + self.noise)
        h, ht = column / scale, self.cov[j] / scale
        self.cov -= np.outer(h, ht)
        self.var -= h ** 2
        self.var_targets = np.maximum(self.var_targets - ht ** 2, 0.0)
        self.directions.append(h)


def _greedy(state: _LinearState, cost: np.ndarray, budget: float, max_runs: int,
            per_flop: bool) -> list[tuple[int, float, np.ndarray]]:
    state.reset()
    left, picks = budget, []
    free = np.ones(cost.size, bool)
    while len(picks) < max_runs:
        able = free & (cost <= left * (1 + 1e-12))
        if not able.any():
            break
        gains = state.gains()
        score = np.where(able, gains / cost if per_flop else gains, -np.inf)
        j = int(np.argmax(score))
        if gains[j] <= _RELATIVE_FLOOR:
            break
        state.pick(j)
        free[j], left = False, left - cost[j]
        picks.append((j, float(gains[j]), state.var_targets.copy()))
    return picks


def _best_batch(state, cost, budget, max_runs):
    """The greedy batch by gain per FLOP or by gain, whichever removes more variance."""
    batches = [_greedy(state, cost, budget, max_runs, per_flop) for per_flop in (True, False)]
    return max(batches, key=lambda b: sum(g for _, g, _ in b))


# -- inputs ----------------------------------------------------------------------------------
def _hyperparameter_columns(fit) -> list[str]:
    return [*fit.hyperparameter_offsets, *(fit.continuous)]


def _check_candidates(fit, candidates) -> pd.DataFrame:
    if isinstance(candidates, Mapping):
        candidates = pd.DataFrame({k: np.atleast_1d(v) for k, v in candidates.items()})
    if not isinstance(candidates, pd.DataFrame):
        raise TypeError(f"candidates must be a DataFrame or a dict of arrays, got "
                        f"{type(candidates).__name__}")
    if len(candidates) == 0:
        raise ValueError("candidates is empty: give at least one candidate run")
    missing = [c for c in _hyperparameter_columns(fit) if c not in candidates.columns]
    if missing:
        raise ValueError(f"candidates lack column(s) {missing}, which the fit's hyperparameter "
                         f"terms need; they have {list(candidates.columns)}")
    try:
        table = fit.model.points(candidates)
    except ValueError as err:
        raise ValueError(f"candidates: {err}") from None
    if "flops" not in table.columns:
        raise ValueError(f"candidates need FLOPs (a flops column, or params and tokens) to cost "
                         f"each run; they have {list(candidates.columns)}")
    for col in fit.continuous:
        check_positive_column(table, col, argument="candidates")
    table.index = candidates.index
    return table


def _check_budget(budget, cost: np.ndarray) -> float:
    if isinstance(budget, (bool, np.bool_)) or not isinstance(budget, (int, float, np.number)):
        raise TypeError(f"budget must be a number of FLOPs, got {budget!r}")
    budget = float(check_budgets(budget, argument="budget")[0])
    if budget < cost.min():
        raise ValueError(f"budget={budget:.3g} FLOPs is smaller than the cheapest candidate "
                         f"({cost.min():.3g} FLOPs): no run fits")
    return budget


def _check_max_runs(max_runs) -> int:
    if max_runs is None:
        return np.iinfo(np.int64).max
    if isinstance(max_runs, bool) or not isinstance(max_runs, (int, np.integer)) or max_runs < 1:
        raise ValueError(f"max_runs must be a positive integer or None, got {max_runs!r}")
    return int(max_runs)


def law_draws(fit):
    """The fit's posterior without the discrepancy past the runs (its scale and direction are
    drawn from what backtests and other sweeps say, not from these runs' outcomes, so no new
    run can reduce them: the design ranks runs by what they tell of the law)."""
    return without_discrepancy(fit.posterior)


def _targets(fit, post, target, at, rng) -> dict[str, np.ndarray]:
    """Each target's log value per draw of ``post``, flattened over (chain, draw)."""
    if isinstance(target, (pd.DataFrame, Mapping)):
        table = fit.model.points(target)
        if len(table) != 1:
            raise ValueError(f"a configuration target must be one row, got {len(table)}")
        return {"loss": _flat(fit.model.log_mean_draws(post, table, rng))[:, 0]}
    names = _target_names(fit, target)
    if at is None:
        raise ValueError(f"target {list(names)} needs the target budget: give at=<FLOPs>")
    if isinstance(at, (bool, np.bool_)) or not isinstance(at, (int, float, np.number)):
        raise TypeError(f"at must be a number of FLOPs, got {at!r}")
    budgets = check_budgets(at, argument="at")
    out = {}
    optimum = [n for n in names if n in OPTIMUM_TARGETS]
    if optimum:
        values = fit.model.optimal(post, budgets, rng)
        out |= {n: np.log(_flat(values[n])[:, 0]) for n in optimum}
    for name in (n for n in names if n not in OPTIMUM_TARGETS):
        out[name] = _flat(fit.model.log_optimum(post, name, np.log(budgets)))[:, 0]
    return {n: out[n] for n in names}


def _target_names(fit, target) -> tuple[str, ...]:
    has_optimum = fit.model.has_optimum
    if target is None:
        if not has_optimum:
            raise ValueError(f"this fit has no compute-optimal allocation ({fit.describe()}); "
                             "give target= a continuous hyperparameter or a configuration")
        return DEFAULT_TARGETS
    names = (target,) if isinstance(target, str) else target
    if not isinstance(names, Sequence) or not names or not all(isinstance(n, str) for n in names):
        raise TypeError(f"target must be a name, a list of names or a configuration, got "
                        f"{target!r}")
    allowed = [*(OPTIMUM_TARGETS if has_optimum else ()), *(fit.continuous)]
    for name in names:
        if name not in allowed:
            raise ValueError(f"unknown target {name!r}; this fit answers {allowed} (or give a "
                             "configuration as a one-row DataFrame)")
    if len(set(names)) != len(names):
        raise ValueError(f"target lists a name twice: {list(names)}")
    return tuple(names)


def _noise_variance(fit) -> float:
    """The mean over draws of a run's noise variance (Fisher-equivalent for Student-t)."""
    return float(np.mean(fit.model.noise_model(fit.posterior).variance()))


def _flat(values: np.ndarray) -> np.ndarray:
    """(chain, draw, ...) -> (chain * draw, ...)."""
    return values.reshape(-1, *values.shape[2:])


def _result(table, cost, picks, targets, state, info) -> pd.DataFrame:
    rows = [j for j, _, _ in picks]
    out = table.iloc[rows].copy()
    gains = np.array([g for _, g, _ in picks])
    out["gain"] = gains
    out["gain_per_flop"] = gains / cost[rows] * 1e18
    out["total_flops"] = np.cumsum(cost[rows])
    for q, name in enumerate(targets):
        out[f"sd_{name}"] = [float(np.sqrt(v[q])) for _, _, v in picks]
    sd0 = np.sqrt(state.var_targets0)
    after = np.sqrt(picks[-1][2]) if picks else sd0
    out.attrs.update(info | {
        "target": list(targets), "method": "bayes_linear", "draws": state.n + 1,
        "sd_before": dict(zip(targets, sd0.tolist())),
        "sd_after": dict(zip(targets, np.asarray(after).tolist()))})
    return out
