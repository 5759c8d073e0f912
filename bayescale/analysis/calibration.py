"""Simulation-based calibration: do the intervals cover as often as they say?

:func:`calibrate` draws many data sets from a known generative process, fits each one exactly
as a user would (NUTS through :func:`bayescale.fit_many`, so any executor runs them in
parallel), and records where every true value falls in its posterior:

- ``mode="prior"`` (simulation-based calibration, Talts et al. 2018): each data set's
  parameters are drawn from the *same* prior the fit uses, and the data from the model itself
  (``pymc.sample_prior_predictive``). If the sampler and the model code are right, the rank of
  the truth among the posterior draws is uniform and an x% interval covers the truth in x% of
  the data sets, for every quantity, exactly.
- ``mode="fixed"``: every data set comes from one fixed truth (only the noise differs). This
  is the frequentist coverage a user gets at that truth; it need not be nominal, and shows
  how much the prior pulls.

The quantities are the law's parameters, the noise (``sigma``, ``nu``), and the predictions
people extrapolate for: the mean loss at the compute-optimal allocation (``law="flops"``: at
the budget) and ``N*`` at 10x and 100x the largest simulated budget.

:func:`coverage` turns a result into a table (coverage per quantity with its binomial
standard error, and a chi-square test of rank uniformity); :func:`plot_calibration` draws the
rank histograms. ``benchmarks/calibration.py`` is the command that fills ``RESULTS.md``.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.data import lazy
from bayescale.analysis.compare import fit_many
from bayescale.model.laws import GAMMA_SD, get_law, log_mean
from bayescale.model.scaling import ScalingLaw
from bayescale.data.runs import prepare, run_flops
from bayescale.inference.diagnostics import SamplerWarning

pm = lazy.module("pymc")
stats = lazy.module("scipy.stats")

__all__ = ["calibrate", "coverage", "plot_calibration", "default_design", "default_priors",
           "REFERENCE_TRUTHS", "MODES", "PROBS"]

MODES = ("prior", "fixed")
#: Interval masses whose coverage :func:`calibrate` records.
PROBS = (0.5, 0.9)
#: The same in percent: the suffix of the result's variables (``inside_90``, ...).
_PERCENTS = tuple(round(100 * p) for p in PROBS)
#: Reference truths by law: the centres of the default calibration priors and the default
#: truths of ``mode="fixed"``. ``chinchilla``: Hoffmann et al. (2022) round numbers;
#: ``flops``: a power law in compute with about the reducible loss and slope that law has
#: along its compute-optimal frontier near 1e19 FLOPs.
REFERENCE_TRUTHS = {
    "chinchilla": {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.36,
                   "sigma": 0.01, "nu": 5.0},
    "chinchilla_sized": {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.36,
                         "gamma": 0.0, "sigma": 0.01, "nu": 5.0},
    "flops": {"E": 1.8, "A": 1e19 ** 0.17, "alpha": 0.17, "sigma": 0.01, "nu": 5.0},
    "flops_pure": {"A": 2.8 * 1e19 ** 0.05, "alpha": 0.05, "sigma": 0.01, "nu": 5.0},
}
#: Multiples of the largest simulated budget at which predictions are scored.
MULTIPLES = (10, 100)


def default_design(law: str = "chinchilla") -> pd.DataFrame:
    """The simulated sweep: 5 budgets from 1e17 to 1e19 FLOPs.

    ``chinchilla``: 6 model sizes per budget, spread a factor 6 either side of 20 tokens per
    parameter (30 runs). ``flops``/``flops_pure``: 9 budgets from 1e17 to 1e21 with 3 runs
    each (27 runs; the runs of one budget differ by a ``replicate`` column).
    """
    law = get_law(law)
    if law.inputs == ("params", "tokens"):
        budgets = np.repeat(np.geomspace(1e17, 1e19, 5), 6)
        spread = np.tile(np.geomspace(1 / 6, 6, 6), 5)
        params = np.sqrt(budgets / 120.0) * spread
        table = pd.DataFrame({"params": params, "tokens": budgets / (6.0 * params)})
    else:
        table = pd.DataFrame({"flops": np.repeat(np.geomspace(1e17, 1e21, 9), 3),
                              "replicate": np.tile(np.arange(3), 9)})
    table["loss"] = 2.0 + 0.01 * np.arange(len(table))  # placeholder, replaced by draws
    return prepare(table)


def default_priors(law: str = "chinchilla", design: pd.DataFrame | None = None) -> dict:
    """Calibration priors: informative, centred on ``REFERENCE_TRUTHS[law]``, on ``design``.

    ``log_E ~ Normal(log E, 0.15)``; each term's size at the design's geometric-mean input
    ``~ Normal(its reference value, 0.3)``; exponents ``~ LogNormal(log exponent, 0.15)``;
    ``gamma`` (``chinchilla_sized``) its default ``Normal(0, 0.05)``; ``sigma ~
    HalfNormal(0.02)``; ``nu ~ Gamma(2, 0.1)`` (the default).
    """
    law = get_law(law)
    design = default_design(law.name) if design is None else design
    ref = REFERENCE_TRUTHS[law.name]
    out = {"sigma": {"dist": "HalfNormal", "sigma": 0.02},
           "nu": {"dist": "Gamma", "alpha": 2.0, "beta": 0.1}}
    log_reference = {x: float(np.mean(np.log(design[x]))) for x in law.inputs}
    law = law.bind(log_reference)  # as the fits' (a law that pivots turns about the design's centre)
    centre = law.sampled_from(ref, log_reference)
    for name in law.sampled:
        value = centre[name]
        if name == "gamma":
            out[name] = {"dist": "Normal", "mu": float(value), "sigma": GAMMA_SD}
        elif name in law.positive:  # exponents
            out[name] = {"dist": "LogNormal", "mu": math.log(float(value)), "sigma": 0.15}
        else:  # log_E and the terms' sizes at the design's geometric mean
            out[name] = {"dist": "Normal", "mu": float(value),
                         "sigma": 0.15 if name == "log_E" else 0.3}
    return out


def calibrate(law: str = "chinchilla", *, datasets: int = 100, mode: str = "prior",
              truth: Mapping[str, float] | None = None, design: pd.DataFrame | None = None,
              priors: Mapping[str, dict] | None = None, noise: str = "student_t",
              draws: int = 500, tune: int = 500, chains: int = 2, target_accept: float = 0.9,
              executor: Executor | None = None, batch: int = 20, random_seed: int = 0,
              progress: Callable[[int, int], None] | None = None) -> xr.Dataset:
    """Fit many simulated data sets and record where each truth falls in its posterior.

    Parameters
    ----------
    law
        The law to calibrate (``"chinchilla"``, ``"flops"``, ``"flops_pure"``).
    datasets
        How many simulated data sets to fit.
    mode
        ``"prior"``: parameters drawn from ``priors`` (simulation-based calibration).
        ``"fixed"``: every data set from ``truth`` (natural units: ``E``, ``A``, ..., ``sigma``
        and, for Student-t noise, ``nu``).
    truth
        ``mode="fixed"`` only; default ``REFERENCE_TRUTHS[law]``.
    design
        The run table whose inputs every data set shares (its ``loss`` is ignored); default
        :func:`default_design`.
    priors
        Priors of the fits (and, in ``mode="prior"``, of the simulation), every one given so
        that all fits share one compiled model; default :func:`default_priors`.
    noise
        ``"student_t"``, ``"normal"`` or ``"skewed"``, for simulating and fitting (``"skewed"``
        needs priors and a truth that give ``shortfall``).
    draws, tune, chains, target_accept
        NUTS settings of every fit (nutpie).
    executor
        A :class:`concurrent.futures.Executor` for the fits (through :func:`bayescale.fit_many`);
        ``None`` fits serially.
    batch
        Data sets submitted to the executor at a time (bounds the memory held in fits).
    random_seed
        Seeds the simulation; the fits of the batch starting at data set ``i`` use sampler
        seed ``random_seed + i``.
    progress
        Called as ``progress(done, total)`` after every batch.

    Returns
    -------
    xarray.Dataset
        Over ``(dataset, quantity)``: ``truth``, ``rank`` (how many of ``attrs["rank_draws"]``
        thinned posterior draws lie below the truth), ``median``, and ``lower_<p>``/``upper_<p>``
        (equal-tailed intervals) with ``inside_<p>`` for p in 50 and 90; over ``dataset``:
        ``divergences``, ``max_r_hat``, ``min_ess_bulk``. The attrs record the law, mode, noise,
        sampler settings, seed, priors and design.
    """
    law_ = get_law(law)
    _check_arguments(mode, datasets, batch, truth)
    design = default_design(law_.name) if design is None else prepare(design)
    priors = default_priors(law_.name, design) if priors is None else dict(priors)
    # the law as simulated: the discrepancy is zero on the runs and its scale is not drawn by
    # the simulation, so calibration checks the law's posterior and its extrapolation
    model = ScalingLaw(design, law=law_.name, priors=priors, noise=noise, discrepancy="off")
    if set(model.priors) != set(priors):
        missing = sorted(set(model.priors) - set(priors))
        raise ValueError(f"priors must give every prior of the model so that the simulation and "
                         f"the fits share it; missing {missing}")
    law_ = model.law  # bound to the design (a law that pivots turns about the runs' centre)
    params = [*law_.params, *ScalingLaw._NOISE_PARAMS[noise]]
    budget_top = float(np.max(run_flops(design)))
    targets = budget_top * np.asarray(MULTIPLES, float)
    if mode == "fixed" and truth is None:
        truth = REFERENCE_TRUTHS[law_.name]
    truths, log_losses = _simulate(model, params, mode, truth, datasets, random_seed)
    derived = _derived(law_, truths, targets)
    quantities = [*params, *derived]
    truth_table = np.column_stack([truths[p] for p in params] + list(derived.values()))
    rows = _fit_and_score(model.spec, design, log_losses, truth_table, law_, params, targets,
                          batch=batch, executor=executor, random_seed=random_seed,
                          progress=progress, draws=draws, tune=tune, chains=chains,
                          target_accept=target_accept)
    return _result(rows, truth_table, quantities, {
        "law": law_.name, "mode": mode, "noise": noise, "draws": draws, "tune": tune,
        "chains": chains, "target_accept": target_accept, "random_seed": random_seed,
        "priors": json.dumps(priors, sort_keys=True),
        "truth": json.dumps(dict(truth or REFERENCE_TRUTHS[law_.name])) if mode == "fixed" else "",
        "design": design.drop(columns="loss").to_json(orient="records"),
        "targets": json.dumps(targets.tolist())})


def _check_arguments(mode, datasets, batch, truth) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    if isinstance(datasets, bool) or not isinstance(datasets, (int, np.integer)) or datasets < 1:
        raise ValueError(f"datasets must be a positive integer, got {datasets!r}")
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    if truth is not None and mode != "fixed":
        raise ValueError("truth is only used with mode='fixed'")


def _fit_and_score(spec, design, log_losses, truth_table, law, params, targets, *, batch,
                   executor, random_seed, progress, **fit_kwargs) -> list[dict]:
    """Fit the simulated data sets in batches (one compilation: same design and priors) and
    score each against its truth."""
    rows, datasets = [], len(log_losses)
    for start in range(0, datasets, batch):
        stop = min(start + batch, datasets)
        jobs = {str(i): (spec, design.assign(loss=np.exp(log_losses[i])))
                for i in range(start, stop)}
        fits = _fit_batch(jobs, executor, random_seed + start, **fit_kwargs)
        for i in range(start, stop):
            rows.append(_score(fits[str(i)], law, params, targets, truth_table[i]))
        if progress is not None:
            progress(stop, datasets)
    return rows


def coverage(result: xr.Dataset) -> pd.DataFrame:
    """Coverage per quantity: the share of data sets whose interval holds the truth.

    Columns: ``coverage_50``, ``coverage_90`` with their binomial standard errors at the
    nominal rate (``se_50``, ``se_90``), ``rank_p`` (chi-square test that the ranks are
    uniform over 10 bins; small means miscalibrated), and ``n`` data sets. The last row,
    ``all``, pools every quantity.
    """
    out = {}
    n = result.sizes["dataset"]
    for q in result["quantity"].values:
        out[str(q)] = {**{f"coverage_{p}": float(result[f"inside_{p}"].sel(quantity=q).mean())
                          for p in _PERCENTS},
                       "rank_p": _rank_p(result["rank"].sel(quantity=q).values,
                                         result.attrs["rank_draws"]), "n": n}
    table = pd.DataFrame(out).T
    table.loc["all"] = [float(result[f"inside_{p}"].mean()) for p in _PERCENTS] + [np.nan, n]
    for p in _PERCENTS:
        table.insert(table.columns.get_loc(f"coverage_{p}") + 1, f"se_{p}",
                     math.sqrt(p / 100 * (1 - p / 100) / n))
    table["n"] = table["n"].astype(int)
    table.index.name = "quantity"
    return table


def plot_calibration(result: xr.Dataset, *, bins: int = 10, ncols: int = 4):
    """Rank histograms, one panel per quantity, with the 99% band of a uniform histogram.

    A calibrated posterior gives flat histograms; a U shape means intervals too narrow, a
    hump too wide, a slope a biased posterior. Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    quantities = [str(q) for q in result["quantity"].values]
    nrows = math.ceil(len(quantities) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), squeeze=False,
                             sharey=True)
    n, draws = result.sizes["dataset"], result.attrs["rank_draws"]
    low, high = stats.binom.ppf([0.005, 0.995], n, 1 / bins)
    edges = np.linspace(0, draws + 1, bins + 1)
    for ax, q in zip(axes.flat, quantities):
        ax.axhspan(low, high, color="0.85", label="99% band if uniform")
        ax.axhline(n / bins, color="0.5", lw=0.8)
        ax.hist(result["rank"].sel(quantity=q).values, bins=edges, color="C0",
                edgecolor="white")
        ax.set_title(q, fontsize=9)
        ax.set_xlabel(f"rank of truth among {draws} draws", fontsize=8)
    for ax in axes.flat[len(quantities):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("data sets")
    axes.flat[0].legend(fontsize=7, loc="lower left")
    attrs = result.attrs
    fig.suptitle(f"Rank histograms: law {attrs['law']!r}, mode {attrs['mode']!r}, "
                 f"{n} data sets", fontsize=10)
    fig.tight_layout()
    return fig


# -- internals ------------------------------------------------------------------------------
#: Thinned posterior draws among which the truth's rank is taken (ranks 0..RANK_DRAWS).
RANK_DRAWS = 99


def _derived(law, theta: Mapping[str, np.ndarray], targets: np.ndarray) -> dict:
    """Extrapolated predictions per draw, for parameters of any shape (broadcast over targets)."""
    theta = {k: np.asarray(v, float)[..., None] for k, v in theta.items()}
    out = {}
    if law.has_optimum:
        opt = law.optimum(theta, targets)
        for j, m in enumerate(MULTIPLES):
            out[f"loss_{m}x"] = opt["loss_opt"][..., j]
            out[f"N_opt_{m}x"] = opt["params_opt"][..., j]
    else:
        loss = np.exp(log_mean(law, theta, {x: targets for x in law.inputs}))
        for j, m in enumerate(MULTIPLES):
            out[f"loss_{m}x"] = loss[..., j]
    return out


def _simulate(model: ScalingLaw, params: Sequence[str], mode: str,
              truth: Mapping[str, float] | None, datasets: int, seed: int):
    """The truths (name -> array over data sets) and simulated log losses (datasets, runs)."""
    if mode == "prior":
        with model.model:
            prior = pm.sample_prior_predictive(draws=datasets, random_seed=seed,
                                               var_names=[*params, "log_loss"])
        truths = {p: prior.prior[p].values.reshape(-1) for p in params}
        return truths, prior.prior_predictive["log_loss"].values.reshape(datasets, -1)
    truth = dict(truth)
    missing = [p for p in params if p not in truth]
    if missing:
        raise ValueError(f"truth lacks {missing}; it needs {list(params)}")
    rng = np.random.default_rng(seed)
    runs = model.runs
    log_mu = log_mean(model.law, truth, {x: runs[x].to_numpy() for x in model.law.inputs})
    shape = (datasets, len(runs))
    eps = (rng.standard_t(truth["nu"], size=shape) if model.noise == "student_t"
           else rng.standard_normal(shape))
    shortfall = (rng.exponential(truth["shortfall"], size=shape) if model.noise == "skewed"
                 else 0.0)
    truths = {p: np.full(datasets, float(truth[p])) for p in params}
    return truths, log_mu[None, :] + truth["sigma"] * eps + shortfall


def _fit_batch(jobs: dict, executor: Executor | None, seed: int, **fit_kwargs) -> dict:
    """Fit one batch through fit_many; sampler diagnostics are recorded, not raised."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplerWarning)
        return fit_many(jobs, executor=executor, random_seed=seed, **fit_kwargs)


def _score(fit, law, params: Sequence[str], targets: np.ndarray, truth: np.ndarray) -> dict:
    post = fit.posterior
    draws = {p: post[p].values.reshape(-1) for p in params}
    draws |= {k: v.reshape(-1) for k, v in
              _derived(law, {p: post[p].values for p in law.params}, targets).items()}
    samples = np.column_stack(list(draws.values()))  # (draws, quantity)
    step = max(samples.shape[0] // RANK_DRAWS, 1)
    thinned = samples[::step][:RANK_DRAWS]
    out = {"rank": (thinned < truth).sum(axis=0), "median": np.median(samples, axis=0)}
    for p, key in zip(PROBS, _PERCENTS):
        lo, hi = np.quantile(samples, [(1 - p) / 2, (1 + p) / 2], axis=0)
        out |= {f"lower_{key}": lo, f"upper_{key}": hi,
                f"inside_{key}": (lo <= truth) & (truth <= hi)}
    diag = fit.diagnostics()
    out |= {"divergences": diag["divergences"], "max_r_hat": diag["max_r_hat"],
            "min_ess_bulk": diag["min_ess_bulk"], "rank_draws": thinned.shape[0]}
    return out


def _result(rows: list[dict], truth: np.ndarray, quantities: list[str], attrs: dict):
    per_quantity = [k for k in rows[0] if np.ndim(rows[0][k]) == 1]
    per_dataset = ["divergences", "max_r_hat", "min_ess_bulk"]
    data = {"truth": (("dataset", "quantity"), truth)}
    data |= {k: (("dataset", "quantity"), np.stack([r[k] for r in rows])) for k in per_quantity}
    data |= {k: ("dataset", np.array([r[k] for r in rows])) for k in per_dataset}
    attrs["rank_draws"] = int(min(r["rank_draws"] for r in rows))
    return xr.Dataset(data, coords={"dataset": np.arange(len(rows)), "quantity": quantities},
                      attrs=attrs)


def _rank_p(ranks: np.ndarray, draws: int, bins: int = 10) -> float:
    counts, _ = np.histogram(ranks, bins=np.linspace(0, draws + 1, bins + 1))
    return float(stats.chisquare(counts).pvalue)
