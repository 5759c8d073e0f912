"""The law's allocation against the runs' own isoFLOP profiles.

A law fitted to every run places N* where its form says, and the form is fitted mostly by the
runs far from the optimum: its N*(C) can drift from where the runs of each budget have their
minimum (Hoffmann et al. 2022 found their approach 3 disagreeing with approaches 1 and 2). When
the runs hold isoFLOP profiles (several sizes at one budget, with a minimum inside them), that
drift is measured inside the runs and carried past them:

- :func:`profile_optima` finds each budget's minimum by a parabola in log N of the loss, as
  the studies do (approach 2);
- :func:`allocation_shift` regresses, per posterior draw, the measured minima's distance from
  the law's N* on log compute (a line: offset and trend per decade, with the profiles' own
  scatter), a conjugate Bayesian linear regression (Normal-inverse-gamma), and draws the shift
  of log10 N* at new budgets from its predictive distribution.

With fewer than :data:`MIN_PROFILES` profiles there is nothing to measure and no shift.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["MIN_RUNS", "MIN_PROFILES", "profile_optima", "allocation_shift"]

#: Runs of distinct sizes a budget needs to count as a profile.
MIN_RUNS = 5
#: Profiles needed to measure the law's drift (an offset, a trend and their scatter).
MIN_PROFILES = 3
#: Runs whose log10 FLOPs lie within this of their neighbour's share a budget (runs planned at
#: one budget land a little apart when FLOPs are counted from N and D).
SAME_BUDGET_DECADES = 0.01
#: The regression's prior, in decades of N: the profiles' scatter about the line has prior
#: mean :data:`PRIOR_SCATTER` (inverse-gamma, shape 2); offset and trend per decade of compute
#: each Normal(0, :data:`PRIOR_COEFFICIENT`).
PRIOR_SCATTER = 0.05
PRIOR_COEFFICIENT = 0.3
_SHAPE = 2.0


def _budgets(log_c: np.ndarray, budgets=None) -> np.ndarray:
    """A budget label (log10 FLOPs) per run: the nearest of ``budgets`` within 0.12 decades,
    or runs chained by :data:`SAME_BUDGET_DECADES` gaps labelled by their median."""
    if budgets is not None:
        nominal = np.log10(np.asarray(budgets, float))
        near = np.abs(log_c[:, None] - nominal[None, :])
        return np.where(near.min(1) < 0.12, nominal[near.argmin(1)], np.nan)
    order = np.argsort(log_c)
    group = np.cumsum(np.concatenate([[False], np.diff(log_c[order]) > SAME_BUDGET_DECADES]))
    group = group[:log_c.size]  # no runs, no groups
    label = np.empty_like(log_c)
    for g in np.unique(group):
        members = order[group == g]
        label[members] = np.median(log_c[members])
    return label


def profile_optima(runs: pd.DataFrame, loss=None, *, budgets=None,
                   min_runs: int = MIN_RUNS) -> pd.DataFrame:
    """Each budget's measured N*: the minimum of a parabola in log N of the loss over that
    budget's runs, kept where it opens upward and its minimum lies inside the sizes run.

    ``loss``: the losses to use (default ``runs["loss"]``; a model with hyperparameter terms
    passes the losses with those terms removed). ``budgets``: the profiles' nominal budgets,
    where the runs' FLOPs scatter about them; by default runs of (nearly) equal FLOPs.
    Returns columns ``flops``, ``params_opt`` and ``runs``.
    """
    flops = runs["flops"].to_numpy(float)
    params = runs["params"].to_numpy(float)
    loss = runs["loss"].to_numpy(float) if loss is None else np.asarray(loss, float)
    label = _budgets(np.log10(flops), budgets)
    rows = []
    for b in np.unique(label[np.isfinite(label)]):
        at = label == b
        x = np.log(params[at])
        if np.unique(np.round(x, 6)).size < min_runs:
            continue
        c2, c1, _ = np.polyfit(x, loss[at], 2)
        if c2 <= 0:
            continue
        x_opt = -c1 / (2 * c2)
        if x.min() < x_opt < x.max():
            rows.append({"flops": float(10 ** b), "params_opt": float(np.exp(x_opt)),
                         "runs": int(at.sum())})
    return pd.DataFrame(rows, columns=["flops", "params_opt", "runs"])


def allocation_shift(law_at_profiles: np.ndarray, measured: np.ndarray,
                     profile_flops: np.ndarray, flops: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """Draws of the shift of log10 N* at ``flops`` that brings the law's allocation to the
    runs' profiles: ``(draws, len(flops))`` in decades, or zeros with fewer than
    :data:`MIN_PROFILES` profiles.

    ``law_at_profiles``: the law's log10 N* per draw at the profiles' budgets
    ``(draws, profiles)``; ``measured``: the profiles' log10 N*. Per draw, the residuals
    ``measured - law`` are regressed on log10 compute (centred on the profiles) under a
    Normal-inverse-gamma prior; the shift is a draw of the line plus the profiles' scatter
    at each budget (a new budget's profile scatters as the others do).
    """
    law_at_profiles = np.atleast_2d(np.asarray(law_at_profiles, float))
    n_draws, n_prof = law_at_profiles.shape
    out_shape = (n_draws, np.size(flops))
    if n_prof < MIN_PROFILES:
        return np.zeros(out_shape)
    x_prof = np.log10(np.asarray(profile_flops, float))
    centre = x_prof.mean()
    design = np.column_stack([np.ones(n_prof), x_prof - centre])
    new = np.column_stack([np.ones(np.size(flops)),
                           np.log10(np.asarray(flops, float)).reshape(-1) - centre])
    resid = np.asarray(measured, float)[None, :] - law_at_profiles  # (draws, profiles)
    # Normal-inverse-gamma: b | s2 ~ N(0, s2 V0), s2 ~ IG(a0, b0)
    v0_inv = np.eye(2) * (PRIOR_SCATTER / PRIOR_COEFFICIENT) ** 2
    a0, b0 = _SHAPE, (_SHAPE - 1) * PRIOR_SCATTER ** 2
    precision = v0_inv + design.T @ design
    vn = np.linalg.inv(precision)
    mn = resid @ design @ vn  # (draws, 2): V_n X' r per draw (m0 = 0)
    an = a0 + n_prof / 2
    bn = b0 + 0.5 * (np.sum(resid ** 2, 1) - np.einsum("di,ij,dj->d", mn, precision, mn))
    s2 = bn / rng.gamma(an, 1.0, size=n_draws)
    coef = mn + np.sqrt(s2)[:, None] * (rng.standard_normal((n_draws, 2))
                                        @ np.linalg.cholesky(vn).T)
    line = coef @ new.T
    return line + np.sqrt(s2)[:, None] * rng.standard_normal(out_shape)
