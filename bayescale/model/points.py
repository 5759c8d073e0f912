"""Validation of the points and budgets at which users ask for predictions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bayescale.data.runs import _derive, check_positive_column

__all__ = ["check_budgets", "points_table", "decades_past", "MIN_INPUT"]

#: The smallest budget (FLOPs), model size or token count a prediction is asked at: below one
#: parameter, token or FLOP the law's powers underflow or explode into no answer.
MIN_INPUT = 1.0


def check_budgets(budgets, *, argument: str = "budgets") -> np.ndarray:
    """Target compute budgets as a 1-D float array; each must be a finite number of at least
    :data:`MIN_INPUT` (1 FLOP)."""
    values = np.atleast_1d(np.asarray(budgets, dtype=object))
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"{argument} must be a number or a non-empty list of numbers, got {budgets!r}")
    for value in values:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
            raise TypeError(f"{argument} must hold numbers (FLOPs), got {value!r}")
        try:
            number = float(value)  # Python ints beyond int64 (10**23) defeat np.isfinite
        except OverflowError:
            number = float("inf")
        if not np.isfinite(number) or number <= 0:
            raise ValueError(f"{argument} must hold finite positive FLOPs, got {value!r}")
        if number < MIN_INPUT:
            raise ValueError(f"{argument} must hold at least {MIN_INPUT:g} FLOP, got {value!r}")
    return values.astype(float)


def points_table(points, inputs: Sequence[str], flops_per_param_token: float, *,
                 why: str) -> pd.DataFrame:
    """Points as a DataFrame holding ``inputs`` (deriving the missing one of N, D, C); ``why``
    names what needs them (e.g. "law 'chinchilla'") in the error for a missing one."""
    if isinstance(points, Mapping):
        points = pd.DataFrame({k: np.atleast_1d(v) for k, v in points.items()})
    if not isinstance(points, pd.DataFrame):
        raise TypeError(f"points must be a DataFrame or a dict of arrays, got {type(points).__name__}")
    if len(points) == 0:
        raise ValueError("points is empty")
    known = {c: _at_least_one(points, c) for c in ("params", "tokens", "flops")
             if c in points.columns}
    if len(known) == 2:
        derived = _derive(known, flops_per_param_token)
        _at_least_one(pd.DataFrame({derived: known[derived]}, index=points.index), derived,
                      why=" (derived from C = k N D)")
    missing = [x for x in inputs if x not in known]
    if missing:
        raise ValueError(f"points need column(s) {missing} for {why}; "
                         f"they have {list(points.columns)}")
    out = points.reset_index(drop=True).copy()
    for name, values in known.items():
        out[name] = values
    return out


def _at_least_one(points: pd.DataFrame, column: str, why: str = "") -> np.ndarray:
    """Column ``column`` of ``points``: finite, positive and at least :data:`MIN_INPUT`."""
    values = check_positive_column(points, column, argument="points")
    small = np.flatnonzero(~(values >= MIN_INPUT))
    if small.size:
        raise ValueError(f"points column {column!r}{why} must be at least {MIN_INPUT:g}; row "
                         f"{points.index[small[0]]!r} has {float(values[small[0]])!r}")
    return values


def decades_past(runs: pd.DataFrame, column: str, values) -> np.ndarray:
    """How far ``values`` of ``column`` (flops, params or tokens) lie past the largest run:
    ``log10(value / max over the runs)``; 0 or less is inside the sweep's range.

    >>> runs = pd.DataFrame({"flops": [1e18, 1e20]})
    >>> decades_past(runs, "flops", [1e21, 1e23]).round(6).tolist()
    [1.0, 3.0]
    """
    with np.errstate(divide="ignore", invalid="ignore"):  # a degenerate 0 or inf: -inf, inf
        return np.log10(np.asarray(values, dtype=float) / float(runs[column].max()))

