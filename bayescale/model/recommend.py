"""What to train at a target budget: size, tokens, hyperparameters and shapes, with intervals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.inference.intervals import interval
from bayescale.model.points import check_budgets
from bayescale.data.runs import add_shape_columns, plain

__all__ = ["Recommendation", "recommend", "best_levels", "level_shift", "level_name"]

_SHAPE = ("d_model", "num_layers")


@dataclass(frozen=True)
class Recommendation:
    """The answer of :func:`recommend` at one budget.

    Attributes
    ----------
    budget, prob
        The compute budget (FLOPs) and the interval probability.
    table
        One row per quantity (``loss``, ``params_opt``, ``tokens_opt``, ``tokens_per_param``, the
        optimum of each continuous hyperparameter): median, lower, upper.
    levels
        Per offset column and level: the posterior probability that the level is the best
        (lowest offset), and the offset's median and interval.
    shapes
        Concrete shapes (d_model, num_layers[, num_heads]) with 12 num_layers d_model^2 within
        a factor 1.5 of the median N* and d_model / num_layers inside the range the runs
        covered, ranked by the median predicted loss, with intervals; None when the runs have
        no d_model/num_layers columns or the law has no N.
    """

    budget: float
    prob: float
    table: pd.DataFrame
    levels: pd.DataFrame
    shapes: pd.DataFrame | None

    def __str__(self) -> str:
        lines = [f"Recommendation at C = {self.budget:.3g} FLOPs (median [{self.prob:.0%} interval])"]
        if len(self.levels):
            lines.append(f"  at level {level_name(self.best)}")
        for _, r in self.table.iterrows():
            lines.append(f"  {r['quantity']:<22} {r['median']:>10.4g}  [{r['lower']:.4g}, {r['upper']:.4g}]")
        return "\n".join(lines + self.extra_lines())

    @property
    def best(self) -> dict:
        """The most probably best level of each offset column, ``{column: level}``."""
        return {col: group.loc[group["p_best"].idxmax(), "level"]
                for col, group in self.levels.groupby("column", sort=False)}

    def extra_lines(self) -> list[str]:
        """What the answer table does not hold: the best levels and shapes near N*."""
        return self.level_lines() + self.shape_lines()

    def level_lines(self) -> list[str]:
        """Each offset column's most probably best level and that probability."""
        lines = []
        if len(self.levels):
            lines.append("  best levels (posterior probability of being best):")
            for col, group in self.levels.groupby("column", sort=False):
                best = group.loc[group["p_best"].idxmax()]
                lines.append(f"    {col:<20} {best['level']!s:>10}  P(best) = {best['p_best']:.2f}")
        return lines

    def shape_lines(self) -> list[str]:
        """Concrete shapes near N* with their predicted loss (none without shape columns)."""
        lines = []
        if self.shapes is not None and len(self.shapes):
            lines.append("  shapes near N* (by median predicted loss):")
            with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 120):
                lines += ["    " + line for line in self.shapes.to_string(index=False).splitlines()]
        return lines


def recommend(fit, budget, *, prob: float = 0.9, top: int = 5) -> Recommendation:
    """Recommend what to train at ``budget`` FLOPs, with ``prob`` credible intervals.

    - the loss-optimal N* and D* (chinchilla law; per posterior draw),
    - the best level of each categorical offset, with its posterior probability of being best,
    - the optimum of each continuous hyperparameter at ``budget``,
    - the loss of that recommended configuration (mean law),
    - up to ``top`` concrete Transformer shapes whose 12 num_layers d_model^2 is near N*.
    """
    (budget,) = check_budgets(budget, argument="budget")
    levels, best = _levels(fit, prob)
    draws = {}
    if fit.model.has_optimum:
        opt = fit.optimal([budget], random_seed=0).isel(budget=0)
        draws["loss"] = opt["loss_opt"] * np.exp(level_shift(fit, best))
        draws.update({k: opt[k] for k in ("params_opt", "tokens_opt", "tokens_per_param")})
    else:
        point = {"flops": [budget], **{c: [lv] for c, lv in best.items()}}
        draws["loss"] = fit.predict(point)["loss"].isel(point=0)
    if fit.continuous:
        hyper = fit.optimal_hyperparameters([budget]).isel(budget=0)
        draws.update({f"{c}_opt": hyper[c] for c in hyper.data_vars})
    table = interval(xr.Dataset({k: v.drop_vars([c for c in v.coords if c not in ("chain", "draw")])
                                 for k, v in draws.items()}), prob=prob)
    table = table.rename(columns={"variable": "quantity"})[["quantity", "median", "lower", "upper"]]
    shapes = _shapes(fit, budget, draws, best, prob, top)
    return Recommendation(float(budget), prob, table, levels, shapes)


def best_levels(fit) -> dict:
    """The level of each offset column most probably best (lowest offset): ``{column:
    level}``; empty for a fit without offsets. Every answer with offsets is at these levels."""
    return _levels(fit, 0.9)[1]


def level_shift(fit, best: dict):
    """The draws of the log-loss offset of the levels ``best`` (0.0 for none), over (chain,
    draw): multiply a loss at the average level by ``exp`` of it for the loss at them."""
    shift = sum((fit.offset(c).sel({c: lv}) for c, lv in best.items()), 0.0)
    if isinstance(shift, xr.DataArray):
        shift = shift.drop_vars([c for c in shift.coords if c not in ("chain", "draw")])
    return shift


def level_name(best: dict) -> str:
    """``best`` as ``"column=level, ..."``, the name of the level an answer is for."""
    return ", ".join(f"{col}={level}" for col, level in best.items())


def _levels(fit, prob: float) -> tuple[pd.DataFrame, dict]:
    rows, best = [], {}
    for col in fit.hyperparameter_offsets:
        offset = fit.offset(col)
        winner = offset.argmin(dim=col)
        p_best = [(winner == i).mean().item() for i in range(offset.sizes[col])]
        stats = interval(offset, prob=prob)
        for i, level in enumerate(offset[col].values):
            row = stats.iloc[i]
            rows.append({"column": col, "level": plain(level),
                         "p_best": p_best[i], "median": row["median"], "lower": row["lower"],
                         "upper": row["upper"]})
        best[col] = plain(offset[col].values[int(np.argmax(p_best))])
    return pd.DataFrame(rows, columns=["column", "level", "p_best", "median", "lower", "upper"]), best


def _shapes(fit, budget, draws, best, prob, top) -> pd.DataFrame | None:
    runs = fit.runs
    if not fit.model.has_optimum or not set(_SHAPE) <= set(runs.columns):
        return None
    n_star = float(draws["params_opt"].median())
    candidates = []
    for layers in range(1, 257):
        width = max(64, int(round(np.sqrt(n_star / (12 * layers)) / 64)) * 64)
        params = 12.0 * layers * width**2
        if abs(np.log(params / n_star)) < np.log(1.5):
            candidates.append({"d_model": width, "num_layers": layers, "params": params})
    if not candidates:
        return None
    shapes = add_shape_columns(pd.DataFrame(candidates).drop_duplicates(
        subset=["d_model", "num_layers"]))
    # stay inside the widths-per-layer the sweep tried: outside them the shape term extrapolates
    seen = runs["d_model"] / runs["num_layers"]
    shapes = shapes[shapes["aspect_ratio"].between(seen.min(), seen.max())]
    if shapes.empty:
        return None
    if "num_heads" in runs.columns:
        shapes["num_heads"] = best.get("num_heads", None) or (shapes["d_model"] // 64).clip(lower=1)
    for col, level in best.items():
        if col not in shapes.columns:
            shapes[col] = level
    shapes = add_shape_columns(shapes)
    shapes["tokens"] = budget / (fit.spec["flops_per_param_token"] * shapes["params"])
    loss = fit.predict(shapes, kind="mean", random_seed=0)["loss"]
    stats = interval(loss, prob=prob)
    shapes = shapes.reset_index(drop=True)
    shapes["loss"], shapes["loss_lower"], shapes["loss_upper"] = (
        stats["median"].to_numpy(), stats["lower"].to_numpy(), stats["upper"].to_numpy())
    keep = [c for c in ("d_model", "num_layers", "num_heads", "params", "tokens", "loss",
                        "loss_lower", "loss_upper") if c in shapes.columns]
    return shapes.sort_values("loss").head(top)[keep].reset_index(drop=True)
