"""The IsoFLOP view: the profiles with their parabolas, and the compute-optimal allocation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bayescale.inference.intervals import check_prob
from bayescale.model.fit import Fit
from bayescale.model.isoflop import IsoFlop
from bayescale.model.points import check_budgets

__all__ = ["plot_isoflop"]


# -- plotting --------------------------------------------------------------------------------
def plot_isoflop(fit: Fit, budgets=None, prob: float = 0.9, ax=None, *,
                 random_seed: int | None = 0):
    """Plot IsoFLOP profiles and the compute-optimal allocation with credible bands.

    Left: loss against model size for each budget (log x), the runs, the posterior-median
    parabola and the fitted minimum with its ``prob`` interval on N*. Right: N*(C) and
    D*(C) against compute, the per-budget optima, and the posterior median with a ``prob``
    band for a new budget (including budget scatter), extrapolated to ``budgets``.

    Parameters
    ----------
    fit
        A :class:`bayescale.Fit` of the IsoFLOP model.
    budgets
        Target budgets in FLOPs to extrapolate to and mark; ``None`` extends the bands to
        100x the largest fitted budget and marks nothing.
    prob
        Mass of the credible intervals and bands, in (0, 1).
    ax
        Two matplotlib Axes (left, right); ``None`` makes a new figure.
    random_seed
        Seed of the budget-level draws in the bands.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    TypeError
        If ``fit`` is not a Fit of the IsoFLOP model or ``ax`` is not a pair of Axes.
    ValueError
        For a ``prob`` outside (0, 1) or bad ``budgets``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    if not (isinstance(fit, Fit) and isinstance(fit.model, IsoFlop)):
        raise TypeError(f"fit must be a bayescale.Fit of the IsoFLOP model, got {fit!r}")
    check_prob(prob)
    targets = None if budgets is None else check_budgets(budgets)
    if ax is None:
        fig, ax = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    if not (isinstance(ax, (Sequence, np.ndarray)) and len(ax) == 2
            and all(isinstance(a, Axes) for a in ax)):
        raise TypeError(f"ax must be a pair of matplotlib Axes (left, right), got {ax!r}")
    _plot_profiles(fit, ax[0], prob)
    _plot_allocation(fit, ax[1], targets, prob, random_seed)
    return ax[0].figure


def _colours(n: int):
    import matplotlib as mpl

    return mpl.colormaps["viridis"](np.linspace(0.0, 0.9, n))


def _plot_profiles(fit: Fit, ax, prob: float) -> None:
    runs = fit.runs
    lo, hi = (1 - prob) / 2, (1 + prob) / 2
    for colour, budget in zip(_colours(len(fit.model.budgets)), fit.model.budgets):
        group = runs[np.isclose(runs["flops"], budget, rtol=1e-9)]
        ax.scatter(group["params"], group["loss"], s=14, color=colour, zorder=3)
        grid = np.geomspace(group["params"].min() / 1.3, group["params"].max() * 1.3, 100)
        ax.plot(grid, fit.model.profile(fit.posterior, grid, budget).median(("chain", "draw")), color=colour, lw=1.2,
                label=f"{budget:.0e} FLOPs")
        n_opt = fit.posterior["params_opt"].sel(budget=budget)
        loss_opt = fit.posterior["loss_opt"].sel(budget=budget)
        n_med, n_lo, n_hi = (float(n_opt.quantile(q)) for q in (0.5, lo, hi))
        ax.errorbar(n_med, float(loss_opt.median()), xerr=[[n_med - n_lo], [n_hi - n_med]],
                    fmt="D", ms=5, color=colour, mec="black", mew=0.6, capsize=2, zorder=4)
    ax.set_xscale("log")
    ax.set_xlabel("model size N (parameters)")
    ax.set_ylabel("final loss")
    ax.set_title(f"IsoFLOP profiles: fitted parabolas; ◆ = N* with {prob:.0%} interval")
    ax.legend(fontsize=7, title="budget C", title_fontsize=7, ncols=2)


def _plot_allocation(fit: Fit, ax, targets, prob: float, random_seed) -> None:
    k = fit.spec["flops_per_param_token"]
    top = fit.model.budgets.max() * 100 if targets is None else max(fit.model.budgets.max(), targets.max()) * 3
    grid = np.geomspace(fit.model.budgets.min() / 2, top, 120)
    log_n, _ = fit.model.optimum_lines(fit.posterior, grid, np.random.default_rng(random_seed),
                             pooled=True)
    log_d = np.log(grid / k) - log_n
    lo, hi = (1 - prob) / 2, (1 + prob) / 2
    a = fit.posterior["a"]
    own_n = fit.posterior["params_opt"]
    own_d = fit.model.budgets / k / own_n
    for label, draws, own, colour, slope in (
            (f"N* (a = {float(a.median()):.3f})", np.exp(log_n), own_n, "tab:blue", a),
            (f"D* (b = {float(1 - a.median()):.3f})", np.exp(log_d), own_d, "tab:orange", 1 - a)):
        flat = draws.reshape(-1, grid.size)
        q = np.quantile(flat, [lo, 0.5, hi], axis=0)
        ax.fill_between(grid, q[0], q[2], color=colour, alpha=0.2, lw=0)
        ax.plot(grid, q[1], color=colour, label=f"{label}, {prob:.0%} band for a new budget")
        med = own.median(("chain", "draw")).values
        err = np.abs(own.quantile([lo, hi], dim=("chain", "draw")).values - med)
        ax.errorbar(fit.model.budgets, med, yerr=err, fmt="o", ms=4, color=colour, mec="black",
                    mew=0.5, capsize=2)
    if targets is not None:
        _mark_targets(fit, ax, targets, prob, random_seed)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel("compute-optimal N* (parameters), D* (tokens)")
    ax.set_title("compute-optimal allocation; dashed = target budgets")
    ax.legend(fontsize=7, loc="upper left")


def _mark_targets(fit: Fit, ax, targets, prob: float, random_seed) -> None:
    """N* and D* at the target budgets with their intervals, and a box with the numbers."""
    lo, hi = (1 - prob) / 2, (1 + prob) / 2
    opt = fit.optimal(targets, random_seed=random_seed)
    text = [f"median [{prob:.0%} interval]"]
    for c in targets:
        ax.axvline(c, color="grey", ls="--", lw=0.8)
        text.append(f"C = {c:.0e} FLOPs:")
        for var, name, colour in (("params_opt", "N*", "tab:blue"),
                                  ("tokens_opt", "D*", "tab:orange")):
            draws = opt[var].sel(budget=c)
            med, low, high = (float(draws.quantile(q)) for q in (0.5, lo, hi))
            ax.errorbar(c, med, yerr=[[med - low], [high - med]], fmt="s", ms=5,
                        color=colour, mec="black", mew=0.6, capsize=3, zorder=4)
            text.append(f"  {name} = {med:.3g} [{low:.3g}, {high:.3g}]")
    ax.text(0.98, 0.03, "\n".join(text), transform=ax.transAxes, fontsize=7, ha="right",
            va="bottom", ma="left", family="monospace",
            bbox={"fc": "white", "ec": "0.8", "alpha": 0.9})
