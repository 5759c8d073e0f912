"""Answers past where the runs are: an allocation or a configuration outside the runs' range.

A target budget past the largest run is what a scaling law is for, and how far it reaches is
reported beside every answer (the "past the runs" decades). What the runs say nothing about
directly is an *answer* outside their range: a compute-optimal N*, D* or D*/N* (or a
hyperparameter's optimum) beyond the sizes, token counts, tokens per parameter or values the
runs tried, or a configuration to predict with such inputs. There the answer rests on the
law's form alone. :func:`optimum_messages` and :func:`point_messages` name each such answer,
its value and the runs' range; :class:`ExtrapolationWarning` carries them in Python.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["ExtrapolationWarning", "optimum_messages", "point_messages", "run_range"]

#: An answer of the compute-optimal allocation -> (its name, the run column it is compared with).
OPTIMUM = {"params_opt": ("N*", "params"), "tokens_opt": ("D*", "tokens"),
           "tokens_per_param": ("D*/N*", "tokens_per_param")}
#: The inputs of a configuration compared with the runs, by name.
POINT_COLUMNS = ("params", "tokens", "tokens_per_param")
#: Decades from the nearest run's size and token count taken together (the larger of the two
#: differences in log10, minimised over runs) past which a configuration inside the runs'
#: range of each is still named: no run was near it.
JOINT_DECADES = 1.0


class ExtrapolationWarning(UserWarning):
    """An answer lies outside the range the runs cover (a size, a token count, tokens per
    parameter or a hyperparameter none of them reached): the law's form alone carries it."""


def run_range(runs: pd.DataFrame, column: str) -> tuple[float, float] | None:
    """The smallest and largest value of ``column`` over the runs (``tokens_per_param``:
    tokens / params), or None where the runs lack it."""
    values = _column(runs, column)
    if values is None or not np.isfinite(values).any():
        return None
    return float(np.nanmin(values)), float(np.nanmax(values))


def _column(table: pd.DataFrame, column: str) -> np.ndarray | None:
    if column == "tokens_per_param":
        if not {"params", "tokens"} <= set(table.columns):
            return None
        return table["tokens"].to_numpy(float) / table["params"].to_numpy(float)
    if column not in table.columns or not pd.api.types.is_numeric_dtype(table[column]):
        return None
    return table[column].to_numpy(float)


def _outside(value: float, span: tuple[float, float]) -> str | None:
    """"above"/"below" with the decades for ``value`` outside ``span``, else None."""
    lo, hi = span
    if not np.isfinite(value) or lo <= value <= hi:
        return None
    if value > hi:
        return f"{np.log10(value / hi):.2f} decades above"
    return f"{np.log10(lo / value):.2f} decades below"


def optimum_messages(runs: pd.DataFrame, answers: Mapping[str, np.ndarray], budgets,
                     prob: float = 0.9) -> list[str]:
    """One message per budget whose median N*, D*, D*/N* or hyperparameter optimum
    (``answers``: variable -> draws with the budget last; ``<column>_opt`` for a
    hyperparameter) lies outside the runs' range, naming each with its interval."""
    names = dict(OPTIMUM) | {var: (f"the optimum of {var[:-4]}", var[:-4]) for var in answers
                             if var.endswith("_opt") and var not in {*OPTIMUM, "loss_opt"}}
    out = []
    for i, budget in enumerate(np.atleast_1d(np.asarray(budgets, float))):
        parts = []
        for var, (name, column) in names.items():
            span = run_range(runs, column) if var in answers else None
            if span is None:
                continue
            draws = np.asarray(answers[var], float)[..., i].ravel()
            draws = draws[np.isfinite(draws)]  # a degenerate answer is warned about elsewhere
            if draws.size == 0:
                continue
            lo, mid, hi = np.quantile(draws, [(1 - prob) / 2, 0.5, (1 + prob) / 2])
            where = _outside(mid, span)
            if where:
                parts.append(f"{name} {mid:.3g} [{lo:.3g}, {hi:.3g}] is {where} the runs' "
                             f"{column} ({span[0]:.3g}-{span[1]:.3g})")
        if parts:
            out.append(f"at C = {budget:.3g} FLOPs the answer lies past the runs: "
                       f"{'; '.join(parts)}; there it rests on the law's form alone")
    return out


def point_messages(runs: pd.DataFrame, points: pd.DataFrame) -> list[str]:
    """One message per input (params, tokens, tokens per parameter) with points outside the
    runs' range, naming up to five of them by their row; and one for the points inside every
    one of those ranges that lie :data:`JOINT_DECADES` or more from every run's size and token
    count taken together (a large model trained long, where the runs held only large models
    trained briefly and small ones trained long)."""
    out, flagged = [], set()
    for column in POINT_COLUMNS:
        span, values = run_range(runs, column), _column(points, column)
        if span is None or values is None:
            continue
        rows = [i for i, v in enumerate(values) if _outside(v, span)]
        flagged.update(rows)
        if rows:
            named = ", ".join(f"{values[i]:.3g} (row {i})" for i in rows[:5])
            more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
            out.append(f"{len(rows)} of {len(values)} points have {column} past the runs' "
                       f"range {span[0]:.3g}-{span[1]:.3g}: {named}{more}; there the "
                       "prediction rests on the law's form alone")
    far = _joint_distance(runs, points)
    if far is not None:
        rows = [i for i, d in enumerate(far) if d >= JOINT_DECADES and i not in flagged]
        if rows:
            n, t = points["params"].to_numpy(float), points["tokens"].to_numpy(float)
            named = ", ".join(f"N {n[i]:.3g} with D {t[i]:.3g} ({far[i]:.2f} decades; row {i})"
                              for i in rows[:5])
            more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
            out.append(f"{len(rows)} of {len(far)} points lie {JOINT_DECADES:g} decade or more "
                       "from every run's params and tokens taken together, though inside the "
                       f"runs' range of each: {named}{more}; no run was near them, so the "
                       "prediction rests on the law's form alone")
    return out


def _joint_distance(runs: pd.DataFrame, points: pd.DataFrame) -> np.ndarray | None:
    """Decades from the nearest run's (params, tokens) for every point, or None where the
    runs or the points lack either."""
    columns = ("params", "tokens")
    if not (set(columns) <= set(runs.columns) and set(columns) <= set(points.columns)):
        return None
    from bayescale.model.terms import Discrepancy

    term = Discrepancy(columns)
    return np.atleast_1d(np.asarray(term.distance(points, term.ranges(runs)), float))
