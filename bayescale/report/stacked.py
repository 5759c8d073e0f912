"""A recipe's ``[stack]``: the recipe's model fitted under more laws, and the answer at its
target budgets as their stacking mixture (:func:`bayescale.stack`), written beside the main
fit's results as ``stacked.csv`` (the weights and the mixture's answer) and ``stacked/<law>.nc``
(each further law's posterior, for ``bayescale compare`` and ``bayescale predict``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayescale.inference.intervals import interval
from bayescale.inference.progress import phase

__all__ = ["STACK_FILE", "STACK_FOLDER", "stack_fits", "stack_table", "write_stack", "stack_section",
           "format_stack"]

#: The stacked answer's table and the folder of the further laws' posteriors.
STACK_FILE, STACK_FOLDER = "stacked.csv", "stacked"


def stack_fits(fits: dict, method: str, fit_kwargs: dict):
    """The :class:`bayescale.analysis.stack.Stack` of the recipe's fits (the ``[model]``
    law's first) by ``[stack] method``; ``lfo``'s refits take the fits' sampler settings."""
    from bayescale.analysis.stack import stack

    extra = {} if method != "lfo" else {k: fit_kwargs[k] for k in ("draws", "tune", "chains",
                                                                 "random_seed")
                                        if fit_kwargs.get(k) is not None}
    with phase(f"stacking {len(fits)} laws by {method}"):
        return stack(fits, method=method, **extra)


def stack_table(stacked, budgets, *, prob: float = 0.9, random_seed: int = 0) -> pd.DataFrame:
    """One row per budget: the mixture's loss of a new run there and, where the laws have a
    compute-optimal allocation, N*, D* and the loss at the optimum (median and the ``prob``
    interval each), and each law's weight (``weight_<law>``); without budgets, one row of the
    weights."""
    budgets = np.asarray(budgets, dtype=float)
    if budgets.size == 0:
        table = pd.DataFrame({f"weight_{n}": [float(w)] for n, w in stacked.weights.items()})
        table.attrs.update(prob=prob, method=stacked.table.attrs.get("method"))
        return table
    loss = interval(stacked.loss_at(budgets, random_seed=random_seed)["loss"], prob=prob)
    table = pd.DataFrame({"budget": budgets, "loss": loss["median"].to_numpy(),
                          "loss_lower": loss["lower"].to_numpy(),
                          "loss_upper": loss["upper"].to_numpy()})
    if any(f.model.has_optimum for f in stacked.fits.values()):
        opt = interval(stacked.optimal(budgets, random_seed=random_seed), prob=prob)
        for var in ("params_opt", "tokens_opt", "loss_opt"):
            rows = opt[opt["variable"] == var].set_index("budget").loc[budgets]
            table[var] = rows["median"].to_numpy()
            table[f"{var}_lower"] = rows["lower"].to_numpy()
            table[f"{var}_upper"] = rows["upper"].to_numpy()
    for name, weight in stacked.weights.items():
        table[f"weight_{name}"] = float(weight)
    table.attrs.update(prob=prob, method=stacked.table.attrs.get("method"))
    return table


def write_stack(stacked, table: pd.DataFrame, folder) -> dict[str, Path]:
    """``stacked.csv`` and ``stacked/<law>.nc`` (every law but the main fit's) in ``folder``."""
    folder = Path(folder)
    paths = {"stacked": folder / STACK_FILE}
    table.to_csv(paths["stacked"], index=False)
    (folder / STACK_FOLDER).mkdir()
    for name, fit in list(stacked.fits.items())[1:]:
        paths[f"stacked/{name}"] = folder / STACK_FOLDER / f"{name}.nc"
        fit.save(paths[f"stacked/{name}"])
    return paths


def stack_section(stacked, table: pd.DataFrame) -> str:
    """The report's section on the stacked answer: the comparison, the weights and, per
    budget, the mixture's answer (markdown)."""
    method = stacked.table.attrs.get("method")
    laws = ", ".join(f"`{n}`" for n in stacked.fits)
    lines = ["", "## Stacked answer", "",
             f"The model fitted under {laws}, stacked by `{method}` (`bayescale.stack`): each "
             "draw of the answer comes from one law, picked with its weight. The further laws' "
             f"posteriors are in `{STACK_FOLDER}/`, the answer in `{STACK_FILE}`.", "",
             "| law | weight | elpd | elpd_diff |", "|---|---:|---:|---:|"]
    for name, row in stacked.table.iterrows():
        lines.append(f"| `{name}` | {row['weight']:.3g} | {row['elpd']:.4g} | "
                     f"{row['elpd_diff']:.4g} |")
    if "budget" in table:
        prob = table.attrs.get("prob", 0.9)
        cols = [c for c in ("loss", "params_opt", "tokens_opt", "loss_opt") if c in table]
        lines += ["", f"Median [{prob:.0%} interval] (loss: a new run at the budget):", "",
                  "| budget | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for _, row in table.iterrows():
            cells = [f"{row[c]:.4g} [{row[c + '_lower']:.4g}, {row[c + '_upper']:.4g}]"
                     for c in cols]
            lines.append(f"| {row['budget']:.3g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_stack(table: pd.DataFrame) -> str:
    """The stacked answer (:func:`stack_table`) for the terminal: the weights, then per budget
    the mixture's loss of a new run and, where the laws have one, the loss at the optimum, N*
    and D* with their intervals."""
    weights = {c[len("weight_"):]: table[c].iloc[0] for c in table if c.startswith("weight_")}
    prob = table.attrs.get("prob", 0.9)
    lines = ["Stacked answer (weights " + ", ".join(f"{n} {w:.3g}" for n, w in weights.items())
             + f"; median [{prob:.0%} interval]):"]
    labels = {"loss": "loss (new run)", "loss_opt": "loss at optimum",
              "params_opt": "N* (params)", "tokens_opt": "D* (tokens)"}
    for _, row in table.iterrows():
        lines.append(f"C = {row['budget']:.3g} FLOPs")
        for var, label in labels.items():
            if var in table:
                lines.append(f"  {label:<22} {row[var]:>10.4g}  [{row[f'{var}_lower']:.4g}, "
                             f"{row[f'{var}_upper']:.4g}]")
    return "\n".join(lines)
