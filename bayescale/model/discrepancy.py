"""How far a law drifts past its runs: backtests, the discrepancy's posterior, its default prior.

A scaling law fitted to a sweep is not exact: past the largest run its misfit grows with the
distance extrapolated. :class:`bayescale.model.terms.Discrepancy` adds ``d * (b + s * z)`` to
the log loss of every answer, ``d`` the decades from the nearest run (jointly in its
coordinates), ``s`` the scale and ``b`` the bias per decade. The sweep's own fit cannot see
them (``d = 0`` on every run), so their posterior is learned from what can:

- **backtests inside the sweep** (:func:`run_backtests`): the same model fitted on the runs
  below a cut (by default 0.5 and 1 decade under the largest budget) predicts the runs above
  it. The held-out runs of one backtest share one bend of the law (:data:`SHARED_FRACTION`):
  their joint density, the law's predictive (Normal in the mean, Student-t noise) with the
  misfit ``d_i (b + s z)`` integrated over ``z`` (:func:`_log_predictive`), is the
  likelihood of ``s`` and ``b``;
- **default priors** (:data:`DEFAULT_SCALE_PRIOR`, :data:`DEFAULT_BIAS_PRIOR`): the predictive
  distribution for a new sweep of a hierarchical model over the backtests of the bundled real
  studies (:func:`population_model`; derived by ``benchmarks/extrapolation.py``, which scores
  each study under priors learned from the others).

The posterior given the backtests (:func:`scale_model`) is sampled by NUTS like any other
model. See ``docs/discrepancy.md``.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.data import lazy
from bayescale.data.runs import run_flops
from bayescale.data.warn import warn
from bayescale.inference.compiled import MAX_DATA
from bayescale.inference.diagnostics import SamplerWarning
from bayescale.inference.progress import phase
from bayescale.inference.sampling import sample
from bayescale.inference.trees import set_groups
from bayescale.model import priors as _priors
from bayescale.model.noise import Noise

pm = lazy.module("pymc")
pt = lazy.module("pytensor.tensor")
stats = lazy.module("scipy.stats")
special = lazy.module("scipy.special")

__all__ = ["DEFAULT_SCALE_PRIOR", "DEFAULT_BIAS_PRIOR", "SHARED_FRACTION", "BACKTEST_CUTS",
           "DISCREPANCIES", "Backtest", "run_backtests", "scale_model", "population_model",
           "population_prior", "learn_discrepancy", "learn_scale", "backtest_table",
           "backtest_from_fit", "discrepancy_draws",
           "OPTIONAL", "VARIABLES", "without_discrepancy", "backtest_summary",
           "attach"]

#: The discrepancy options of a scaling law: learn the scale from backtests of the sweep and
#: the default prior, from the default prior alone, or no discrepancy (the law taken as exact).
DISCREPANCIES = ("backtest", "prior", "off")
#: The posterior variables of the discrepancy (:func:`attach`): its scale, direction, bias and
#: tilt across model sizes (laws with an allocation).
VARIABLES = ("discrepancy_scale", "discrepancy_z", "discrepancy_bias", "discrepancy_tilt")
#: The learned variables of the discrepancy, each with a prior of its own.
LEARNED = ("discrepancy_scale", "discrepancy_bias")
#: Default prior of the scale ``s`` (log loss per decade past the runs): the predictive
#: distribution for a new sweep of the hierarchical model fitted to the backtests of the eight
#: bundled real sweeps (benchmarks/RESULTS.md, "extrapolation.py").
DEFAULT_SCALE_PRIOR = {"dist": "LogNormal", "mu": -3.61, "sigma": 1.14}  # median 0.027
#: A prior for the bias ``b`` (log loss per decade past the runs; negative: the runs come in
#: below the law), learned only when a user's ``priors`` name ``discrepancy_bias``: centred on
#: no bias, 0.01 per decade wide. By default there is no bias: scored out of study, the
#: discrepancy without it covers more and scores better (benchmarks/RESULTS.md, "The default
#: law, and the discrepancy without its bias"), so ``b`` is 0 unless asked for.
DEFAULT_BIAS_PRIOR = {"dist": "Normal", "mu": 0.0, "sigma": 0.01}
#: The discrepancy's variables that have no default prior: in a model only when its ``priors``
#: give them one.
OPTIONAL = ("discrepancy_bias",)
#: The share of the law's misfit common to every held-out run of one backtest (the rest is
#: each run's own): see :func:`_log_predictive`.
SHARED_FRACTION = 0.0
#: Backtest cuts, in decades under the largest budget of the runs.
BACKTEST_CUTS = (0.5, 1.0)
#: A backtest needs this many distinct budgets below its cut.
MIN_BUDGETS = 3
#: Posterior draws of each backtest fit kept for the scale's likelihood.
KEPT_DRAWS = 200
#: A backtest fit draws at most this many draws per chain after at most this many tuning
#: steps (the main fit's, where it asks fewer): only :data:`KEPT_DRAWS` of its draws are
#: used, and nutpie's low-rank adaptation settles well within 500 steps on these laws.
BACKTEST_DRAWS, BACKTEST_TUNE = 500, 500
#: The scale's fit draws this many times the fit's draws and keeps every THIN-th: NUTS on the
#: one-dimensional posterior of the scale alone gives an ESS of about a third of its draws
#: (1250-1500 of 4000 on the Chinchilla runs, against 2800-3200 with a bias beside it), and
#: its draws cost well under a second where compiling the model costs seconds.
THIN = 3
#: The scale's likelihood reads at most this many held-out runs of one backtest, spread
#: evenly over their distance past the cut: the runs of one backtest share its law's bend, so
#: thousands of them say little more about the scale than a thousand, and the likelihood's
#: cost grows with each (16 mixing nodes a run). The bundled real studies hold at most 520.
MAX_HELD_OUT = 1000
#: The ``pm.Data`` containers of one backtest in :func:`scale_model` (residual, the mean's
#: variance, the noise variance, distance, mixing nodes, and the shortfall of skewed noise).
_DATA_PER_BACKTEST = 6
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(16)
_LOG_WEIGHTS = np.log(_WEIGHTS / _WEIGHTS.sum())


@dataclass(frozen=True)
class Backtest:
    """One backtest: runs above ``cut`` decades under the largest budget, predicted by a fit
    of the runs below it (``log_mu``: draws x runs; the noise's draws: ``nu`` None but for
    Student-t noise, ``shortfall`` None but for skewed noise)."""

    cut: float
    log_loss: np.ndarray
    log_mu: np.ndarray
    sigma: np.ndarray
    nu: np.ndarray | None
    distance: np.ndarray
    max_r_hat: float = float("nan")
    divergences: int = 0
    shortfall: np.ndarray | None = None

    def table(self) -> pd.DataFrame:
        """One row per held-out run: the cut, its distance, observed and predicted loss, and
        the log predictive density of its log loss under the backtest's fit taken as exact
        (its law and noise; what :func:`bayescale.compare` ``method="backtest"`` scores)."""
        median = np.exp(np.median(self.log_mu, axis=0))
        return pd.DataFrame({"cut_decades": self.cut, "decades_past": self.distance,
                             "loss": np.exp(self.log_loss), "predicted": median,
                             "relative_error": np.exp(self.log_loss) / median - 1,
                             "log_density": self.log_density()})

    def log_density(self) -> np.ndarray:
        """``log mean_s p(y | draw s)`` per held-out run (the law exact, the fit's noise)."""
        column = lambda v: None if v is None else np.asarray(v, float).reshape(  # noqa: E731
            len(self.log_mu), -1)
        noise = Noise(sigma=column(self.sigma), nu=column(self.nu),
                      shortfall=column(self.shortfall))
        logp = noise.logpdf(self.log_loss[None, :], self.log_mu)
        return special.logsumexp(logp, axis=0) - math.log(logp.shape[0])


def run_backtests(model, *, cuts: Sequence[float] = BACKTEST_CUTS, fit_kwargs: Mapping,
                  seed: int) -> list[Backtest]:
    """Fit ``model``'s options on the runs below each cut and predict the runs above it.

    ``model`` is a family with ``runs``, ``with_runs(table)`` (the same options on another run
    table, no discrepancy), ``discrepancy_term`` and ``log_mean_draws``. A cut that leaves
    fewer than :data:`MIN_BUDGETS` budgets below it, no run above it, or runs the model cannot
    take, is skipped. A backtest fit's sampler problems are reported as one SamplerWarning.
    """
    runs = model.runs
    flops = run_flops(runs)
    out, problems = [], []
    for j, cut in enumerate(cuts):
        below = flops <= flops.max() / 10 ** cut * (1 + 1e-9)
        if np.unique(flops[below]).size < MIN_BUDGETS or below.all():
            continue
        try:
            sub = model.with_runs(runs[below])
        except ValueError as err:  # e.g. an offset column with one level below the cut
            warn(f"no backtest at cut {cut:g} decades: {err}", SamplerWarning)
            continue
        with warnings.catch_warnings(record=True) as caught, phase(
                f"backtest {j + 1} of {len(cuts)}: {int(below.sum())} runs up to "
                f"{cut:g} decades under the largest budget"):
            warnings.simplefilter("always", SamplerWarning)
            sub.check_fit(**fit_kwargs)
            fit = sub.sampled_fit(**fit_kwargs, random_seed=seed + 1 + j, progressbar=False,
                                  log_likelihood=False)  # nothing reads it
        if any(issubclass(w.category, SamplerWarning) for w in caught):
            problems.append(f"{cut:g} decades")
        out.append(backtest_from_fit(sub, fit, runs[~below], cut, seed))
    if problems:
        warn(f"backtest fit(s) at cut {', '.join(problems)} had sampler problems (see "
                      "their diagnostics in the 'backtests' group); the discrepancy scale is "
                      "learned from them all the same", SamplerWarning)
    return out


def backtest_from_fit(sub, fit, held: pd.DataFrame, cut: float, seed: int) -> Backtest:
    """The :class:`Backtest` of ``fit`` (a fit of model ``sub``) on the ``held``-out runs."""
    post = fit.posterior
    rng = np.random.default_rng(seed)
    n = post.sizes["chain"] * post.sizes["draw"]
    keep = rng.choice(n, size=min(KEPT_DRAWS, n), replace=False)
    log_mu = sub.log_mean_draws(post, held, rng).reshape(n, -1)[keep]
    noise = sub.noise_model(post, held).flat(keep)
    term = sub.discrepancy_term
    diag = fit.diagnostics()
    return Backtest(cut=float(cut), log_loss=np.log(held["loss"].to_numpy(dtype=float)),
                    log_mu=log_mu, sigma=noise.sigma, nu=noise.nu, shortfall=noise.shortfall,
                    distance=term.distance(held, term.ranges(sub.runs)),
                    max_r_hat=float(diag["max_r_hat"]), divergences=int(diag["divergences"]))


def _mixing_nodes(nu: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``w`` and log weights of Student-t noise as a scale mixture of normals,
    ``t_nu(sigma) = integral Normal(0, sigma^2 / w) Gamma(w; nu/2, nu/2) dw``: the Gamma
    quantiles at ``Phi(x_k)`` for Gauss-Hermite nodes ``x_k`` (so the tails are included)."""
    if nu is None:
        return np.ones(1), np.zeros(1)
    w = stats.gamma.ppf(stats.norm.cdf(_NODES), a=nu / 2, scale=2 / nu)
    return np.maximum(w, 1e-300), _LOG_WEIGHTS


def _log_predictive(backtest: Backtest, scale, shared: float = 0.0, bias=0.0,
                    data: str | None = None):
    """log p(held-out runs | scale, bias) of one backtest (a PyTensor expression; its numbers
    as ``pm.Data`` named after ``data`` where given, see :func:`_predictive_inputs`).

    Run ``i``'s residual from the law's posterior mean log loss ``m_i`` is the mean's own
    uncertainty (Normal, variance ``v_i`` of the draws), the noise (at the posterior median of
    ``sigma`` and ``nu``) and the law's misfit ``d_i (b + s (sqrt(shared) z + sqrt(1 - shared)
    z_i))``, ``b`` the bias per decade: a part ``z`` common to every run of the backtest (one
    bend of the law) and a part ``z_i`` of each run's own, the misfit's variance ``(s
    d_i)^2`` either way. With ``shared = 1`` the runs of one backtest are one observation of
    the bend, not one each. The noise
    is a scale mixture of normals (nodes ``w``), so given ``z`` each run is Normal per node,
    ``Normal(y_i; m_i + sqrt(shared) s d_i z, v_i + sigma^2 / w + (1 - shared)(s d_i)^2)``,
    integrated over ``w`` by quadrature; ``z`` is integrated by Gauss-Hermite quadrature
    centred on its Normal-noise posterior (adaptive: many runs pin ``z`` far more tightly
    than the nodes of its prior are spaced). Under skewed noise each held-out run may also
    fall short of the law by an exponential shortfall (the fit's median): the Normal part's
    density becomes the exponentially modified Gaussian's (``pm.ExGaussian``), so runs that
    fall short as the sweep's runs did are not read as the law's misfit. With ``shared = 0``
    (the default) ``z`` drops out and the runs are independent: no quadrature over ``z``.
    At most :data:`MAX_HELD_OUT` runs of the backtest are read.
    """
    x = _predictive_inputs(backtest, data)
    tau = x.get("tau")
    tau2 = 0.0 if tau is None else tau ** 2  # the shortfall's variance
    resid, v, sigma2, distance = x["resid"] - bias * x["distance"], x["v"], x["sigma2"], x["distance"]
    var = (v[:, None] + sigma2[:, None] / x["w"][None, :])[:, :, None] \
        + (1.0 - shared) * (scale * distance[:, None, None]) ** 2          # runs x K x 1
    if not shared:  # no common bend: the runs are independent, z drops out exactly
        return _per_run(resid[:, None, None], var, tau, x["log_weights"]).sum()
    # z's nodes are placed by its posterior under Normal noise of the same mean and variance
    centred = resid if tau is None else resid - tau
    z = _z_nodes(centred, v + sigma2 + tau2, distance, scale, shared)                 # J
    shift = math.sqrt(shared) * scale * distance[:, None, None] * z[None, None, :]
    per_run = _per_run(resid[:, None, None] - shift, var, tau, x["log_weights"])  # runs x J
    log_ratio = -0.5 * z ** 2 + 0.5 * _NODES ** 2 - 0.5 * pt.log(_z_precision(
        v + sigma2 + tau2, distance, scale, shared))                    # phi(z) / q(z)
    return pt.logsumexp(per_run.sum(axis=0) + _LOG_WEIGHTS + log_ratio)


def _per_run(resid, var, tau, log_weights):
    """log density of each run's ``resid`` (runs x 1 x J) given the misfit's node: Normal of
    variance ``var`` (runs x K x 1) per mixing node, with the shortfall ``tau`` under skewed
    noise (``pm.ExGaussian``), mixed over the K nodes: runs x J."""
    if tau is None:
        per_node = -0.5 * (pt.log(2 * math.pi * var) + resid ** 2 / var)
    else:  # skewed noise: an exponential shortfall on top of every Normal part
        per_node = pm.logp(pm.ExGaussian.dist(mu=pt.zeros_like(resid), sigma=pt.sqrt(var),
                                             nu=tau), resid)
    return pt.logsumexp(per_node + log_weights[None, :, None], axis=1)


def _predictive_inputs(backtest: Backtest, data: str | None) -> dict:
    """The numbers of ``backtest`` that :func:`_log_predictive` reads: each run's residual
    from the posterior mean log loss, the mean's variance, the noise variance (the median
    ``sigma``), its distance; the mixing nodes of the median ``nu`` and their log weights;
    the median shortfall (skewed noise only). As arrays, or with ``data`` as ``pm.Data``
    containers ``{data}_{name}`` of the enclosing model (the log weights stay constants:
    they depend on the noise's kind only), so that a model of the same structure is
    compiled once per machine, whatever the runs (:mod:`bayescale.inference.compiled`)."""
    b = backtest
    w, log_weights = _mixing_nodes(None if b.nu is None else float(np.median(b.nu)))
    v = b.log_mu.var(axis=0)
    x = {"resid": b.log_loss - b.log_mu.mean(axis=0), "v": v, "distance": b.distance,
         # a number, or one per run (a group's noise)
         "sigma2": np.broadcast_to(np.median(b.sigma, axis=0) ** 2, v.shape).copy(), "w": w}
    keep = _spread(b.distance, MAX_HELD_OUT)
    x |= {name: x[name][keep] for name in ("resid", "v", "distance", "sigma2")}
    if b.shortfall is not None:
        x["tau"] = float(np.median(b.shortfall))
    if data is not None:
        x = {name: pm.Data(f"{data}_{name}", np.asarray(value, float))
             for name, value in x.items()}
    return x | {"log_weights": log_weights}


def _spread(distance: np.ndarray, most: int) -> np.ndarray:
    """Indices of at most ``most`` runs spread evenly over the order of their ``distance``
    (all of them, in order, where there are no more)."""
    if distance.size <= most:
        return np.arange(distance.size)
    order = np.argsort(distance, kind="stable")
    return np.sort(order[np.unique(np.linspace(0, distance.size - 1, most).round().astype(int))])


def _z_precision(var, distance, scale, shared):
    """Posterior precision of the shared ``z`` under Normal noise of variance ``var``."""
    u2 = shared * (scale * distance) ** 2
    return 1.0 + (u2 / (var + (1.0 - shared) * (scale * distance) ** 2)).sum()


def _z_nodes(resid, var, distance, scale, shared):
    """Gauss-Hermite nodes of ``z`` centred and scaled on its Normal-noise posterior."""
    total = var + (1.0 - shared) * (scale * distance) ** 2
    precision = _z_precision(var, distance, scale, shared)
    mean = (math.sqrt(shared) * scale * distance * resid / total).sum() / precision
    return mean + _NODES / pt.sqrt(precision)


def scale_model(backtests: Sequence[Backtest], priors: Mapping[str, Mapping],
                shared: float = SHARED_FRACTION) -> pm.Model:
    """The posterior of ``discrepancy_scale`` (and of ``discrepancy_bias`` where ``priors``
    name one; else the bias is 0) given the backtests."""
    # the numbers as data (cached compilation) while they fit one compiled call's arguments;
    # many backtests (a study of their own) as constants, compiled per process
    as_data = len(backtests) * _DATA_PER_BACKTEST <= MAX_DATA
    with pm.Model() as model:
        scale = _priors.create("discrepancy_scale", priors["discrepancy_scale"])
        bias = (_priors.create("discrepancy_bias", priors["discrepancy_bias"])
                if "discrepancy_bias" in priors else 0.0)
        for i, backtest in enumerate(backtests):
            pm.Potential(f"backtest_{i}", _log_predictive(
                backtest, scale, shared, bias, data=f"backtest_{i}" if as_data else None))
    return model


def learn_discrepancy(backtests: Sequence[Backtest], priors: Mapping[str, Mapping], *,
                      chains: int, draws: int, tune: int, seed: int,
                      shared: float = SHARED_FRACTION) -> dict[str, np.ndarray]:
    """Draws of the variables that ``priors`` name (``discrepancy_scale``, optionally
    ``discrepancy_bias``), each of shape (chains, draws): by NUTS given the backtests (every
    :data:`THIN`-th of ``THIN * draws``), or from their priors when there are none."""
    if not backtests:
        rng = np.random.default_rng(seed)
        return {name: np.asarray(pm.draw(_priors.distribution(prior), draws=chains * draws,
                                         random_seed=rng)).reshape(chains, draws)
                for name, prior in priors.items()}
    idata, _ = sample(scale_model(backtests, priors, shared), draws=THIN * draws, tune=tune,
                      chains=chains, random_seed=seed, sampler="nutpie", target_accept=0.9,
                      progressbar=False)
    return {name: idata["posterior"][name].values[:, ::THIN] for name in priors}


def learn_scale(backtests: Sequence[Backtest], prior: Mapping, *, chains: int, draws: int,
                tune: int, seed: int, shared: float = SHARED_FRACTION) -> np.ndarray:
    """Draws of the scale alone (no bias), shape (chains, draws)."""
    return learn_discrepancy(backtests, {"discrepancy_scale": prior}, chains=chains,
                             draws=draws, tune=tune, seed=seed,
                             shared=shared)["discrepancy_scale"]


def population_model(groups: Mapping[str, Sequence[Backtest]],
                     shared: float = SHARED_FRACTION, bias: bool = True) -> pm.Model:
    """Hierarchical scales of several sweeps: ``log s_j ~ Normal(mu, tau)`` with
    ``mu ~ Normal(log 0.01, 2)`` and ``tau ~ HalfNormal(1)``, and (``bias``) one bias per
    decade common to every sweep, ``b ~ Normal(0, 0.05)``; sweep ``j``'s backtests give the
    likelihood of ``s_j`` and ``b``."""
    with pm.Model(coords={"sweep": list(groups)}) as model:
        mu = pm.Normal("log_scale_mu", mu=math.log(0.01), sigma=2.0)
        tau = pm.HalfNormal("log_scale_tau", sigma=1.0)
        z = pm.Normal("log_scale_z", 0.0, 1.0, dims="sweep")
        scale = pm.Deterministic("scale", pt.exp(mu + tau * z), dims="sweep")
        b = pm.Normal("bias", 0.0, 0.05) if bias else 0.0
        for j, backtests in enumerate(groups.values()):
            for i, backtest in enumerate(backtests):
                pm.Potential(f"backtest_{j}_{i}",
                             _log_predictive(backtest, scale[j], shared, b))
    return model


def population_prior(groups: Mapping[str, Sequence[Backtest]], *, draws: int = 1000,
                     chains: int = 4, seed: int = 0, shared: float = SHARED_FRACTION,
                     bias: bool = True) -> dict[str, dict]:
    """The priors of a new sweep's discrepancy from :func:`population_model`: its scale
    LogNormal, ``log s = mu + tau * eps`` over the posterior, summarised by its mean and sd;
    with ``bias``, the bias Normal with the posterior mean and sd of ``b``."""
    idata, _ = sample(population_model(groups, shared, bias), draws=draws, tune=draws, chains=chains,
                      random_seed=seed, sampler="nutpie", target_accept=0.95, progressbar=False)
    post = idata["posterior"]
    mu, tau = post["log_scale_mu"].values.ravel(), post["log_scale_tau"].values.ravel()
    log_new = mu + tau * np.random.default_rng(seed).standard_normal(mu.size)
    out = {"discrepancy_scale": {"dist": "LogNormal", "mu": float(log_new.mean()),
                                 "sigma": float(log_new.std())}}
    if bias:
        b = post["bias"].values.ravel()
        out["discrepancy_bias"] = {"dist": "Normal", "mu": float(b.mean()),
                                   "sigma": float(b.std())}
    return out


def discrepancy_draws(posterior: xr.Dataset) -> dict[str, np.ndarray | float]:
    """The discrepancy's draws as :meth:`bayescale.model.terms.Discrepancy.effect` takes them
    (shape (chain, draw, 1)); a fit made before the bias or the tilt has none (0)."""
    get = lambda name: posterior[name].values[..., None]  # noqa: E731
    return {"scale": get("discrepancy_scale"), "z": get("discrepancy_z"),
            "bias": get("discrepancy_bias") if "discrepancy_bias" in posterior else 0.0,
            "tilt": get("discrepancy_tilt") if "discrepancy_tilt" in posterior else 0.0}


def without_discrepancy(posterior: xr.Dataset) -> xr.Dataset:
    """``posterior`` without the discrepancy's draws: answers as the law taken as exact."""
    return posterior.drop_vars(list(VARIABLES), errors="ignore")


def backtest_summary(fit) -> pd.DataFrame:
    """Per backtest cut of ``fit`` (its ``backtests`` group): the held-out runs, their median
    distance past the backtest's runs and median absolute relative error; empty without any."""
    columns = ["cut_decades", "held_out_runs", "median_decades_past", "median_abs_error"]
    if "backtests" not in fit.idata.children:
        return pd.DataFrame(columns=columns)
    table = fit.idata["backtests"].to_dataset().to_dataframe()
    rows = [(cut, len(g), g["decades_past"].median(), g["relative_error"].abs().median())
            for cut, g in table.groupby("cut_decades")]
    return pd.DataFrame(rows, columns=columns)


def backtest_table(backtests: Sequence[Backtest]) -> pd.DataFrame:
    """All backtests' held-out runs in one table (empty with the columns when none)."""
    if not backtests:
        return pd.DataFrame(columns=["cut_decades", "decades_past", "loss", "predicted",
                                     "relative_error"], dtype=float)
    return pd.concat([b.table() for b in backtests], ignore_index=True)


def attach(fit, model, *, sampler: str, target_accept: float):
    """Add the posterior draws of ``discrepancy_scale`` to ``fit`` (learned from backtests of
    ``model`` when its option is ``"backtest"``, else drawn from its prior) and of its
    direction ``discrepancy_z ~ Normal(0, 1)``, and the backtests' held-out runs as the
    ``backtests`` group. Returns ``fit``. Both are draws of the fit like any other, so every
    answer past the runs is a fixed function of the posterior (reproducible, and the same
    bend of the law for every point of one draw)."""
    post = fit.posterior
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    seed = int(post.attrs["random_seed"])
    tune = int(post.attrs.get("tune", draws))
    fit_kwargs = {"draws": min(draws, BACKTEST_DRAWS), "tune": min(tune, BACKTEST_TUNE),
                  "chains": chains, "sampler": sampler, "target_accept": target_accept}
    backtests = (run_backtests(model, fit_kwargs=fit_kwargs, seed=seed)
                 if model.discrepancy == "backtest" else [])
    with phase(f"learning the discrepancy past the runs from {len(backtests)} backtests"):
        learned = learn_discrepancy(backtests, {n: model.priors[n] for n in LEARNED
                                                if n in model.priors},
                                    chains=chains, draws=draws, tune=tune, seed=seed + 7)
    z = np.random.default_rng(seed + 11).standard_normal((chains, draws))
    tilt = np.random.default_rng(seed + 13).standard_normal((chains, draws))
    post = post.assign({name: (("chain", "draw"), v) for name, v in learned.items()}
                       | {"discrepancy_z": (("chain", "draw"), z)}
                       | ({"discrepancy_tilt": (("chain", "draw"), tilt)}
                          if model.tilts else {}))
    table = backtest_table(backtests)
    held = xr.Dataset({c: ("held_out", table[c].to_numpy(dtype=float)) for c in table.columns})
    held.attrs["fits"] = json.dumps([{"cut_decades": b.cut, "max_r_hat": b.max_r_hat,
                                      "divergences": b.divergences} for b in backtests])
    set_groups(fit.idata, posterior=post, backtests=held)
    return fit
