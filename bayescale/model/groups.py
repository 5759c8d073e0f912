"""Laws that differ by group: per-level law parameters, partially pooled, and the answers
between levels (the compute multiplier).

A run column (dataset, architecture, tokenizer, optimizer, study) whose levels get their own
values of the law parameters the user names (``group_params=``)::

    p_g = p + delta_g                    (p on a log scale: log E, log A0, log B0, ...)
    p_g = p * exp(delta_g)               (an exponent: alpha, beta, ...)
    sigma_g = sigma * exp(delta_g)       (with "sigma" among them: the noise scale per level)
    delta ~ ZeroSumNormal(tau_p)         (per parameter, over the column's levels)

``p`` is the population: the law of the average observed level (the deviations sum to zero,
as the offsets do), and a level the fit has not seen draws ``delta`` with sd ``tau_p sqrt(1 +
1/k)`` (k levels). Deviations are sampled non-centred (``delta = tau z``) unless every level
holds many runs (:data:`bayescale.model.scaling.CENTRED_MIN_RUNS`).

The answers between levels (:func:`group_draws`): per level the loss at the compute-optimal
allocation (the law's mean at the average hyperparameter level), N* and D*; the probability
that each level's loss at a budget is below the reference level's; and the **compute
multiplier**: the compute a level needs to reach the reference level's loss at budget C,
divided by C (below 1: the level is more compute-efficient). Between levels of one fit the
law's misfit past the runs is shared, so the comparison is made on the law alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from bayescale.data import lazy
from bayescale.model.terms import Offsets, level_draws, pooled_levels

pm = lazy.module("pymc")
pt = lazy.module("pytensor.tensor")

__all__ = ["LawGroups", "resolve_group_params", "group_draws", "parameter_differences",
           "multiplier_interval", "GROUP_TAU_PRIOR"]

#: Default prior of each grouped parameter's scale: a level's log E, log A0 or log B0 within
#: about 20% of the population's, an exponent within about 20% of it.
GROUP_TAU_PRIOR = {"dist": "HalfNormal", "sigma": 0.2}
#: Bisection steps of the compute multiplier (in log10 C, over +-8 decades: 1e-5 decades).
_BISECTIONS = 60
_SPAN = 8.0


def resolve_group_params(law, names: object) -> tuple[tuple[str, ...], bool]:
    """The law's sampled parameters that ``names`` (natural or sampled names: ``E`` or
    ``log_E``, ``A`` or ``log_A_ref``, ``alpha``) designate, and whether ``sigma`` (the noise
    scale) is among them; a ValueError naming an unknown one and the allowed names."""
    if isinstance(names, str) or not isinstance(names, Sequence) or not names:
        raise TypeError(f"group_params must be a non-empty list of law parameters, got "
                        f"{names!r}")
    natural = dict(zip(law.params, law.params))
    out, noise = [], False
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"group_params holds {name!r}, not a parameter name")
        if name == "sigma":
            noise = True
            continue
        for candidate in (name, f"log_{name}", f"log_{name}_ref"):
            if candidate in law.sampled:
                out.append(candidate)
                break
        else:
            raise ValueError(f"group_params names {name!r}, which law {law.name!r} does not "
                             f"have; it has {list(natural)} (sampled as {list(law.sampled)}) "
                             "and the noise scale 'sigma'")
    if len(set(out)) + noise != len(names):
        raise ValueError(f"group_params names a parameter twice: {list(names)}")
    return tuple(out), noise


def law_groups(column: str, levels: tuple, law, names: object, centred: object) -> LawGroups:
    """The :class:`LawGroups` of run column ``column`` (its ``levels``) for ``group_params``
    ``names``, sampled centred or not; a TypeError or ValueError naming the argument and the
    value."""
    if names is None:
        raise ValueError(f"group={column!r} needs group_params: the law parameters that differ "
                         f"by level, e.g. ['E', 'alpha'] (the law's are {list(law.params)})")
    if not isinstance(centred, bool):
        raise TypeError(f"group_centred must be True, False or None, got {centred!r}")
    params, noise = resolve_group_params(law, names)
    return LawGroups(column, levels, params, frozenset(params) & law.positive, centred=centred,
                     noise=noise)


@dataclass(frozen=True)
class LawGroups:
    """Per-level deviations of the law's sampled parameters ``params`` over the levels of
    run column ``column`` (module docstring); ``exponents``: those of ``params`` that are
    exponents (deviations multiply them)."""

    column: str
    levels: tuple
    params: tuple[str, ...]
    exponents: frozenset[str] = frozenset()
    centred: bool = False
    #: whether the noise scale differs by level too (``sigma`` in ``group_params``)
    noise: bool = False

    @property
    def grouped(self) -> tuple[str, ...]:
        """Every grouped parameter: the law's, then ``sigma`` with the noise."""
        return (*self.params, *(("sigma",) if self.noise else ()))

    def tau(self, param: str) -> str:
        return f"{self.column}_{param}_tau"

    def variable(self, param: str) -> str:
        """The posterior variable of ``param``'s deviations (one per level)."""
        return f"{self.column}_{param}"

    @property
    def names(self) -> list[str]:
        return [n for p in self.grouped for n in (self.tau(p), self.variable(p))]

    @property
    def positive(self) -> frozenset[str]:
        return frozenset(self.tau(p) for p in self.grouped)

    def default_priors(self) -> dict:
        """``<col>_<param>_tau ~ HalfNormal(0.2)`` (:data:`GROUP_TAU_PRIOR`) per parameter."""
        return {self.tau(p): dict(GROUP_TAU_PRIOR) for p in self.grouped}

    def index(self, values) -> np.ndarray:
        """Position of each value among the levels (-1 for a level the fit has not seen)."""
        return Offsets.index(self.levels, np.asarray(values))

    def apply(self, xp, p: dict, deviation: dict) -> dict:
        """The parameters ``p`` moved by ``deviation`` (per parameter, broadcasting)."""
        out = dict(p)
        for name, dev in deviation.items():
            out[name] = p[name] * xp.exp(dev) if name in self.exponents else p[name] + dev
        return out

    def graph(self, family, p: dict) -> dict:
        """The law's parameters per run, in the PyMC model: the population ``p`` moved by
        each run's level's deviations."""
        index = pm.Data(f"{self.column}_group_index", self.index(family.runs[self.column]),
                        dims="run")
        deviation = {name: self._deviation(family, name)[index] for name in self.params}
        return self.apply(pt, p, deviation)

    def _deviation(self, family, name: str):
        """The deviations of ``name`` over the levels, in the graph."""
        return pooled_levels(self.variable(name), family.prior(self.tau(name)), self.column,
                             self.centred)

    def run_sigma(self, family, sigma):
        """The noise scale of each run in the graph: ``sigma`` times its level's factor."""
        index = pm.modelcontext(None)[f"{self.column}_group_index"]
        return sigma * pt.exp(self._deviation(family, "sigma")[index])

    def sigma_factor(self, posterior, table) -> np.ndarray | float:
        """Each row's noise-scale factor per draw, (chain, draw, n): its level's; 1 for a
        level the fit has not seen or a table without the column (the population's)."""
        if not self.noise or table is None or self.column not in table:
            return 1.0
        index = self.index(table[self.column])
        dev = posterior[self.variable("sigma")].values[..., np.maximum(index, 0)]
        return np.exp(np.where(index >= 0, dev, 0.0))

    def deviations(self, posterior, index: np.ndarray, rng: np.random.Generator) -> dict:
        """Each parameter's deviation per draw at levels ``index`` (chain, draw, n): a known
        level's posterior, a new level's fresh draw (sd ``tau sqrt(1 + 1/k)``)."""
        return {name: level_draws(posterior, self.variable(name), self.tau(name), index,
                                  len(self.levels), rng) for name in self.params}

    def draws(self, posterior, p: dict, table, rng: np.random.Generator) -> dict:
        """The law's parameters per draw at the rows of ``table``: the population where the
        table lacks the column (the average observed level), else each row's level's."""
        if self.column not in table:
            return p
        return self.apply(np, p, self.deviations(posterior, self.index(table[self.column]),
                                                 rng))


# -- answers between levels -------------------------------------------------------------------
def _levels_of(fit, levels) -> list:
    groups = fit.model.groups
    if groups is None:
        raise ValueError("this fit has no group column (ScalingLaw(..., group=..., "
                         "group_params=[...]))")
    if levels is None:
        return list(groups.levels)
    levels = list(levels)
    unknown = [lv for lv in levels if lv not in groups.levels]
    if unknown:
        raise ValueError(f"levels {unknown!r} are not levels of group column "
                         f"{groups.column!r}; it has {list(groups.levels)}")
    return levels


def _loss_curve(model, theta: dict, log10_c: np.ndarray) -> np.ndarray:
    """The law's loss at compute ``10**log10_c``: at the compute-optimal allocation for a law
    in N and D, the law in C otherwise."""
    flops = 10.0 ** log10_c
    if model.law.has_optimum:
        return model.law.optimum(theta, flops,
                                 flops_per_param_token=model.flops_per_param_token)["loss_opt"]
    return np.exp(model.law.log_mean_sampled(
        np, model.law.sampled_from(theta, model.log_reference),
        {"flops": np.log(flops) - model.log_reference["flops"]}))


def _multiplier(model, theta: dict, target: np.ndarray, log10_c: np.ndarray) -> np.ndarray:
    """``C' / C`` with ``loss(C') = target`` (bisection in log10 C' within +-8 decades of C;
    inf where the level never reaches the target, 0 where it is below it 8 decades down)."""
    lo, hi = log10_c - _SPAN, log10_c + _SPAN
    lo, hi = np.broadcast_arrays(lo + 0 * target, hi + 0 * target)
    lo, hi = lo.copy(), hi.copy()
    with np.errstate(all="ignore"):
        for _ in range(_BISECTIONS):
            mid = (lo + hi) / 2
            above = _loss_curve(model, theta, mid) > target  # needs more compute
            lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
        out = 10.0 ** ((lo + hi) / 2 - log10_c)
        out = np.where(_loss_curve(model, theta, log10_c + _SPAN) > target, np.inf, out)
        return np.where(_loss_curve(model, theta, log10_c - _SPAN) <= target, 0.0, out)


def group_draws(fit, budgets, *, reference=None, levels=None,
                random_seed: int | None = None) -> xr.Dataset:
    """Per level of a fit's group column and budget, per draw: ``loss`` (the law's loss at the
    compute-optimal allocation, or at C for a law in compute), ``params_opt`` and
    ``tokens_opt`` (laws in N and D), and ``multiplier`` (the compute the level needs to reach
    the ``reference`` level's loss at C, over C); plus ``p_lower``, the probability that the
    level's loss at C is below the reference's (no draw axis). ``reference`` defaults to the
    first level. Returns a Dataset over (chain, draw, level, budget)."""
    from bayescale.model.points import check_budgets

    model = fit.model
    levels = _levels_of(fit, levels)
    reference = levels[0] if reference is None else reference
    _levels_of(fit, [reference])
    budgets = check_budgets(budgets)
    post, rng = fit.posterior, np.random.default_rng(random_seed)
    log10_c = np.log10(budgets)
    thetas = {lv: model.law_theta(post, level=lv, rng=rng) for lv in [reference, *levels]}
    target = _loss_curve(model, thetas[reference], log10_c)
    out = {"loss": [], "multiplier": []}
    optimum = model.law.has_optimum
    if optimum:
        out |= {"params_opt": [], "tokens_opt": []}
    for lv in levels:
        theta = thetas[lv]
        out["loss"].append(_loss_curve(model, theta, log10_c))
        out["multiplier"].append(_multiplier(model, theta, target, log10_c))
        if optimum:
            opt = model.law.optimum(theta, budgets,
                                    flops_per_param_token=model.flops_per_param_token)
            out["params_opt"].append(opt["params_opt"])
            out["tokens_opt"].append(opt["tokens_opt"])
    dims = ("chain", "draw", model.groups.column, "budget")
    coords = {"chain": post.chain, "draw": post.draw, model.groups.column: levels,
              "budget": budgets}
    data = {k: (dims, np.stack([np.broadcast_to(a, target.shape) for a in v], axis=2))
            for k, v in out.items()}
    ds = xr.Dataset(data, coords=coords, attrs={"reference": str(reference),
                                                "column": model.groups.column})
    ds["p_lower"] = (ds["loss"] < xr.DataArray(target, dims=("chain", "draw", "budget"))).mean(
        ("chain", "draw"))
    return ds


def multiplier_interval(between: xr.Dataset, level, prob: float):
    """Median and ``prob`` interval (lower, median, upper) of ``level``'s multiplier per
    budget in :func:`group_draws`' answer: quantiles of the draws themselves, not
    interpolated, since a multiplier is inf where the level never reaches the reference."""
    draws = between["multiplier"].sel({between.attrs["column"]: level}).values
    draws = draws.reshape(-1, draws.shape[-1])
    return np.quantile(draws, [(1 - prob) / 2, 0.5, (1 + prob) / 2], axis=0,
                       method="inverted_cdf")


def parameter_differences(fit, *, reference=None, levels=None,
                          random_seed: int | None = None) -> xr.Dataset:
    """Per level, per draw: each law parameter in natural units (``alpha``, ``E``, ...) less
    the ``reference`` level's (``delta_<name>``; a parameter that is not grouped can differ
    too, e.g. ``A`` when ``alpha`` is, as ``A0`` at the runs' mean N is what is shared). A
    Dataset over (chain, draw, level)."""
    model = fit.model
    levels = _levels_of(fit, levels)
    reference = levels[0] if reference is None else reference
    rng = np.random.default_rng(random_seed)
    post = fit.posterior
    ref = model.law_theta(post, level=reference, rng=rng)
    names = model.law.params
    data = {}
    for name in names:
        values = [model.law_theta(post, level=lv, rng=rng)[name] - ref[name] for lv in levels]
        data[f"delta_{name}"] = (("chain", "draw", model.groups.column),
                                 np.concatenate(values, axis=-1))
    return xr.Dataset(data, coords={"chain": post.chain, "draw": post.draw,
                                    model.groups.column: levels},
                      attrs={"reference": str(reference)})
