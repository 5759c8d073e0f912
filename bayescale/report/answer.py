"""The answer at target budgets as tables, and the results folder a fit writes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from bayescale.data import lazy
from bayescale.data.runs import run_flops
from bayescale.model.discrepancy import backtest_summary
from bayescale.model.groups import multiplier_interval
from bayescale.model.identify import unidentified
from bayescale.model.reach import optimum_messages
from bayescale.inference.intervals import interval
from bayescale.inference.progress import phase
from bayescale.model.points import check_budgets, decades_past
from bayescale.model.recommend import best_levels, level_name, level_shift
from bayescale.report.drawing import figure_makers, save_figure
from bayescale.report.folders import pause_for_tests, staged_folder

__all__ = ["targets_table", "format_targets", "format_answer", "write_results"]


def targets_table(fit, budgets, *, prob: float = 0.9) -> pd.DataFrame:
    """Median and ``prob`` interval of the answer at each budget, one row per budget.

    A model with a compute-optimal allocation (a law in N and D, IsoFLOP): the loss at the
    optimum and N*, D*, D*/N*. Laws in compute: the mean loss mu(C) and a new run's loss at C. With continuous
    hyperparameters, also their optimum ``<col>_opt`` at each budget.
    Columns are ``budget`` then ``<quantity>``, ``<quantity>_lower``, ``<quantity>_upper``,
    then how far each answer reaches past the runs, in decades (``log10`` of the ratio to the
    largest run): ``decades_flops`` for the budget and, with an optimum, ``decades_params`` and
    ``decades_tokens`` for the median N* and D*; last, ``warning``: the optima that the runs
    near the top budget do not bracket (:func:`bayescale.model.identify.unidentified`) and
    the answers past the runs' range (:func:`bayescale.model.reach.optimum_messages`; empty
    when none), also in ``attrs["warnings"]``.

    With hyperparameter offsets every loss is at the most probably best level of each offset
    column (:func:`bayescale.model.recommend.best_levels`), named in a ``level`` column
    (``"dataset=c4"``) after ``budget``; N* and D* do not depend on the level.

    With a group column (``group=``), one row per budget and level of it (named in the
    group's column), each level's answer, and ``multiplier`` (with its interval): the compute
    that level needs to reach the first level's loss at the budget, over the budget
    (:func:`bayescale.model.groups.group_draws`), and ``p_lower``, the probability that its
    loss there is below the first level's.
    """
    budgets = check_budgets(budgets)
    groups = fit.model.groups
    identified = unidentified(fit)  # the population's optima: once, not per level
    if groups is None:
        return _targets(fit, budgets, prob, None, identified)
    between = fit.groups(budgets, random_seed=0)
    tables = []
    for level in groups.levels:
        table = _targets(fit, budgets, prob, level, identified)
        table.insert(1, groups.column, level)
        lo, mid, hi = multiplier_interval(between, level, prob)
        at = table.columns.get_loc("decades_flops")
        for offset, (name, values) in enumerate((("multiplier", mid), ("multiplier_lower", lo),
                                                 ("multiplier_upper", hi))):
            table.insert(at + offset, name, values)
        table.insert(at + 3, "p_lower",
                     between["p_lower"].sel({groups.column: level}).values)
        tables.append(table)
    out = pd.concat(tables, ignore_index=True)
    out.attrs = {"prob": prob, "reference": between.attrs["reference"], "group": groups.column,
                 "warnings": identified + [w for t in tables for w in t.attrs["warnings"]
                                           if w not in identified]}
    return out


def _targets(fit, budgets: np.ndarray, prob: float, group_level,
             identified: list[str]) -> pd.DataFrame:
    """:func:`targets_table`'s rows for one level of the group column (None: the model's
    population, or a model without one); ``identified``: :func:`unidentified`'s messages."""
    best = best_levels(fit)
    groups = fit.model.groups
    if fit.model.has_optimum:
        ds = fit.optimal(budgets, random_seed=0, level=group_level)
        ds["loss_opt"] = ds["loss_opt"] * np.exp(level_shift(fit, best))
    else:
        points = {"flops": budgets, **{c: [lv] * budgets.size for c, lv in best.items()}}
        if group_level is not None:
            points[groups.column] = [group_level] * budgets.size
        ds = fit.predict(points, random_seed=0)[["loss"]].rename(loss="loss_mean")
        ds["loss_new_run"] = fit.predict(points, kind="new_run", random_seed=0)["loss"]
        ds = ds.rename(point="budget").drop_vars(list(points)).assign_coords(budget=budgets)
    if fit.continuous:
        hyper = fit.optimal_hyperparameters(budgets)
        ds = ds.assign({f"{c}_opt": hyper[c] for c in hyper.data_vars})
    tidy = interval(ds, prob=prob)
    wide = tidy.pivot(index="budget", columns="variable", values=["median", "lower", "upper"])
    out = pd.DataFrame({"budget": budgets})
    if best:
        out["level"] = level_name(best)
    for var in ds.data_vars:
        out[var] = wide[("median", var)].to_numpy()
        out[f"{var}_lower"] = wide[("lower", var)].to_numpy()
        out[f"{var}_upper"] = wide[("upper", var)].to_numpy()
    out.attrs["prob"] = prob
    out = _with_reach(out, fit.runs)
    warnings = optimum_messages(fit.runs, ds, budgets, prob=prob)
    if group_level is not None:  # name the level each warning is about
        warnings = [f"{groups.column} = {group_level}: {w}" for w in warnings]
    warnings = identified + warnings
    out["warning"] = " | ".join(warnings)
    out.attrs["warnings"] = warnings
    return out


def _with_reach(table: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    if "flops" not in runs:  # a run table built by hand, with N and D only
        runs = runs.assign(flops=run_flops(runs))
    table["decades_flops"] = decades_past(runs, "flops", table["budget"])
    for column, var in (("params", "params_opt"), ("tokens", "tokens_opt")):
        if var in table and column in runs:
            table[f"decades_{column}"] = decades_past(runs, column, table[var])
    return table


def format_targets(table: pd.DataFrame) -> str:
    """Human-readable lines: ``quantity  median [lower, upper]`` per budget; a value that is
    not finite (a degenerate answer) reads "not finite", never nan or inf."""
    names = {"loss_opt": "loss at optimum", "params_opt": "N* (params)",
             "tokens_opt": "D* (tokens)", "tokens_per_param": "D*/N*",
             "loss_mean": "loss (mean law)", "loss_new_run": "loss (new run)"}
    names = names | {c: f"optimum of {c[:-4]}" for c in table.columns
                     if c.endswith("_opt") and c not in names and f"{c}_lower" in table}
    lines = []
    group = table.attrs.get("group")
    for _, row in table.iterrows():
        lines.append(f"C = {row['budget']:.3g} FLOPs")
        if group is not None:
            lines.append(f"  {group:<18} {row[group]}")
        if "level" in table:
            lines.append(f"  {'at level':<18} {row['level']} (the most probably best)")
        for var, label in names.items():
            if var in table:
                lines.append(f"  {label:<18} {_number(row[var], '>10.4g')}  "
                             f"[{_number(row[var + '_lower'], '.4g')}, "
                             f"{_number(row[var + '_upper'], '.4g')}]")
        if group is not None:
            lines.append(f"  {'compute multiplier':<18} {_number(row['multiplier'], '>10.4g')}  "
                         f"[{_number(row['multiplier_lower'], '.4g')}, "
                         f"{_number(row['multiplier_upper'], '.4g')}] x C to reach "
                         f"{table.attrs.get('reference', 'the first level')}'s loss "
                         f"(P lower loss {row['p_lower']:.2f})")
        reach = [f"{name} {_number(row[col], '+.2f')}" for col, name in
                 (("decades_flops", "C"), ("decades_params", "N*"), ("decades_tokens", "D*"))
                 if col in table]
        if reach:
            lines.append(f"  {'past the runs':<18} {', '.join(reach)} decades")
    return "\n".join(lines + _warning_lines(table))


def _warning_lines(table: pd.DataFrame) -> list[str]:
    return [f"WARNING: {w}" for w in table.attrs.get("warnings", [])]


def _number(value: float, spec: str) -> str:
    """``value`` formatted by ``spec``, or "not finite" (never a bare nan or inf)."""
    return format(value, spec) if np.isfinite(value) else format("not finite", spec.rstrip(
        "gef+.0123456789") or "")


def format_answer(fit, budgets=None, *, prob: float = 0.9,
                  table: pd.DataFrame | None = None) -> str:
    """The answer at ``budgets`` as text: :func:`format_targets` of the targets table (or of
    ``table``, one :func:`targets_table` already made, so that the terminal, ``targets.csv``
    and ``report.md`` show the same numbers); with hyperparameters in the model (offsets or
    continuous), then what :meth:`bayescale.Fit.recommend` adds per budget (the levels'
    probabilities of being best, shapes near N*)."""
    if table is None:
        table = targets_table(fit, budgets, prob=prob)
    lines = [format_targets(table)]
    if fit.hyperparameter_offsets or fit.continuous:
        recs = [fit.recommend(b, prob=table.attrs.get("prob", prob)) for b in table["budget"]]
        lines += recs[0].level_lines()
        for rec in (r for r in recs if r.shape_lines()):
            lines += [f"C = {rec.budget:.3g} FLOPs, what to train:", *rec.shape_lines()]
    return "\n".join(lines)


def _markdown(table: pd.DataFrame) -> str:
    cols = [str(c) for c in table.columns]
    rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in table.iterrows():
        rows.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(rows)


def _cell(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_results(fit, out, *, budgets, prob: float = 0.9, title: str = "bayescale fit",
                  overwrite: bool = False, targets: pd.DataFrame | None = None,
                  also: Callable[[Path], dict[str, Path]] | None = None,
                  ranks: bool | None = None, worker=None) -> dict[str, Path]:
    """Write posterior.nc, summary.csv, targets.csv, report.md and PNG figures into ``out``.

    The figures: the answer's (``law.png`` and ``optimal.png``, or the family's own view),
    ``checks.png`` and, where the model has them, ``offsets.png`` and ``multiplier.png``.
    The chains' rank plots (``ranks.png``, a second of drawing) with ``ranks=True``; with
    ``None`` (default) only where the sampler diagnostics report a problem, which is when
    they are worth reading (``bayescale.plots.plot_ranks`` draws them from a saved fit).

    The folder is written as a unit (:func:`bayescale.report.folders.staged_folder`): into a
    temporary folder beside it, swapped in whole at the end. An exception or Ctrl-C on the
    way leaves ``out`` as it was. ``also(folder)`` writes more outputs into the same unit and
    returns their paths (the recipe's design). ``targets``: the :func:`targets_table` at
    ``budgets`` already shown (written as it is; made here when None). ``worker``: a
    :class:`bayescale.report.drawing.FigureWorker` that draws the view's first figure from the
    saved fit meanwhile (drawn here where it fails). Returns the written paths, by name.

    Raises ``FileExistsError`` if ``out`` holds bayescale outputs and ``overwrite`` is False.
    """
    out = Path(out)
    with staged_folder(out, overwrite=overwrite) as staging, phase(
            f"writing {out}: posterior.nc, summary, targets, report and figures"):
        if ranks is None:
            ranks = bool(fit.diagnostic_problems())
        paths = _write_into(staging, fit, budgets, prob, title, targets, ranks, worker)
        if also is not None:
            paths |= also(staging)
            if "design" in paths:  # the report lists the runs design.csv holds
                with paths["report.md"].open("a") as report:
                    report.write(_design_section(pd.read_csv(paths["design"])))
    return {key: out / path.relative_to(staging) for key, path in paths.items()}


def _write_into(folder: Path, fit, budgets, prob, title, targets, ranks,
                worker=None) -> dict[str, Path]:
    """The results files, written one after another into ``folder``; the first figure (the
    view's own) by ``worker`` meanwhile, where it can."""
    paths = {name: folder / name for name in ("posterior.nc", "summary.csv", "targets.csv",
                                              "report.md")}
    fit.save(paths["posterior.nc"])
    makers = figure_makers(fit, budgets, prob, ranks)
    away = list(makers)[:1]
    if worker is None or not worker.request(paths["posterior.nc"], folder, names=away,
                                            budgets=budgets or [], prob=prob):
        away = []
    try:
        pause_for_tests()
        summary = fit.summary(prob=prob)
        summary.to_csv(paths["summary.csv"])
        pause_for_tests()
        if targets is None and budgets:
            targets = targets_table(fit, budgets, prob=prob)
        if targets is not None:
            targets.to_csv(paths["targets.csv"], index=False)
        with lazy.stubs_hidden("jax"):
            for name in [n for n in makers if n not in away]:
                save_figure(makers[name](), folder / name)
            if away and worker.answer() is None:  # the worker failed: drawn here
                for name in away:
                    save_figure(makers[name](), folder / name)
    finally:
        if worker is not None:
            worker.close()  # before the staged folder is removed or swapped in
    paths |= {name: folder / name for name in makers}
    paths["report.md"].write_text(_report(fit, summary, targets, prob, title, list(makers)))
    return {k: v for k, v in paths.items() if v.exists()}


def _report(fit, summary, targets, prob, title, figures) -> str:
    diag = summary.attrs["diagnostics"]
    problems = fit.diagnostic_problems()
    parts = [
        f"# {title}", "",
        f"{fit.describe()}; {fit.idata.observed_data.sizes['run']} runs; "
        f"{diag['draws']} posterior draws ({fit.posterior.attrs.get('sampler')}).", "",
        f"## Parameters (median and {prob:.0%} equal-tailed interval)", "",
        _markdown(summary.reset_index()), "",
    ]
    if targets is not None:
        parts += [f"## At the target budgets ({prob:.0%} intervals)", "",
                  _markdown(targets.drop(columns="warning")), ""]
        parts += [f"- WARNING: {w}" for w in targets.attrs["warnings"]]
        if fit.hyperparameter_offsets or fit.continuous:
            parts += ["", "As the command line prints it:", "", "```",
                      format_answer(fit, prob=prob, table=targets), "```", ""]
    parts += _discrepancy_section(fit, summary)
    parts += ["## The runs off the law", "", f"- WARNING: {fit.misfit}", ""] if fit.misfit else []
    parts += ["## Sampler diagnostics", "",
              f"divergences {diag['divergences']}, max R-hat {diag['max_r_hat']:.4f}, "
              f"min bulk ESS {diag['min_ess_bulk']:.0f}, min tail ESS {diag['min_ess_tail']:.0f}",
              ""]
    ranks = "" if "ranks.png" in figures else (" (The chains' rank plots are drawn where a "
                                               "problem is found, or with `bayescale fit --ranks`.)")
    parts += [f"- WARNING: {p}" for p in problems] or [f"No problems found.{ranks}"]
    parts += ["", "## Figures", ""] + [f"![{name}]({name})" for name in figures]
    return "\n".join(parts) + "\n"


def _design_section(chosen: pd.DataFrame) -> str:
    """The recipe's next runs, as ``design.csv`` holds them."""
    if chosen.empty:
        return "\n## The next runs\n\nNo candidate run fits the design's budget.\n"
    return "\n".join(["", "## The next runs", "",
                      f"{len(chosen)} runs, {chosen['total_flops'].iloc[-1]:.4g} FLOPs in all "
                      "(`design.csv`, `design.png`):", "", _markdown(chosen), ""]) + "\n"


def _discrepancy_section(fit, summary: pd.DataFrame) -> list[str]:
    """How far the law is trusted past the runs: the discrepancy's scale and its backtests."""
    if "discrepancy_scale" not in summary.index:
        return []
    row = summary.loc["discrepancy_scale"]
    cuts = backtest_summary(fit)
    source = "its prior (no backtest)"
    lines = []
    if len(cuts):
        source = f"{len(cuts)} backtests inside the sweep and its prior"
        lines = ["", "| cut (decades under the largest budget) | held-out runs | median decades "
                 "past | median relative error |", "|---|---|---|---|"]
        lines += [f"| {c.cut_decades:g} | {c.held_out_runs} | {c.median_decades_past:.2f} | "
                  f"{c.median_abs_error:.2%} |" for c in cuts.itertuples()]
    bias = ""
    if "discrepancy_bias" in summary.index:
        b = summary.loc["discrepancy_bias"]
        bias = (f" Bias b per decade (negative: runs past the data come in below the law): "
                f"median {b['median']:.4f} [{b['lower']:.4f}, {b['upper']:.4f}].")
    return ["## Past the runs", "",
            f"Answers past the runs carry the law's discrepancy: log loss + d * (b + s * z), d "
            f"the decades from the nearest run (jointly in C, N, D and the continuous "
            f"hyperparameters). Scale s per decade, learned from {source}: median "
            f"{row['median']:.4f} [{row['lower']:.4f}, {row['upper']:.4f}].{bias}", *lines, ""]
