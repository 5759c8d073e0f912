"""Figures of fitted scaling laws (matplotlib; ArviZ for sampler diagnostics).

Every function takes an optional ``ax`` (or returns a new figure), labels its axes with units,
uses log scales where the data span decades, marks the target budgets and shades the range
covered by the runs, so that the widening of the credible band past the data is visible.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    FormatStrFormatter,
    LogFormatterSciNotation,
    LogLocator,
)

from bayescale.inference.intervals import check_prob  # noqa: E402
from bayescale.data.curves import CURVE, LR_LEFT  # noqa: E402
from bayescale.data.runs import require_columns  # noqa: E402
from bayescale.inference.trees import group  # noqa: E402
from bayescale.model.fit import Fit  # noqa: E402
from bayescale.model.groups import multiplier_interval  # noqa: E402
from bayescale.model.points import decades_past  # noqa: E402
from bayescale.model.recommend import best_levels, level_name, level_shift  # noqa: E402

__all__ = ["plot_law", "plot_optimal", "plot_ranks", "plot_offsets", "plot_checks",
           "plot_params", "plot_curves", "plot_multiplier"]


def _grid(fit, budgets, n: int = 60) -> np.ndarray:
    """Compute budgets for a curve: ``n`` spaced evenly in log from under the smallest run to
    past the largest budget (about ten a decade: the bands are smooth), and the budgets."""
    flops = fit.runs["flops"].to_numpy()
    low, high = float(flops.min()), float(flops.max())
    if budgets is not None and len(budgets):
        high = max(high, float(np.max(budgets)))
    extra = np.asarray(budgets if budgets is not None else [], float)
    return np.unique(np.concatenate([np.geomspace(low / 1.5, high * 1.5, n), extra]))


def _quantiles(draws: np.ndarray, prob: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flat = draws.reshape(-1, draws.shape[-1])
    lo, mid, hi = np.quantile(flat, [(1 - prob) / 2, 0.5, (1 + prob) / 2], axis=0)
    return lo, mid, hi


def _plain_ticks(axis) -> None:
    """Loss axes span less than a decade: label log ticks as 2.5, 3, 4 rather than 4x10^0."""
    axis.set_major_formatter(FormatStrFormatter("%.3g"))
    axis.set_minor_formatter(FormatStrFormatter("%.3g"))


def _mark(ax, fit, budgets) -> None:
    """The runs' range of compute and each target budget."""
    flops = fit.runs["flops"]
    ax.axvspan(flops.min(), flops.max(), color="0.92", zorder=0, label="range of the runs")
    for i, budget in enumerate(budgets or []):
        ax.axvline(budget, color="tab:red", ls="--", lw=1,
                   label="target budget" if i == 0 else None)


def _reach_axis(ax, fit) -> None:
    """A top axis in decades past the largest run: how far each answer reaches (call after
    the log scale is set, which would reset its ticks)."""
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

    top, decades = float(fit.runs["flops"].max()), np.arange(-6, 7)
    reach = ax.secondary_xaxis("top")
    reach.xaxis.set_major_locator(FixedLocator(top * 10.0 ** decades))
    reach.xaxis.set_major_formatter(FixedFormatter([f"{d:+d}" if d else "0" for d in decades]))
    reach.xaxis.set_minor_locator(NullLocator())
    reach.set_xlabel("decades past the largest run", fontsize=8)
    reach.tick_params(labelsize=7)


def plot_law(fit, budgets=None, *, prob: float = 0.9, ax=None):
    """Runs (loss against compute) with the fitted law and its credible band, extrapolated.

    For the chinchilla law the curve is the loss at the compute-optimal allocation,
    L(N*(C), D*(C)); for laws in compute it is mu(C). The darker band is the mean curve's
    ``prob`` interval, the lighter one a new run's.
    """
    budgets = list(budgets) if budgets is not None else []
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 5))
    runs = fit.runs
    grid = _grid(fit, budgets)
    mean, new, label = _law_curves(fit, grid)
    _mark(ax, fit, budgets)
    lo, mid, hi = _quantiles(new, prob)
    ax.fill_between(grid, lo, hi, color="tab:orange", alpha=0.12, lw=0)
    ax.plot(grid, lo, color="tab:orange", lw=0.9, ls="--")
    ax.plot(grid, hi, color="tab:orange", lw=0.9, ls="--",
            label=f"{prob:.0%} interval of a new run's loss")
    lo, mid, hi = _quantiles(mean, prob)
    ax.fill_between(grid, lo, hi, color="tab:blue", alpha=0.4, lw=0,
                    label=f"{prob:.0%} interval of the mean loss")
    ax.plot(grid, mid, color="tab:blue", lw=1.5, label=label)
    _scatter_runs(ax, runs)
    if budgets:
        at = np.searchsorted(grid, budgets)
        ax.errorbar(grid[at], mid[at], yerr=[mid[at] - lo[at], hi[at] - mid[at]], fmt="o",
                    color="tab:red", ms=4, capsize=3, zorder=4,
                    label=f"mean loss at target, {prob:.0%} interval")
    ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)",
           ylabel="final loss (nats/token)", title="Runs and the fitted law, extrapolated")
    _reach_axis(ax, fit)
    _plain_ticks(ax.yaxis)
    # below the axes: nothing drawn (the target lines, the bands) runs through it
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2,
              frameon=False)
    return ax


def _law_curves(fit, grid: np.ndarray):
    """The mean and new-run loss draws along ``grid`` of compute, and the curve's label: at
    the compute-optimal allocation for a law in N and D, mu(C) for a law in compute; with
    offsets, at the most probably best level of each (the level of the targets table)."""
    best = best_levels(fit)
    levels = {c: [lv] * grid.size for c, lv in best.items()}
    if fit.model.has_optimum:
        points = fit.optimal(grid, random_seed=0)
        mean = (points["loss_opt"] * np.exp(level_shift(fit, best))).transpose(
            "chain", "draw", "budget").values
        label = "loss at compute-optimal N*, D*"
    else:
        mean = fit.predict({"flops": grid, **levels}, random_seed=0)["loss"].values
        label = f"law {fit.law.name}: {fit.law.formula}"
    # a new run: the mean times one noise draw per posterior draw, the same along the grid
    # (a fresh draw per grid point would make the band's edges jagged)
    noise = fit.model.noise_draws(fit.posterior, mean.shape[:2] + (1,),
                                  np.random.default_rng(0))
    with np.errstate(over="ignore"):
        new = mean * np.exp(noise)
    if best:
        label += f", at {level_name(best)}"
    return mean, new, label


def _scatter_runs(ax, runs: pd.DataFrame) -> None:
    """The runs' losses against compute, coloured by N where the runs have it."""
    if "params" in runs:
        sc = ax.scatter(runs["flops"], runs["loss"], c=runs["params"], norm=LogNorm(), s=12,
                        cmap="viridis", edgecolor="none", zorder=3)
        plt.colorbar(sc, ax=ax, label="parameters N")
    else:
        ax.scatter(runs["flops"], runs["loss"], s=12, color="k", zorder=3, label="runs")


def plot_optimal(fit, budgets=None, *, prob: float = 0.9, ax=None):
    """Compute-optimal N*(C) and D*(C) with credible bands, beside the runs' N and D."""
    budgets = list(budgets) if budgets is not None else []
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 5))
    grid = _grid(fit, budgets)
    opt = fit.optimal(grid, random_seed=0)  # the draws of plot_law's curve (kept by the fit)
    _mark(ax, fit, budgets)
    for var, color, name in (("params_opt", "tab:purple", "N* (parameters)"),
                             ("tokens_opt", "tab:green", "D* (tokens)")):
        lo, mid, hi = _quantiles(opt[var].values, prob)
        ax.fill_between(grid, lo, hi, color=color, alpha=0.3, lw=0)
        ax.plot(grid, mid, color=color, label=f"{name}, median and {prob:.0%} interval")
    runs = fit.runs
    ax.scatter(runs["flops"], runs["params"], s=8, color="tab:purple", alpha=0.4, label="runs: N")
    ax.scatter(runs["flops"], runs["tokens"], s=8, color="tab:green", alpha=0.4, label="runs: D")
    minima = fit.model.profile_minima(fit.posterior)
    if len(minima):  # where N* follows the drift of the runs' own profiles from the law
        ax.scatter(minima["flops"], minima["params_opt"], s=36, marker="D", color="white",
                   edgecolor="black", zorder=3, label="N* of the runs' own isoFLOP profiles")
    ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)",
           ylabel="parameters / tokens", title="Compute-optimal allocation")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2,
              frameon=False)  # below the axes, off the runs and the bands
    return ax


def plot_multiplier(fit, budgets=None, *, reference=None, prob: float = 0.9, ax=None):
    """The compute multiplier of each level of a fit's group column against compute: the
    compute a level needs to reach the ``reference`` level's loss (default the first level)
    at C, over C (:func:`bayescale.model.groups.group_draws`), median and ``prob`` band;
    below 1 the level is the more compute-efficient. A level that never reaches the
    reference's loss at some C has no band there."""
    if fit.model.groups is None:
        raise ValueError("this fit has no group column (ScalingLaw(..., group=..., "
                         "group_params=[...]))")
    budgets = list(budgets) if budgets is not None else []
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 5))
    grid = _grid(fit, budgets)
    between = fit.groups(grid, reference=reference, random_seed=0)
    column = fit.model.groups.column
    _mark(ax, fit, budgets)
    for i, level in enumerate(between[column].values):
        lo, mid, hi = multiplier_interval(between, level, prob)
        color = f"C{i}"
        shown = np.isfinite(lo) & np.isfinite(hi) & (lo > 0)
        ax.fill_between(grid[shown], lo[shown], hi[shown], color=color, alpha=0.25, lw=0)
        ax.plot(grid[np.isfinite(mid)], mid[np.isfinite(mid)], color=color,
                label=f"{column} = {level}")
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.set(xscale="log", yscale="log", xlabel="training compute C of the reference (FLOPs)",
           ylabel="compute multiplier C' / C",
           title=f"Compute to reach {between.attrs['reference']}'s loss "
                 f"(median, {prob:.0%} interval)")
    ax.legend(fontsize=8, frameon=False)
    return ax


def plot_ranks(fit, var_names=None, *, bins: int = 20, prob: float = 0.99):
    """Rank histograms of the chains, one panel per scalar parameter (every one the summary
    reports: the law's, ``sigma``, ``nu``, the discrepancy's): flat when the chains agree.

    All draws are ranked together; each chain's ranks are counted in ``bins`` equal bins (a
    step line per chain). Where the chains sample the same distribution, each count is
    Binomial(draws, 1 / bins): the grey band holds all of a panel's counts (every bin of every
    chain) with probability ``prob`` (Bonferroni: each count's central ``1 - (1 - prob) /
    (chains * bins)`` interval), the dashed line is their mean. The title gives each
    parameter's R-hat.
    """
    import arviz_stats as azs
    from scipy import stats

    post = fit.model.summary_variables(fit.posterior)
    names = list(var_names or [v for v in post.data_vars if post[v].ndim == 2])
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    ncols = min(3, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.8 * ncols, 2.5 * nrows + 0.9),
                             squeeze=False, layout="constrained")
    rhat = azs.rhat(post[names])
    edges = np.linspace(0.5, chains * draws + 0.5, bins + 1)
    miss = (1 - prob) / (chains * bins)  # a panel's counts all inside with probability prob
    low, high = stats.binom.ppf([miss / 2, 1 - miss / 2], draws, 1 / bins)
    for i, (ax, name) in enumerate(zip(axes.flat, names)):
        ranks = stats.rankdata(post[name].values.reshape(chains, draws), axis=None)
        ax.axhspan(low, high, color="0.88", lw=0,
                   label=f"{prob:.0%} band of a panel's counts when the chains agree")
        ax.axhline(draws / bins, color="0.4", lw=0.8, ls="--", label="uniform")
        for chain, ranks_of in enumerate(ranks.reshape(chains, draws)):
            ax.stairs(np.histogram(ranks_of, edges)[0], edges, baseline=None, lw=1.1,
                      label=f"chain {chain}")
        ax.set_title(f"{name}   R-hat {float(rhat[name]):.3f}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(bottom=0)
        if i % ncols == 0:
            ax.set_ylabel("draws per bin", fontsize=8)
        if i >= len(names) - ncols:
            ax.set_xlabel("rank among all draws", fontsize=8)
    for ax in axes.flat[len(names):]:
        fig.delaxes(ax)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6),
               fontsize=8, frameon=False)
    fig.suptitle(f"Chain rank plots ({chains} chains x {draws} draws, {bins} bins): flat and "
                 "inside the band when the chains agree", fontsize=10)
    return fig


def plot_offsets(fit, *, prob: float = 0.9):
    """Forest plot of the hyperparameter offsets on log loss (one panel per offset column).

    Each level's posterior median and ``prob`` interval; levels left of 0 beat the average level.
    The most probably best level, at which every answer of the report is given, is in red.
    """
    columns = fit.hyperparameter_offsets
    if not columns:
        raise ValueError("this fit has no hyperparameter offsets (offsets=[...])")
    fig, axes = plt.subplots(1, len(columns), figsize=(4.5 * len(columns), 3.5), squeeze=False)
    best = best_levels(fit)
    for ax, col in zip(axes[0], columns):
        offset = fit.offset(col)
        draws = offset.values.reshape(-1, offset.sizes[col])
        lo, mid, hi = np.quantile(draws, [(1 - prob) / 2, 0.5, (1 + prob) / 2], axis=0)
        y = np.arange(draws.shape[1])
        ax.hlines(y, lo, hi, color="tab:blue", lw=2)
        ax.plot(mid, y, "o", color="tab:blue")
        chosen = [str(v) for v in offset[col].values].index(str(best[col]))
        ax.plot(mid[chosen], y[chosen], "o", color="tab:red", ms=8, zorder=3,
                label=f"{col}={best[col]}: most probably best, the answers' level")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
        ax.axvline(0, color="0.5", lw=1, ls=":")
        ax.set_yticks(y, [str(v) for v in offset[col].values])
        ax.set(xlabel="offset on log loss (0.01 = 1% higher loss)", ylabel=col,
               title=f"{col}: median and {prob:.0%} interval")
    fig.tight_layout()
    return fig


def plot_checks(fit, *, prob: float = 0.9):
    """Posterior predictive check (observed vs predicted loss of each run) and LOO-PIT (ArviZ)."""
    import arviz_stats as azs
    import xarray as xr

    runs = fit.runs
    new = fit.predict(runs, kind="new_run", random_seed=0)["loss"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    lo, mid, hi = _quantiles(new.values, prob)
    observed = runs["loss"].to_numpy()
    inside = (observed >= lo) & (observed <= hi)
    left.errorbar(mid, observed, xerr=[mid - lo, hi - mid], fmt="none", ecolor="0.75", lw=0.8)
    left.scatter(mid[inside], observed[inside], s=8, color="tab:blue",
                 label=f"inside the {prob:.0%} interval ({inside.mean():.0%} of runs)")
    left.scatter(mid[~inside], observed[~inside], s=10, color="tab:red", label="outside")
    span = [min(observed.min(), mid.min()), max(observed.max(), mid.max())]
    left.plot(span, span, color="k", lw=0.8)
    left.set(xscale="log", yscale="log", xlabel="predicted loss of the run (median, new run)",
             ylabel="observed loss", title="Posterior predictive check")
    _plain_ticks(left.xaxis)
    _plain_ticks(left.yaxis)
    left.legend(fontsize=8)
    with np.errstate(divide="ignore"):  # Cauchy-like new runs (nu ~ 1) can underflow to 0
        log_new = np.log(new.values)
    pp = xr.Dataset({"log_loss": (("chain", "draw", "run"), log_new)},
                     coords={"run": group(fit.idata, "observed_data")["run"].values})
    checked = xr.DataTree.from_dict({
        "posterior": fit.posterior, "posterior_predictive": pp,
        **{g: group(fit.idata, g) for g in ("observed_data", "log_likelihood")}})
    pit = np.sort(azs.loo_pit(checked, var_names="log_loss")["log_loss"].values)
    _plot_pit_ecdf(right, pit, prob)
    fig.tight_layout()
    return fig


def _plot_pit_ecdf(ax, pit: np.ndarray, prob: float) -> None:
    """The ECDF of LOO-PIT values minus the uniform's, with a pointwise ``prob`` band of the
    ECDF of as many uniform draws (the binomial's normal approximation, smooth): inside the
    band when calibrated."""
    from scipy import stats

    n, grid = pit.size, np.linspace(0, 1, 201)
    ecdf = np.searchsorted(pit, grid, side="right") / n
    # the binomial's spread about the uniform, smooth (its normal approximation): the exact
    # binomial quantiles minus a straight line would draw a sawtooth of 1/n teeth
    half = stats.norm.ppf((1 + prob) / 2) * np.sqrt(grid * (1 - grid) / n)
    ax.fill_between(grid, -half, half, color="0.85",
                    label=f"{prob:.0%} band of a calibrated model")
    ax.step(grid, ecdf - grid, where="post", color="tab:blue", label=f"LOO-PIT ECDF ({n} runs)")
    ax.axhline(0, color="k", lw=0.8)
    ax.set(title="LOO-PIT (inside the band when calibrated)",
           xlabel="LOO probability integral transform", ylabel="ECDF - uniform")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2,
              frameon=False)  # below the axes, off the curve


# -- Kaplan's views ----------------------------------------------------------------------------
def _check_view(fit, runs, prob: float, columns) -> pd.DataFrame:
    if not isinstance(fit, Fit):
        raise TypeError(f"fit must be a bayescale.Fit, got {type(fit).__name__}")
    if not fit.law.has_optimum:
        raise ValueError(f"this view needs a law in N and D (such as 'chinchilla'); the fit's "
                         f"law is {fit.law.name!r} ({fit.law.formula})")
    check_prob(prob)
    runs = fit.runs if runs is None else runs
    if not isinstance(runs, pd.DataFrame):
        raise TypeError(f"runs must be a pandas DataFrame, got {type(runs).__name__}")
    require_columns(runs, columns, why="this view")
    return runs


def _law_band(fit, params, tokens, prob: float):
    """Median and ``prob`` interval of the law's mean loss (the average observed level of every
    offset)."""
    loss = fit.predict({"params": params, "tokens": tokens}, kind="mean")["loss"].values
    return _quantiles(loss, prob)


def plot_params(fit, runs=None, *, prob: float = 0.9, levels: int = 5, ax=None):
    """Kaplan's view in model size: loss against parameters N, coloured by training compute.

    Each run is a dot coloured by its compute ``C = k N D`` (k = the fit's
    ``flops_per_param_token``, 6 by default, so that dots and curves use the law's own
    compute); over them, for ``levels`` compute budgets spanning the runs, the fitted law's
    mean loss along N at that fixed compute (``D = C / (k N)``: the IsoFLOP curves), with its
    ``prob`` band. N is what the run table counts (non-embedding parameters where it counts
    those, as Kaplan et al. do).

    Parameters
    ----------
    fit
        A :class:`bayescale.Fit` of the chinchilla law.
    runs
        The runs to draw; the fitted runs (``fit.runs``) if None. Other runs (e.g. held-out
        larger ones) show how the law extrapolates.
    prob
        Mass of the bands.
    levels
        Number of compute budgets drawn as curves (log-spaced over the runs' compute).
    ax
        A matplotlib Axes; a new figure if None.

    Returns
    -------
    matplotlib.axes.Axes
    """
    runs = _check_view(fit, runs, prob, ("params", "tokens", "loss"))
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ValueError(f"levels must be a positive integer, got {levels!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 5))
    k = fit.spec["flops_per_param_token"]
    compute = k * runs["params"].to_numpy() * runs["tokens"].to_numpy()
    norm = LogNorm(compute.min(), compute.max())
    cmap = plt.get_cmap("plasma")
    params = runs["params"].to_numpy()
    grid = np.geomspace(params.min() / 1.5, params.max() * 1.5, 80)
    budgets = (np.geomspace(compute.min(), compute.max(), levels) if levels > 1
               else [float(np.median(compute))])
    for budget in budgets:
        lo, mid, hi = _law_band(fit, grid, budget / (k * grid), prob)
        ax.fill_between(grid, lo, hi, color=cmap(norm(budget)), alpha=0.15, lw=0)
        ax.plot(grid, mid, color=cmap(norm(budget)), lw=1.3)
    sc = ax.scatter(params, runs["loss"], c=compute, cmap=cmap, norm=norm, s=22,
                    edgecolor="k", linewidth=0.4, zorder=3)
    plt.colorbar(sc, ax=ax, label=f"training compute C = {k:g} N D (FLOPs)")
    handles = [Line2D([], [], marker="o", ls="", color="0.5", markeredgecolor="k", label="runs"),
               Line2D([], [], color="0.3", lw=1.3,
                      label=f"fitted law at fixed C: median, {prob:.0%} band")]
    ax.legend(handles=handles, fontsize=8, loc="lower left")
    ax.set(xscale="log", yscale="log", xlabel="parameters N",
           ylabel="loss (nats/token)", title="Loss against model size, by compute")
    ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))  # label 2x and 5x, not all 8
    ax.xaxis.set_minor_formatter(LogFormatterSciNotation(labelOnlyBase=False))
    _plain_ticks(ax.yaxis)
    return ax


def _law_path(of_size: pd.DataFrame, x: str) -> pd.DataFrame:
    """Where to draw the law for one model size: tokens (and ``x``) spanning its checkpoints."""
    if x == "tokens":
        tokens = of_size["tokens"].to_numpy(dtype=float)
        return pd.DataFrame({"tokens": np.geomspace(tokens.min(), tokens.max(), 60)})
    return of_size.sort_values(x).drop_duplicates(x)[[x, "tokens"]]


def plot_curves(fit, curves, *, x: str = "tokens", run: str = "run", prob: float = 0.9,
                ax=None):
    """Kaplan's view along training: learning curves coloured by model size, with the law.

    One line per training run (loss against ``x``: tokens seen, or a step column), coloured
    by its parameters N; for each model size, the fitted law's mean loss over the tokens its
    runs have seen (dashed, same colour, with its ``prob`` band) is drawn for a typical run
    (offset 0). Against a step column the law follows the size's checkpoints, so the runs of
    one size should share their tokens per step. Given a :func:`bayescale.learning_curves`
    table (``lr_left`` and ``curve``) and a :class:`bayescale.LearningCurves` fit, each run's
    fitted curve is drawn instead: the law, the schedule term and the run's offset. Against
    the law alone, the curves sit above it where the runs' learning rate has not yet decayed:
    see :func:`bayescale.checkpoints`.

    Parameters
    ----------
    fit
        A :class:`bayescale.Fit` of the chinchilla law.
    curves
        One row per checkpoint: ``params``, ``tokens``, ``loss``, the ``run`` column and ``x``.
    x
        The column along the horizontal axis: ``"tokens"`` or a step count (e.g. ``"step"``).
    run
        The column that identifies each training run.
    prob
        Mass of the law's band.
    ax
        A matplotlib Axes; a new figure if None.

    Returns
    -------
    matplotlib.axes.Axes
    """
    curves = _check_view(fit, curves, prob, ("params", "tokens", "loss", run, x))
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 5))
    sizes = np.unique(curves["params"].to_numpy(dtype=float))
    norm = LogNorm(sizes.min(), sizes.max() if sizes.size > 1 else sizes.min() * 10)
    cmap = plt.get_cmap("viridis")
    scheduled = {LR_LEFT, CURVE} <= set(curves.columns)
    for _, one in curves.sort_values([run, x]).groupby(run, sort=False):
        colour = cmap(norm(one["params"].iloc[0]))
        ax.plot(one[x], one["loss"], color=colour, lw=1, alpha=0.8)
        if scheduled:  # a learning-curves table: the run's fitted curve along its schedule
            loss = fit.predict(one[["params", "tokens", "final_tokens", LR_LEFT, CURVE]],
                               kind="mean")["loss"]
            ax.plot(one[x], np.median(loss.values.reshape(-1, len(one)), axis=0), ls="--",
                    color=colour, lw=1.2)
    for size in ([] if scheduled else sizes):
        along = _law_path(curves[curves["params"] == size], x)
        tokens = along["tokens"].to_numpy(dtype=float)
        lo, mid, hi = _law_band(fit, np.full(tokens.size, size), tokens, prob)
        ax.fill_between(along[x], lo, hi, color=cmap(norm(size)), alpha=0.2, lw=0)
        ax.plot(along[x], mid, color=cmap(norm(size)), ls="--", lw=1.5)
    plt.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="parameters N")
    fitted = ("fitted: law + schedule term + the run's offset (median)" if scheduled
              else f"fitted law, typical run: median, {prob:.0%} band")
    handles = [Line2D([], [], color="0.4", lw=1, label="runs (one line each)"),
               Line2D([], [], color="0.4", lw=1.5, ls="--", label=fitted)]
    ax.legend(handles=handles, fontsize=8, loc="upper right")
    ax.set(xscale="log", yscale="log",
           xlabel="tokens seen D" if x == "tokens" else f"{x} (training steps)",
           ylabel="loss (nats/token)", title="Learning curves by model size, with the law")
    _plain_ticks(ax.yaxis)
    return ax
