"""The next runs as the command line shows them: a table, ``design.csv`` and ``design.png``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bayescale.model.design import candidate_grid, default_candidates, design  # noqa: E402
from bayescale.data.readers import read_table  # noqa: E402
from bayescale.data.runs import run_flops  # noqa: E402
from bayescale.report.folders import staged_files  # noqa: E402

__all__ = ["plot_design", "run_design", "format_design"]


def plot_design(fit, chosen: pd.DataFrame, candidates: pd.DataFrame | None = None, *, ax=None):
    """Where the chosen runs sit beside the fitted runs: model size against compute.

    The fit's runs are grey dots, the candidates (if given) faint crosses, the chosen runs red
    stars numbered in the order they were picked, and the target (the compute-optimal N* at
    ``chosen.attrs["at"]``, where the fit has one) a diamond with its 90% interval.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    runs = fit.runs.assign(flops=run_flops(fit.runs))
    if candidates is not None:  # a table as given (params and tokens, say): FLOPs derived
        candidates = fit.model.points(candidates)
        ax.scatter(candidates["flops"], candidates["params"], marker="x", s=10, color="0.8",
                   label=f"candidates ({len(candidates)})")
    ax.scatter(runs["flops"], runs["params"], s=12, color="0.35", label=f"fitted runs ({len(runs)})")
    ax.scatter(chosen["flops"], chosen["params"], marker="*", s=120, color="tab:red",
               edgecolor="k", lw=0.5, zorder=3, label=f"designed runs ({len(chosen)})")
    # runs at one point (the same size and budget, other hyperparameters) share one label
    orders: dict[tuple[float, float], list[str]] = {}
    for order, (_, row) in enumerate(chosen.iterrows(), 1):
        orders.setdefault((row["flops"], row["params"]), []).append(str(order))
    for (flops, params), numbers in orders.items():
        ax.annotate(", ".join(numbers), (flops, params), xytext=(5, 4),
                    textcoords="offset points", fontsize=7)
    at = chosen.attrs.get("at")
    if at is not None and fit.model.has_optimum:
        draws = fit.optimal([at])["params_opt"].values.ravel()
        lo, mid, hi = np.quantile(draws, [0.05, 0.5, 0.95])
        ax.errorbar([at], [mid], yerr=[[mid - lo], [hi - mid]], fmt="D", color="tab:blue",
                    capsize=4, label=f"N* at the target {at:.3g} FLOPs (90% interval)")
    spent = chosen["flops"].sum()
    ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)",
           ylabel="model size N (parameters)",
           title=f"The next runs: {len(chosen)} runs, {spent:.3g} of "
                 f"{chosen.attrs.get('budget', spent):.3g} FLOPs")
    ax.legend(fontsize=7, loc="upper left")
    return ax


def format_design(chosen: pd.DataFrame) -> str:
    """The chosen runs as text, then each target's expected sd before and after."""
    with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 160,
                           "display.max_columns", 30):
        lines = [chosen.to_string()]
    before, after = chosen.attrs["sd_before"], chosen.attrs["sd_after"]
    lines.append("\nsd of each log target (the posterior now -> expected after these runs):")
    lines += [f"  {name:<16} {before[name]:.4g} -> {after[name]:.4g}" for name in before]
    return "\n".join(lines)


def run_design(fit, options: Mapping, out, *, source: Path | None = None,
               overwrite: bool = False) -> dict[str, Path]:
    """Design with ``options`` (``budget``, ``candidates`` (a table or a file) or
    ``grid_budgets`` or neither (:func:`bayescale.model.design.default_candidates`),
    ``target``, ``at``, ``max_runs``), print it, write ``design.csv`` and
    ``design.png`` into ``out`` (both replaced together, modes from the umask); returns their
    paths. Raises ``FileExistsError`` if they exist and ``overwrite`` is False."""
    names = {"design": "design.csv", "design_plot": "design.png"}
    with staged_files(out, names.values(), overwrite=overwrite) as temps:
        candidates = _candidates(fit, options, source)
        chosen = design(fit, candidates, budget=options["budget"], target=options.get("target"),
                        at=options.get("at"), max_runs=options.get("max_runs"))
        print(f"\nThe next runs: {len(chosen)} of {len(candidates)} candidates within "
              f"{chosen.attrs['budget']:.3g} FLOPs, ranked by the variance they remove from "
              f"{chosen.attrs['target']} (Bayes linear; gain per 1e18 FLOPs)")
        print(format_design(chosen))
        chosen.to_csv(temps["design.csv"], index_label="candidate")
        ax = plot_design(fit, chosen, candidates)
        ax.figure.savefig(temps["design.png"], format="png", dpi=110, bbox_inches="tight")
        plt.close(ax.figure)
    return {key: Path(out) / name for key, name in names.items()}


def _candidates(fit, options: Mapping, source: Path | None) -> pd.DataFrame:
    given, grid = options.get("candidates"), options.get("grid_budgets")
    if given is not None and grid is not None:
        raise ValueError("give at most one of candidates (a CSV of candidate runs) or "
                         f"grid_budgets (budgets for the sweep's own grid); got candidates="
                         f"{given!r}, grid_budgets={grid!r}")
    if grid is not None:
        return candidate_grid(fit, grid)
    if given is None:
        table = default_candidates(fit, budget=options["budget"], at=options.get("at"))
        print(f"candidates (default): {table['params'].nunique()} sizes "
              f"{table['params'].min():.3g}-{table['params'].max():.3g} at "
              f"{table['flops'].nunique()} budgets {table['flops'].min():.3g}-"
              f"{table['flops'].max():.3g} FLOPs, within the runs' tokens per parameter")
        return table
    if isinstance(given, pd.DataFrame):
        return given
    path = Path(given)
    if not path.is_absolute() and source is not None:
        path = source.parent / path
    return read_table(path)
