"""Comparing fitted scaling laws: PSIS-LOO (interpolation) and leave-future-out (extrapolation).

``method="loo"`` asks how well each law predicts a run left out from *among* the others,
estimated from the fitted posterior by Pareto-smoothed importance sampling (ArviZ).
``method="lfo"`` asks the question scaling laws are for: refit each law on the runs below a
compute threshold and score its predictions for the larger runs it never saw.
``method="backtest"`` asks the same without refitting: it scores the backtests each fit
already ran to learn its discrepancy (``discrepancy="backtest"``: refits below two cuts, the
runs above each scored with the law taken as exact).

Every refit goes through one worker, :func:`refit` (and :func:`fit_many` for several), which
accepts any :class:`concurrent.futures.Executor` so that refits can run in parallel.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor

import numpy as np
import pandas as pd
from scipy import special
from scipy.special import logsumexp

from bayescale.data import lazy
from bayescale.data.runs import plain, run_flops
from bayescale.data.warn import warn
from bayescale.inference.diagnostics import ParetoKWarning
from bayescale.inference.progress import phase
from bayescale.model.fit import Fit, family_of
from bayescale.model.family import Family
from bayescale.model.noise import Noise

azs = lazy.module("arviz_stats")
optimize = lazy.module("scipy.optimize")

__all__ = ["compare", "refit", "fit_many", "stacking_weights", "ParetoKWarning", "METHODS", "LOO_COLUMNS",
           "LFO_COLUMNS", "BACKTEST_COLUMNS", "PARETO_K_MAX", "DEFAULT_HOLDOUT"]

METHODS = ("loo", "lfo", "backtest")
#: Pareto k above which a run's PSIS-LOO estimate is unreliable (Vehtari et al. 2024).
PARETO_K_MAX = 0.7
#: The default ``holdout`` of leave-future-out: the top quarter of distinct budgets.
DEFAULT_HOLDOUT = 0.25
#: Columns of the ``method="loo"`` table.
LOO_COLUMNS = ("rank", "elpd", "se", "elpd_diff", "dse", "weight", "p_loo", "pareto_k_max",
               "n_pareto_k_high")
#: Columns of the ``method="lfo"`` table (the coverage columns follow ``prob``).
LFO_COLUMNS = ("rank", "elpd", "se", "elpd_diff", "dse", "weight", "elpd_mean", "rel_error",
               "coverage_50", "coverage_90", "n_train", "n_holdout")
#: Columns of the ``method="backtest"`` table.
BACKTEST_COLUMNS = ("rank", "elpd", "se", "elpd_diff", "dse", "weight", "elpd_mean",
                    "rel_error", "n_holdout")


def compare(fits: Mapping[str, Fit], *, method: str = "loo", holdout: float | None = None,
            executor: Executor | None = None, prob: Sequence[float] = (0.5, 0.9),
            **fit_kwargs) -> pd.DataFrame:
    """Rank fitted scaling laws by expected log predictive density (elpd).

    Parameters
    ----------
    fits
        Fits to compare, by name, all fitted to the same observed runs.
    method
        ``"loo"``: PSIS leave-one-out from each fit's posterior (no refitting; measures
        interpolation). ``"lfo"``: leave-future-out; each law is refitted on the runs below a
        compute threshold and scored on the runs at or above it (measures extrapolation to
        larger budgets).
    holdout
        ``method="lfo"`` only. A number in (0, 1) is the fraction of the largest distinct
        compute budgets to hold out (rounded up to whole budgets; default 0.25); a number
        >= 1 is a threshold in FLOPs: runs with ``flops >= holdout`` are held out.
    executor
        ``method="lfo"`` only. A :class:`concurrent.futures.Executor` that runs the refits
        (e.g. ``ThreadPoolExecutor(2)``); ``None`` refits one after the other.
    prob
        ``method="lfo"`` only. Masses of the central predictive intervals whose coverage of
        the held-out losses is reported (columns ``coverage_50``, ``coverage_90``, ...).
    **fit_kwargs
        ``method="lfo"`` only. Sampler arguments of the refits (``draws``, ``tune``,
        ``chains``, ``random_seed``, ``sampler``, ``target_accept``, ``progressbar``). Each
        refit defaults to its original fit's draws, tune, chains, sampler, target_accept and
        seed (as recorded in its posterior attrs), with no progress bar. The seed also drives the predictive draws of held-out runs at unseen offset levels and
        of new-run noise.

    Returns
    -------
    pandas.DataFrame
        One row per fit, indexed by name, best first (``rank`` 0). Both tables hold ``elpd``
        (the summed log predictive density of the observed log losses; higher is better),
        its standard error ``se``, ``elpd_diff`` (best elpd minus this one) and ``dse`` (the
        standard error of that difference, from the paired pointwise values).

        ``"loo"`` adds ``weight`` (stacking weights), ``p_loo`` (effective number of
        parameters), ``pareto_k_max`` and ``n_pareto_k_high`` (runs with k > 0.7).
        ``"lfo"`` adds ``weight`` (stacking weights on the held-out runs'
        pointwise predictive densities), ``elpd_mean`` (per held-out run), ``rel_error`` (mean of
        ``|median new-run prediction - loss| / loss``), ``coverage_<100 p>`` (share of
        held-out losses inside the central ``p`` predictive interval of a new run),
        ``n_train`` and ``n_holdout``; ``attrs`` records the threshold and the held-out runs.

    Raises
    ------
    TypeError
        If ``fits`` is not a dict of name -> :class:`bayescale.Fit`, or ``holdout`` or
        ``executor`` has the wrong type.
    ValueError
        For an unknown ``method``, an empty ``fits``, fits on different runs, options given
        to ``method="loo"`` that only ``"lfo"`` uses, or a ``holdout`` that holds out no run
        or leaves fewer than 2 budgets to train on.

    Warns
    -----
    ParetoKWarning
        ``method="loo"``: for each fit with runs whose Pareto k exceeds 0.7, naming them.

    Examples
    --------
    >>> import bayescale as bs  # doctest: +SKIP
    >>> runs = bs.datasets.load("chinchilla")  # doctest: +SKIP
    >>> fits = {law: bs.ScalingLaw(runs, law=law).fit(random_seed=0)
    ...         for law in ("chinchilla", "flops")}  # doctest: +SKIP
    >>> bs.compare(fits, method="loo")  # doctest: +SKIP
    >>> bs.compare(fits, method="lfo", holdout=1e21)  # doctest: +SKIP
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    _check_fits(fits)
    if method in ("loo", "backtest"):
        given = {"holdout": holdout, "executor": executor} | fit_kwargs
        extra = sorted(k for k, v in given.items() if v is not None)
        if extra or _check_prob(prob) != (0.5, 0.9):
            raise ValueError(f"method={method!r} does not refit; {extra or ['prob']} apply "
                             "only to method='lfo'")
        return _compare_loo(fits) if method == "loo" else _compare_backtest(fits)
    return _compare_lfo(fits, holdout=holdout, executor=executor, prob=_check_prob(prob),
                        fit_kwargs=fit_kwargs)


# -- refitting -------------------------------------------------------------------------------
def refit(spec_or_fit: Fit | Mapping, runs: pd.DataFrame, *, executor: Executor | None = None,
          **fit_kwargs) -> Fit:
    """Rebuild a model of any family from a fit's spec on new runs and fit it again.

    The family and its options (law, offsets, noise, the user's priors) come from
    ``spec_or_fit`` (a :class:`bayescale.Fit` or its ``.spec``); the data-scaled parts (default
    priors, references, levels, budgets) are recomputed from ``runs``, as the family's
    constructor would.

    Parameters
    ----------
    spec_or_fit
        A fit, or a spec dict (``fit.spec``: ``model`` (the family), its options such as
        ``law``, ``noise``, ``offsets``, ``user_priors``, and ``flops_per_param_token``).
    runs
        The run table to fit (see :func:`bayescale.prepare`).
    executor
        Run the fit in this executor (e.g. a ``ProcessPoolExecutor``, to isolate it) and wait
        for it; ``None`` fits here. To run several fits at once use :func:`fit_many`.
    **fit_kwargs
        Passed to :meth:`bayescale.ScalingLaw.fit`. Given a Fit, ``draws``, ``chains``,
        ``sampler`` and ``random_seed`` default to the fit's; ``progressbar`` to False.

    Returns
    -------
    bayescale.Fit

    Raises
    ------
    TypeError, ValueError
        If ``spec_or_fit`` is neither a Fit nor a spec, or the model cannot be built on ``runs``
        (the error of :class:`bayescale.ScalingLaw`).
    """
    return fit_many({"refit": (spec_or_fit, runs)}, executor=executor, **fit_kwargs)["refit"]


def fit_many(models: Mapping[str, ScalingLaw | tuple], executor: Executor | None = None,
             **fit_kwargs) -> dict[str, Fit]:
    """Fit several models, one after the other or concurrently in ``executor``.

    Parameters
    ----------
    models
        By name: a :class:`bayescale.ScalingLaw`, or a pair ``(spec_or_fit, runs)`` as taken
        by :func:`refit`. Each is rebuilt from its spec inside the worker, so that it can
        travel to another process.
    executor
        Any :class:`concurrent.futures.Executor`; every fit is submitted before the first is
        awaited. ``None`` fits serially here. A ``ProcessPoolExecutor`` should use the
        ``"spawn"`` start method (samplers run threads, which ``fork`` does not copy safely);
        sampler warnings raised in other processes are printed there, not re-raised here.
    **fit_kwargs
        Passed to every :meth:`bayescale.ScalingLaw.fit` (defaults as in :func:`refit`).

    Returns
    -------
    dict of str to bayescale.Fit
        In the order of ``models``. With the same seeds, the draws equal those of a serial run.

    Raises
    ------
    TypeError
        If ``models`` is not a dict of models, or ``executor`` is not an Executor.
    """
    if not isinstance(models, Mapping):
        raise TypeError(f"models must be a dict of name -> ScalingLaw or (spec_or_fit, runs), "
                        f"got {type(models).__name__}")
    jobs = {name: _job(name, model, fit_kwargs) for name, model in models.items()}
    return _run_jobs(jobs, executor)


def _job(name: str, model: object, fit_kwargs: Mapping) -> tuple[dict, pd.DataFrame, dict]:
    """The picklable arguments of :func:`_fit_job` for one model."""
    if isinstance(model, Family):
        return model.spec, model.runs, {"progressbar": False} | dict(fit_kwargs)
    if not (isinstance(model, tuple) and len(model) == 2):
        raise TypeError(f"models[{name!r}] must be a model (ScalingLaw, IsoFlop, ...) or a pair "
                        f"(spec_or_fit, runs), got {type(model).__name__}")
    source, runs = model
    if isinstance(source, Fit):
        return source.spec, runs, _fit_defaults(source) | dict(fit_kwargs)
    if isinstance(source, Mapping) and ("law" in source or "model" in source):
        family_of(source)  # a known family, else a ValueError naming them
        return dict(source), runs, {"progressbar": False} | dict(fit_kwargs)
    raise TypeError(f"models[{name!r}]: spec_or_fit must be a bayescale.Fit or its .spec dict, "
                    f"got {type(source).__name__}")


def _fit_defaults(fit: Fit) -> dict:
    post = fit.posterior
    out = {"draws": int(post.sizes["draw"]), "chains": int(post.sizes["chain"]),
           "progressbar": False}
    if "sampler" in post.attrs:
        out["sampler"] = str(post.attrs["sampler"])
    if "random_seed" in post.attrs:
        out["random_seed"] = int(post.attrs["random_seed"])
    if "tune" in post.attrs:
        out["tune"] = int(post.attrs["tune"])
    if "target_accept" in post.attrs:
        out["target_accept"] = float(post.attrs["target_accept"])
    return out


def _run_jobs(jobs: Mapping[str, tuple], executor: Executor | None) -> dict[str, Fit]:
    """Run :func:`_fit_job` for every job, serially or through ``executor``."""
    if executor is None:
        out = {}
        for k, (name, job) in enumerate(jobs.items(), 1):
            with phase(f"refit {k} of {len(jobs)}: {name!r} on {len(job[1])} runs"):
                out[name] = _named(name, _fit_job, *job)
        return out
    if not isinstance(executor, Executor):
        raise TypeError(f"executor must be a concurrent.futures.Executor or None, "
                        f"got {type(executor).__name__}")
    with phase(f"refits 1-{len(jobs)} of {len(jobs)}, through {type(executor).__name__}"):
        futures = {name: executor.submit(_fit_job, *job) for name, job in jobs.items()}
        return {name: _named(name, future.result) for name, future in futures.items()}


def _named(name: str, call, *args):
    try:
        return call(*args)
    except Exception as err:
        err.add_note(f"(while fitting {name!r})")
        raise


def _fit_job(spec: Mapping, runs: pd.DataFrame, fit_kwargs: Mapping) -> Fit:
    """The one place where models are rebuilt from a spec and fitted (top level: picklable)."""
    return family_of(spec).from_spec(spec, runs).fit(**fit_kwargs)


# -- validation ------------------------------------------------------------------------------
def _check_fits(fits: object) -> None:
    if not isinstance(fits, Mapping):
        raise TypeError(f"fits must be a dict of name -> bayescale.Fit, got {type(fits).__name__}")
    if not fits:
        raise ValueError("fits is empty; give at least one name -> bayescale.Fit")
    for name, fit in fits.items():
        if not isinstance(name, str):
            raise TypeError(f"fits keys must be names (str), got {name!r}")
        if not isinstance(fit, Fit):
            raise TypeError(f"fits[{name!r}] must be a bayescale.Fit, got {type(fit).__name__}")
    names = list(fits)
    first = fits[names[0]].idata.observed_data["log_loss"]
    for name in names[1:]:
        other = fits[name].idata.observed_data["log_loss"]
        same = (first.sizes["run"] == other.sizes["run"]
                and np.array_equal(first["run"].values, other["run"].values)
                and np.allclose(first.values, other.values, rtol=1e-12, atol=0))
        if not same:
            raise ValueError(
                f"fits {names[0]!r} ({first.sizes['run']} runs) and {name!r} "
                f"({other.sizes['run']} runs) were fitted to different runs (run labels or "
                "losses differ); compare needs every fit on the same observed runs")


def _check_prob(prob: object) -> tuple[float, ...]:
    values = (prob,) if isinstance(prob, (int, float)) else prob
    if not isinstance(values, Sequence) or not values:
        raise TypeError(f"prob must be a number or a sequence of numbers in (0, 1), got {prob!r}")
    for p in values:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p < 1:
            raise ValueError(f"prob must hold numbers strictly between 0 and 1, got {p!r}")
    return tuple(float(p) for p in values)


def _holdout_threshold(flops: np.ndarray, holdout: object) -> float:
    """The FLOPs threshold at and above which runs are held out."""
    if holdout is None:
        holdout = DEFAULT_HOLDOUT
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float, np.number)):
        raise TypeError(f"holdout must be a fraction in (0, 1) or a threshold in FLOPs, "
                        f"got {holdout!r}")
    holdout = float(holdout)
    if not math.isfinite(holdout) or holdout <= 0:
        raise ValueError(f"holdout must be a fraction in (0, 1) or a positive threshold in "
                         f"FLOPs, got {holdout!r}")
    budgets = np.unique(flops)
    if holdout < 1:
        n_out = math.ceil(holdout * budgets.size)
        threshold = float(budgets[-n_out])
    else:
        threshold = holdout
    n_train = int((budgets < threshold).sum())
    if not (flops >= threshold).any():
        raise ValueError(f"holdout={holdout!r} holds out no run: the largest budget is "
                         f"{budgets[-1]:.4g} FLOPs")
    if n_train < 2:
        raise ValueError(f"holdout={holdout!r} leaves {n_train} budget(s) below {threshold:.4g} "
                         f"FLOPs to train on; at least 2 are needed (the runs span "
                         f"{budgets.size} budgets; a fraction must be < 1)")
    return threshold


# -- LOO -------------------------------------------------------------------------------------
def _compare_loo(fits: Mapping[str, Fit]) -> pd.DataFrame:
    with warnings.catch_warnings():
        # our own ParetoKWarning below names the runs; ArviZ's generic one would not
        warnings.filterwarnings("ignore", message=re.escape("Estimated shape parameter of Pareto"))
        warnings.filterwarnings("ignore", message=".*pareto_k.*", category=UserWarning)
        loos = {name: azs.loo(fit.idata, pointwise=True, var_name="log_loss")
                for name, fit in fits.items()}
        table = azs.compare(loos, method="stacking", round_to="none")
    for name, loo in loos.items():
        _warn_pareto(name, loo.pareto_k, fits[name].runs)
    table["elpd_diff"] = table["elpd"].max() - table["elpd"]  # arviz-stats: this one minus best
    table["p_loo"] = [float(loos[n].p) for n in table.index]
    table["pareto_k_max"] = [float(loos[n].pareto_k.max()) for n in table.index]
    table["n_pareto_k_high"] = [int((loos[n].pareto_k > PARETO_K_MAX).sum()) for n in table.index]
    table = table[list(LOO_COLUMNS)].astype({"rank": int, "n_pareto_k_high": int})
    table.index.name = "fit"
    n_runs = int(next(iter(loos.values())).n_data_points)
    table.attrs.update(method="loo", scale="log", n_runs=n_runs)
    return table


def _warn_pareto(name: str, pareto_k, runs: pd.DataFrame) -> None:
    high = pareto_k.values > PARETO_K_MAX
    if high.any():
        rows = np.flatnonzero(high)
        named = "; ".join(f"{_describe_run(runs, i)} (k={pareto_k.values[i]:.2f})" for i in rows)
        warn(f"fit {name!r}: PSIS-LOO is unreliable for {rows.size} run(s) with Pareto k > "
             f"{PARETO_K_MAX}: {named}. Their elpd may be overestimated; refit without them "
             "(exact LOO) or use more draws", ParetoKWarning)


def _describe_run(runs: pd.DataFrame, i: int) -> str:
    """Run ``i`` of ``runs`` as a reader finds it: its label (the row of the run table where
    the labels are integers), then its size, tokens, compute and loss."""
    label = plain(runs.index[i])
    named = f"row {label}" if isinstance(label, int) else f"run {label!r}"
    row = runs.iloc[i]
    parts = [f"{key}={row[col]:.3g}" for col, key in
             (("params", "N"), ("tokens", "D"), ("flops", "C")) if col in runs.columns]
    return f"{named} ({', '.join(parts + [f'loss {row["loss"]:.4g}'])})"


# -- LFO -------------------------------------------------------------------------------------
def _compare_lfo(fits: Mapping[str, Fit], *, holdout, executor, prob, fit_kwargs) -> pd.DataFrame:
    runs = _with_flops(next(iter(fits.values())))
    threshold = _holdout_threshold(runs["flops"].to_numpy(), holdout)
    held = runs["flops"].to_numpy() >= threshold
    train, test = runs[~held], runs[held]
    jobs = {name: (fit.spec, train, _fit_defaults(fit) | fit_kwargs) for name, fit in fits.items()}
    refits = _run_jobs(jobs, executor)
    y = np.log(test["loss"].to_numpy())
    rows, pointwise = {}, {}
    for name, new in refits.items():
        seed = jobs[name][2].get("random_seed")
        pointwise[name], rows[name] = _score(new, test, y, prob, seed)
    table = _rank(pd.DataFrame.from_dict(rows, orient="index"), pointwise)
    table["n_train"], table["n_holdout"] = len(train), len(test)
    table.index.name = "fit"
    table.attrs.update(method="lfo", threshold=threshold, prob=list(prob),
                       held_out_runs=[plain(r) for r in test.index])
    return table


def _compare_backtest(fits: Mapping[str, Fit]) -> pd.DataFrame:
    """Each fit's own backtests (its ``backtests`` group), scored by their held-out runs' log
    predictive densities; the fits must hold the same backtests (the same runs and cuts)."""
    pointwise, rows, held = {}, {}, None
    for name, fit in fits.items():
        table = (fit.idata["backtests"].to_dataset().to_dataframe()
                 if "backtests" in fit.idata.children else pd.DataFrame())
        if table.empty or "log_density" not in table:
            raise ValueError(
                f"method='backtest' scores each fit's own backtests, and fit {name!r} has "
                "none: fit it with discrepancy='backtest' (the default) on runs of enough "
                "budgets for a backtest, or use method='lfo'")
        key = table[["cut_decades", "loss"]].to_numpy(dtype=float)
        if held is None:
            held, first = key, name
        elif key.shape != held.shape or not np.allclose(key, held):
            raise ValueError(f"method='backtest' needs the same backtests in every fit: fits "
                             f"{first!r} and {name!r} held out different runs ({len(held)} "
                             f"and {len(key)}); use method='lfo'")
        pointwise[name] = table["log_density"].to_numpy(dtype=float)
        rows[name] = {"elpd": float(pointwise[name].sum()),
                      "elpd_mean": float(pointwise[name].mean()),
                      "rel_error": float(table["relative_error"].abs().mean()),
                      "n_holdout": len(table)}
    table = _rank(pd.DataFrame.from_dict(rows, orient="index"), pointwise)
    table.index.name = "fit"
    table.attrs.update(method="backtest",
                       cuts=sorted({float(c) for c in held[:, 0]}))
    return table


def _with_flops(fit: Fit) -> pd.DataFrame:
    runs = fit.runs
    if "flops" not in runs.columns:
        if not {"params", "tokens"} <= set(runs.columns):
            raise ValueError("method='lfo' orders runs by compute and needs a 'flops' column "
                             f"(or params and tokens); the runs have {list(runs.columns)}")
        runs["flops"] = run_flops(runs)  # k from the spec, which fit.runs carries
    return runs


def _score(fit: Fit, test: pd.DataFrame, y: np.ndarray, prob: tuple[float, ...],
           seed: int | None) -> tuple[np.ndarray, dict]:
    """Pointwise log predictive densities of the held-out runs, and the row of the table."""
    loc = np.log(fit.predict(test, kind="mean", random_seed=seed)["loss"].values)
    lpd = log_predictive_density(y, loc, fit.model.noise_model(fit.posterior, test))
    draws = fit.predict(test, kind="new_run", random_seed=seed)["loss"].values
    draws = draws.reshape(-1, draws.shape[-1])
    loss = np.exp(y)
    row = {"elpd": float(lpd.sum()), "elpd_mean": float(lpd.mean()),
           "rel_error": float(np.mean(np.abs(np.median(draws, axis=0) - loss) / loss))}
    for p in prob:
        lower, upper = np.quantile(draws, [(1 - p) / 2, (1 + p) / 2], axis=0)
        row[f"coverage_{100 * p:g}"] = float(np.mean((loss >= lower) & (loss <= upper)))
    return lpd, row


def log_predictive_density(y: np.ndarray, loc: np.ndarray, noise: Noise) -> np.ndarray:
    """Log posterior predictive density of observations ``y`` (log losses), per point.

    ``log( mean_s p(y | loc_s, noise_s) )`` over the posterior draws ``s`` (the leading axes of
    ``loc``), where ``p`` is the model's noise on the log-loss scale
    (:class:`bayescale.model.noise.Noise`: Student-t, Normal or skewed).

    >>> import numpy as np
    >>> from bayescale.model.noise import Noise
    >>> float(log_predictive_density(np.array([0.0]), np.zeros((1, 1, 1)),
    ...                              Noise(np.ones((1, 1, 1))))[0])
    -0.9189385332046727
    """
    logp = noise.logpdf(y, loc)
    logp = logp.reshape(-1, logp.shape[-1])
    return logsumexp(logp, axis=0) - np.log(logp.shape[0])


def stacking_weights(lpd: np.ndarray) -> np.ndarray:
    """Stacking weights from pointwise log predictive densities ``lpd`` (model, point).

    Maximises ``sum_i log sum_k w_k exp(lpd[k, i])`` over the simplex (softmax parameters,
    L-BFGS).

    >>> w = stacking_weights(np.log([[0.9, 0.9, 0.1], [0.1, 0.1, 0.9]]))
    >>> bool(w[0] > w[1]) and round(float(w.sum()), 12) == 1.0
    True
    """
    lpd = np.asarray(lpd, dtype=float)
    if lpd.ndim != 2 or lpd.shape[0] < 1:
        raise ValueError(f"lpd must be a (model, point) array, got shape {lpd.shape}")
    if lpd.shape[0] == 1:
        return np.ones(1)

    def loss(z):
        log_w = z - special.logsumexp(z)
        return -special.logsumexp(lpd + log_w[:, None], axis=0).sum()

    result = optimize.minimize(loss, np.zeros(lpd.shape[0]), method="L-BFGS-B")
    return special.softmax(result.x)


def _rank(table: pd.DataFrame, pointwise: Mapping[str, np.ndarray]) -> pd.DataFrame:
    order = table["elpd"].sort_values(ascending=False).index
    best = pointwise[order[0]]
    n = best.size
    table = table.loc[order]
    table["rank"] = np.arange(len(order))
    table["se"] = [float(np.sqrt(n * np.var(pointwise[k], ddof=1))) if n > 1 else np.nan
                   for k in order]
    table["elpd_diff"] = table["elpd"].iloc[0] - table["elpd"]
    table["dse"] = [float(np.sqrt(n * np.var(best - pointwise[k], ddof=1))) if n > 1 else np.nan
                    for k in order]
    table["weight"] = stacking_weights(np.stack([pointwise[k] for k in order]))
    front = ["rank", "elpd", "se", "elpd_diff", "dse", "weight", "elpd_mean", "rel_error"]
    return table[front + [c for c in table.columns if c not in front]]
