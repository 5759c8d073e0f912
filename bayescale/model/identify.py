"""Where the runs cannot say: optima that the runs near the largest budget do not bracket.

An answer past the runs for N* (and so D*) or for a continuous hyperparameter's optimum rests
on two things: the law's form, and runs on both sides of that optimum near the budgets
asked about. When every run within :data:`TOP_DECADES` of the largest budget lies on one side
of the law's optimum at its own budget (a sweep whose largest budgets hold only small models,
say; :data:`TOP_SHARE` of the runs at least), the optimum past the runs follows from the form alone: the sweep has not seen the bowl
there. :func:`unidentified` names each such optimum, so that the answer can say so.
"""

from __future__ import annotations

import numpy as np

from bayescale.data.runs import run_flops

__all__ = ["TOP_DECADES", "TOP_SHARE", "unidentified"]

#: The runs "near the top budget": those within this many decades of the largest budget, or
#: the largest :data:`TOP_SHARE` of the runs by compute where that holds more.
TOP_DECADES = 0.5
TOP_SHARE = 0.1


def unidentified(fit) -> list[str]:
    """One message per optimum of ``fit`` (N*, each continuous hyperparameter's) that the runs
    near the largest budget do not bracket; empty when every one is bracketed.

    Examples
    --------
    A fit whose runs near the top budget straddle N* returns ``[]``; see
    ``tests/test_identify.py``.
    """
    runs = fit.runs
    flops = run_flops(runs)
    top = flops >= min(flops.max() / 10 ** TOP_DECADES, np.quantile(flops, 1 - TOP_SHARE)) \
        * (1 - 1e-9)
    budgets = np.unique(flops[top])
    where = np.searchsorted(budgets, flops[top])
    out = []
    if fit.model.has_optimum and "params" in runs.columns:
        optimum = fit.optimal(budgets, random_seed=0)["params_opt"]
        out += _one_sided("N*", "params", runs["params"].to_numpy(float)[top],
                          _median(optimum)[where], budgets)
    for col in fit.continuous:
        optimum = fit.optimal_hyperparameters(budgets)[col]
        out += _one_sided(f"the optimum of {col}", col, runs[col].to_numpy(float)[top],
                          _median(optimum)[where], budgets)
    return out


def _median(draws) -> np.ndarray:
    return draws.median(("chain", "draw")).to_numpy()


def _one_sided(name: str, column: str, values: np.ndarray, optimum: np.ndarray,
               budgets: np.ndarray) -> list[str]:
    """The message for ``name`` if every run's ``values`` lies on one side of ``optimum``."""
    below, above = values < optimum, values > optimum
    if not (below.all() or above.all()):
        return []
    side, edge = ("below", values.max()) if below.all() else ("above", values.min())
    span = (f"{budgets[0]:.3g} FLOPs" if budgets.size == 1
            else f"{budgets[0]:.3g}-{budgets[-1]:.3g} FLOPs")
    return [f"{name} is not identified by the runs near the top budget: all {values.size} runs "
            f"at {span} have {column} {side} the law's optimum at their budget ("
            f"{'largest' if side == 'below' else 'smallest'} {edge:.3g} against "
            f"{np.median(optimum):.3g}); past the runs, {name} follows from the law's form "
            "alone, and its interval does not show that"]
