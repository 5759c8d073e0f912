"""Generate the numbers, tables and figures of the tutorials and the CLI page.

The docs build runs this file as an mkdocs hook (``hooks:`` in ``mkdocs.yml``): before each
build, :func:`on_pre_build` fits the bundled Chinchilla and CS336 runs with the settings of
``models/chinchilla.toml`` and ``models/cs336_api.toml`` (fewer draws) and writes Markdown
snippets, text and PNG figures into ``docs/generated/`` (git-ignored), which the pages include
with ``--8<--``. Nothing in the pages' prose is a number from a fit: every such number comes
from here. Run it by hand with::

    python docs/gen_tutorials.py --out docs/generated

Settings, from the environment:

``BAYESCALE_DOCS_DRAWS``
    posterior draws per chain (default 500)
``BAYESCALE_DOCS_TUNE``
    tuning steps per chain (default: the draws)
``BAYESCALE_DOCS_CHAINS``
    chains (default 2)
``BAYESCALE_DOCS_BOOTSTRAP``
    bootstrap replicates of the classic Huber fit (default 100)
``BAYESCALE_DOCS_STRICTER``
    ``1`` (default) also refits the CS336 runs under a stricter untrained-regime rule; ``0``
    skips that fit (its snippet then says so)
``BAYESCALE_DOCS_REGENERATE``
    ``1`` regenerates even when ``docs/generated/`` was made from the same sources and settings
    (the hook otherwise reuses it, so that ``mkdocs serve`` does not refit on every rebuild)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import math
import os
import re
import sys
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.ticker import FormatStrFormatter  # noqa: E402

import bayescale as bs  # noqa: E402
from bayescale.report import plots  # noqa: E402
from bayescale.analysis.baselines import argmin_loglinear, huber_lbfgs, isoflop_argmin  # noqa: E402
from bayescale.report.recipe import Recipe  # noqa: E402
from bayescale.report.answer import targets_table  # noqa: E402
from bayescale.model.points import decades_past  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
#: A thinned version of Hoffmann et al.'s grid of L-BFGS starts: 2^5 = 32 of its 4500.
HUBER_GRID = {"e": [0.0, 1.0], "a": [0.0, 10.0], "b": [0.0, 10.0], "alpha": [0.0, 1.0],
              "beta": [0.0, 1.0]}
#: Chinchilla runs Epoch AI left out of its refit (Besiroglu et al. 2024): the 5 highest losses.
EPOCH_DROPPED = 5
#: Vocabulary of the CS336 runs: an untrained model's loss is about ln(32000) nats/token.
VOCAB = 32000
#: The recipe keeps loss < 0.9 ln(32000); the stricter check keeps loss < 0.8 ln(32000).
STRICTER_FRACTION = 0.8
CS336_CLASSIC_DROP = [1e13]
FIG_DPI = 110
#: Horizontal violins: ``orientation`` since Matplotlib 3.10 (``vert`` is deprecated there).
_HORIZONTAL = ({"orientation": "horizontal"}
               if tuple(int(v) for v in matplotlib.__version__.split(".")[:2]) >= (3, 10)
               else {"vert": False})


# -- settings --------------------------------------------------------------------------------
def settings_from_env(environ=os.environ) -> dict:
    """The generator's settings from ``BAYESCALE_DOCS_*`` environment variables."""
    def integer(name: str, default: int, low: int) -> int:
        raw = environ.get(name, "")
        value = int(raw) if raw.strip() else default
        if value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {raw!r}")
        return value

    draws = integer("BAYESCALE_DOCS_DRAWS", 500, 1)
    return {"draws": draws, "tune": integer("BAYESCALE_DOCS_TUNE", draws, 0),
            "chains": integer("BAYESCALE_DOCS_CHAINS", 2, 1),
            "bootstrap": integer("BAYESCALE_DOCS_BOOTSTRAP", 100, 0),
            "stricter": environ.get("BAYESCALE_DOCS_STRICTER", "1").strip() != "0"}


# -- formatting ------------------------------------------------------------------------------
def _num(x: float) -> str:
    """4 significant digits; scientific notation for large or small magnitudes."""
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if x != 0 and not 1e-3 <= abs(x) < 1e4:
        mantissa, exponent = f"{x:.3e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{x:.4g}"


def _ci(median: float, lower: float, upper: float) -> str:
    return f"{_num(median)} [{_num(lower)}, {_num(upper)}]"


def _table(rows: list[dict]) -> str:
    """A Markdown table from a list of dicts with the same keys (already formatted)."""
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(row[c]) for c in cols) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _write(out: Path, name: str, text: str) -> None:
    (out / name).write_text(text if text.endswith("\n") else text + "\n")


def _save(out: Path, name: str, figure) -> None:
    figure.savefig(out / name, dpi=FIG_DPI, bbox_inches="tight")
    plt.close(figure)


# -- sampling --------------------------------------------------------------------------------
def _sample(model: bs.ScalingLaw, kwargs: dict) -> tuple[bs.Fit, float, list[str]]:
    """Fit ``model``; the fit, its wall time and the SamplerWarning messages it raised."""
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = model.fit(progressbar=False, **kwargs)
    seconds = time.perf_counter() - start
    sampler = [str(w.message) for w in caught if issubclass(w.category, bs.SamplerWarning)]
    for w in caught:
        if not issubclass(w.category, bs.SamplerWarning) and "BLAS" not in str(w.message):
            print(f"gen_tutorials: {w.category.__name__}: {w.message}", file=sys.stderr)
    return fit, seconds, sampler


def _fit_kwargs(recipe: Recipe, settings: dict) -> dict:
    return recipe.fit_kwargs(draws=settings["draws"], tune=settings["tune"],
                             chains=settings["chains"])


def _settings_md(recipe_name: str, runs: int, kwargs: dict, seconds: float) -> str:
    return (f"Made by `docs/gen_tutorials.py` from `models/{recipe_name}` on {runs} runs: "
            f"{kwargs['chains']} chains x {kwargs['draws']} draws after {kwargs['tune']} tuning "
            f"steps ({kwargs['sampler']}, `random_seed = {kwargs['random_seed']}`, "
            f"`target_accept = {kwargs['target_accept']}`), {seconds:.0f} s of sampling "
            f"including compilation, bayescale {bs.__version__}.\n")


def _diagnostics_md(fit: bs.Fit, sampler_warnings: list[str]) -> str:
    d = fit.diagnostics()
    lines = [f"Sampler diagnostics: divergences {d['divergences']}, max R-hat "
             f"{d['max_r_hat']:.4f}, min bulk ESS {d['min_ess_bulk']:.0f}, min tail ESS "
             f"{d['min_ess_tail']:.0f} ({d['draws']} draws)"]
    lines += [f"WARNING: {p}" for p in fit.diagnostic_problems()] or ["no problems found"]
    lines += [f"SamplerWarning: {m}" for m in sampler_warnings]
    return "```text\n" + "\n".join(lines) + "\n```\n"


def _summary_md(fit: bs.Fit, prob: float) -> str:
    summary = fit.summary(prob=prob)
    rows = [{"parameter": f"`{name}`", "median": _num(r["median"]),
             f"{prob:.0%} interval": f"[{_num(r['lower'])}, {_num(r['upper'])}]",
             "R-hat": f"{r['r_hat']:.3f}", "bulk ESS": f"{r['ess_bulk']:.0f}",
             "tail ESS": f"{r['ess_tail']:.0f}"} for name, r in summary.iterrows()]
    return _table(rows)


#: The verbs docs/cli.md describes in prose; the help of any other verb is appended there.
CLI_DESCRIBED = ("fit", "predict", "compare", "design", "datasets")


# -- the CLI's help --------------------------------------------------------------------------
def write_cli_help(out: Path) -> list[str]:
    """Write ``cli_help.txt`` and ``cli_<verb>.txt``: the real ``--help`` of every verb."""
    from bayescale.report.cli import main

    def help_of(argv: list[str]) -> str:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer), contextlib.suppress(SystemExit):
            main(argv)
        return buffer.getvalue()

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"  # argparse wraps to the terminal; fix it for stable pages
    try:
        top = help_of(["--help"])
        _write(out, "cli_help.txt", f"$ bayescale --help\n{top}")
        verbs = _verbs(top)
        for verb in verbs:
            _write(out, f"cli_{verb}.txt", f"$ bayescale {verb} --help\n"
                   + help_of([verb, "--help"]))
        others = [v for v in verbs if v not in CLI_DESCRIBED]
        _write(out, "cli_other_verbs.md", "\n".join(
            f"### `bayescale {v}`\n\n```text\n{(out / f'cli_{v}.txt').read_text()}```\n"
            for v in others) if others else
            f"None: `cli.md` describes every verb ({', '.join(verbs)}).\n")
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            main(["datasets"])
        _write(out, "cli_datasets_list.txt", "$ bayescale datasets\n" + buffer.getvalue())
        _write(out, "cli_errors.txt", _recipe_errors(main))
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    return verbs


def write_recipes(out: Path) -> None:
    """Write ``recipes_models.md``: every recipe of ``models/``, verbatim."""
    parts = [f"### `models/{path.name}`\n\n```toml\n{path.read_text().rstrip()}\n```\n"
             for path in sorted(MODELS.glob("*.toml"))]
    _write(out, "recipes_models.md", "\n".join(parts))


#: Broken recipes (file name, text) whose one-line errors the docs show.
BAD_RECIPES = (
    ("typo.toml", '[data]\ndataset = "chinchilla"\n\n[fit]\ndraw = 500\n'),
    ("wrong_type.toml", '[data]\ndataset = "chinchilla"\n\n[fit]\ntarget_accept = 1\n'),
    ("bad_prior.toml", '[data]\ndataset = "chinchilla"\n\n[priors]\nexponent = { dist = '
                       '"LogNormal", mu = -1.2, sigma = 0.5 }\n'),
)


def _recipe_errors(main) -> str:
    """Run ``bayescale fit`` on each of :data:`BAD_RECIPES`: the command, exit status, stderr."""
    import tempfile

    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in BAD_RECIPES:
            path = Path(tmp) / name
            path.write_text(text)
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                status = main(["fit", str(path), "--out", str(Path(tmp) / "out"), "--no-progress"])
            parts.append(f"$ cat {name}\n{text}$ bayescale fit {name} --out out; echo $?\n"
                         + err.getvalue().replace(f"{tmp}/", "") + f"{status}\n")
    return "\n".join(parts)


def _verbs(top_help: str) -> list[str]:
    """The verbs listed under ``VERB`` in the top-level help."""
    lines = top_help.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "VERB") + 1
    verbs = []
    for line in lines[start:]:
        match = re.match(r"^ {4}(\w[\w-]*)\b", line)
        if not line.strip():
            break
        if match:
            verbs.append(match.group(1))
    return verbs


# -- tutorial 1: the Chinchilla runs ---------------------------------------------------------
def chinchilla(out: Path, settings: dict) -> None:
    """Fit models/chinchilla.toml; set it beside Huber L-BFGS fits; tables, text, figures."""
    recipe = Recipe.read(MODELS / "chinchilla.toml")
    runs = recipe.runs()
    kwargs = _fit_kwargs(recipe, settings)
    fit, seconds, sampler = _sample(recipe.scaling_law(runs), kwargs)
    prob, budgets = recipe.prob, recipe.budgets

    _write(out, "chinchilla_settings.md",
           _settings_md("chinchilla.toml", len(runs), kwargs, seconds))
    _write(out, "chinchilla_params.md", _summary_md(fit, prob))
    _write(out, "chinchilla_diagnostics.md", _diagnostics_md(fit, sampler))

    targets = targets_table(fit, budgets, prob=prob)
    labels = {"loss_opt": "loss at the optimum", "params_opt": "N* (parameters)",
              "tokens_opt": "D* (tokens)", "tokens_per_param": "D*/N*"}
    rows = [{"quantity": label, **{f"C = {_num(b)}": _ci(r[var], r[f"{var}_lower"],
                                                          r[f"{var}_upper"])
                                   for b, (_, r) in zip(budgets, targets.iterrows())}}
            for var, label in labels.items()]
    _write(out, "chinchilla_targets.md", _table(rows))

    trimmed = runs.drop(runs["loss"].nlargest(EPOCH_DROPPED).index)
    classic = {
        f"Huber L-BFGS, all {len(runs)} runs": huber_lbfgs(
            runs, grid=HUBER_GRID, bootstrap=settings["bootstrap"], random_seed=0),
        f"Huber L-BFGS, {len(trimmed)} runs ({EPOCH_DROPPED} highest losses dropped)": huber_lbfgs(
            trimmed, grid=HUBER_GRID, bootstrap=settings["bootstrap"], random_seed=0),
    }
    _write(out, "chinchilla_baseline.md", _chinchilla_baseline(fit, classic, budgets[0], prob,
                                                               len(runs), settings["bootstrap"]))
    _write(out, "chinchilla_findings.md", _chinchilla_findings(fit, classic, budgets[0], prob,
                                                               len(runs)))

    intervals_page(out, fit, budgets[0], prob)
    discrepancy_page(out, fit, budgets, prob)

    _save(out, "chinchilla_law.png", plots.plot_law(fit, budgets, prob=prob).figure)
    _save(out, "chinchilla_optimal.png", plots.plot_optimal(fit, budgets, prob=prob).figure)
    _save(out, "chinchilla_checks.png", plots.plot_checks(fit, prob=prob))
    _save(out, "chinchilla_ranks.png", plots.plot_ranks(fit))
    _save(out, "chinchilla_ratio.png", _ratio_figure(fit, classic, budgets[0], prob))


def _chinchilla_baseline(fit, classic: dict, budget: float, prob: float, n_runs: int,
                         bootstrap: int) -> str:
    names = ("E", "alpha", "beta", "params_opt", "tokens_opt", "tokens_per_param", "loss_opt")
    header = {"E": "E", "alpha": "alpha", "beta": "beta", "params_opt": "N*",
              "tokens_opt": "D*", "tokens_per_param": "D*/N*", "loss_opt": "loss at optimum"}
    post = fit.posterior
    opt = fit.optimal([budget]).isel(budget=0)
    lo, hi = (1 - prob) / 2, (1 + prob) / 2

    def bayes(var):
        draws = (post[var] if var in post else opt[var]).values.ravel()
        return _ci(np.median(draws), *np.quantile(draws, [lo, hi]))

    rows = [{"method": f"bayescale, Student-t, all {n_runs} runs (posterior)",
             **{header[v]: bayes(v) for v in names}}]
    for label, huber in classic.items():
        at = huber.optimal(budget, prob=prob if huber.bootstrap_draws is not None else None)
        params = huber.interval(prob) if huber.bootstrap_draws is not None else None
        row = {"method": label + (" (bootstrap)" if params is not None else "")}
        for v in names:
            if v in ("E", "alpha", "beta"):
                est = getattr(huber, v)
                row[header[v]] = (_ci(est, params.loc[v, "lower"], params.loc[v, "upper"])
                                  if params is not None else _num(est))
            else:
                r = at.iloc[0]
                row[header[v]] = (_ci(r[v], r[f"{v}_lower"], r[f"{v}_upper"])
                                  if params is not None else _num(r[v]))
        rows.append(row)
    note = (f"\nAt C = {_num(budget)} FLOPs; median (posterior) or point estimate (L-BFGS) and "
            f"{prob:.0%} interval: posterior quantiles, or quantiles of {bootstrap} bootstrap "
            f"refits. The L-BFGS fits start from {_huber_starts(classic)} points of "
            "Hoffmann et al.'s grid (`HUBER_GRID` in `docs/gen_tutorials.py`), Huber delta = "
            f"{next(iter(classic.values())).delta:g}.\n")
    return _table(rows) + note


def _huber_starts(classic: dict) -> int:
    return next(iter(classic.values())).n_starts


def _chinchilla_findings(fit, classic: dict, budget: float, prob: float, n_runs: int) -> str:
    (_, all_fit), (_, trim_fit) = classic.items()
    ratio = fit.optimal([budget])["tokens_per_param"].values.ravel()
    lo, hi = np.quantile(ratio, [(1 - prob) / 2, (1 + prob) / 2])
    huber_all = float(all_fit.optimal(budget)["tokens_per_param"].iloc[0])
    huber_trim = float(trim_fit.optimal(budget)["tokens_per_param"].iloc[0])

    def where(x):
        return "inside" if lo <= x <= hi else "outside"

    nu = fit.posterior["nu"].values.ravel()
    return "\n".join([
        f"- At C = {_num(budget)} FLOPs the posterior puts D\\*/N\\* at {_num(np.median(ratio))} "
        f"tokens per parameter, {prob:.0%} interval [{_num(lo)}, {_num(hi)}], from all "
        f"{n_runs} runs.",
        f"- The Huber L-BFGS fit to the same {n_runs} runs gives {_num(huber_all)}, "
        f"{where(huber_all)} that interval. Refitted without the {EPOCH_DROPPED} highest-loss "
        f"runs ({trim_fit.n_runs} runs), it gives {_num(huber_trim)}, {where(huber_trim)} it.",
        f"- The posterior median of the Student-t degrees of freedom `nu` is {_num(np.median(nu))}"
        f" ({prob:.0%} interval [{_num(np.quantile(nu, (1 - prob) / 2))}, "
        f"{_num(np.quantile(nu, (1 + prob) / 2))}]).",
    ]) + "\n"


def _ratio_figure(fit, classic: dict, budget: float, prob: float):
    """Violins of log10 D*/N*: the posterior and each Huber fit's bootstrap, point fits marked."""
    rows = [("bayescale posterior\n(Student-t, all runs)",
             fit.optimal([budget])["tokens_per_param"].values.ravel(), None)]
    for label, huber in classic.items():
        point = float(huber.optimal(budget)["tokens_per_param"].iloc[0])
        boot = None
        if huber.bootstrap_draws is not None and len(huber.bootstrap_draws) > 1:
            d = huber.bootstrap_draws
            theta = {k: d[k].to_numpy()[:, None] for k in ("E", "A", "B", "alpha", "beta")}
            boot = bs.laws.compute_optimal(theta, np.array([budget]))["tokens_per_param"].ravel()
        rows.append((label.replace(", ", "\n", 1), boot, point))
    fig, ax = plt.subplots(figsize=(8, 3.8))
    for y, (label, draws, point) in enumerate(rows):
        colour = f"C{y}"
        if draws is not None:
            parts = ax.violinplot(np.log10(draws), positions=[y], widths=0.8, showextrema=False,
                                  **_HORIZONTAL)
            for body in parts["bodies"]:
                body.set(facecolor=colour, alpha=0.35)
            lo, mid, hi = np.quantile(draws, [(1 - prob) / 2, 0.5, (1 + prob) / 2])
            ax.hlines(y, np.log10(lo), np.log10(hi), color=colour, lw=2.5)
            ax.plot(np.log10(mid), y, "o", color=colour)
        if point is not None:
            ax.plot(np.log10(point), y, "D", color="k", ms=6)
    ax.plot([], [], "o", color="0.3", label=f"median and {prob:.0%} interval of the draws")
    ax.plot([], [], "D", color="k", label="L-BFGS point estimate")
    left, right = ax.get_xlim()
    ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500) if left <= np.log10(t) <= right]
    ax.set_xticks(np.log10(ticks), [str(t) for t in ticks])
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.set(xlabel=f"compute-optimal tokens per parameter D*/N* at C = {budget:.3g} FLOPs "
           "(log scale)", title="Tokens per parameter: posterior vs L-BFGS with bootstrap")
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


# -- the page on intervals and diagnostics ---------------------------------------------------
#: Chinchilla itself: 70B parameters, 1.4T tokens.
CHINCHILLA_POINT = {"params": [7e10], "tokens": [1.4e12]}


def intervals_page(out: Path, fit: bs.Fit, budget: float, prob: float) -> None:
    """Equal-tailed vs HDI, mean vs new run, and a SamplerWarning, from the Chinchilla fit."""
    opt = fit.optimal([budget])[["params_opt", "tokens_per_param", "loss_opt"]]
    eti = bs.interval(opt, prob=prob).set_index("variable")
    hdi = bs.interval(opt, prob=prob, method="hdi").set_index("variable")
    def bounds(table, var):
        return f"[{_num(table.loc[var, 'lower'])}, {_num(table.loc[var, 'upper'])}]"

    rows = [{"quantity at C = " + _num(budget): f"`{var}`", "median": _num(eti.loc[var, "median"]),
             "mean": _num(eti.loc[var, "mean"]), f"equal-tailed {prob:.0%}": bounds(eti, var),
             f"HDI {prob:.0%}": bounds(hdi, var)} for var in opt.data_vars]
    _write(out, "intervals_eti_hdi.md", _table(rows))

    rows = []
    for kind in ("mean", "new_run"):
        loss = fit.predict(CHINCHILLA_POINT, kind=kind, random_seed=0)["loss"]
        for p in (0.5, prob, 0.99):
            t = bs.interval(loss, prob=p).iloc[0]
            rows.append({"kind": f'`"{kind}"`', "probability": f"{p:.0%}",
                         "median": _num(t["median"]),
                         "interval": f"[{_num(t['lower'])}, {_num(t['upper'])}]",
                         "width": _num(t["upper"] - t["lower"])})
    _write(out, "intervals_mean_new_run.md", _table(rows))

    keep = min(50, fit.posterior.sizes["draw"])
    short = bs.Fit(fit.idata.isel(draw=slice(0, keep)), fit.spec)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bs.SamplerWarning)
        short.warn_diagnostics()
    messages = [f"{w.category.__name__}: {w.message}" for w in caught] or ["(no warning)"]
    _write(out, "intervals_warning.md",
           f"```text\n>>> fit.diagnostics()   # the first {keep} draws of each chain\n"
           f"{json.dumps(short.diagnostics(), indent=1)}\n"
           f">>> fit.diagnostic_problems()\n{short.diagnostic_problems()}\n"
           f">>> fit.warn_diagnostics()   # what ScalingLaw.fit calls after sampling\n"
           + "\n".join(messages) + "\n```\n")


def discrepancy_page(out: Path, fit: bs.Fit, budgets: list, prob: float) -> None:
    """The Chinchilla recipe's discrepancy: its learned scale, its backtests, what it adds."""
    row = fit.summary(prob=prob).loc["discrepancy_scale"]
    rows = [{"cut (decades under the largest budget)": f"{c.cut_decades:g}",
             "held-out runs": c.held_out_runs,
             "median decades past": f"{c.median_decades_past:.2f}",
             "median relative error": f"{c.median_abs_error:.2%}"}
            for c in bs.discrepancy.backtest_summary(fit).itertuples()]
    exact = bs.Fit(fit.idata.copy(deep=True), fit.spec)
    exact.idata["posterior"] = xr.DataTree(bs.discrepancy.without_discrepancy(fit.posterior))
    answers = []
    for b in budgets:
        with_d = bs.interval(fit.optimal([b])["loss_opt"], prob=prob).iloc[0]
        without = bs.interval(exact.optimal([b])["loss_opt"], prob=prob).iloc[0]
        answers.append({"budget": _num(b),
                        "decades past (C)": f"{decades_past(fit.runs, 'flops', [b])[0]:.2f}",
                        f"loss at the optimum, law exact ({prob:.0%})":
                            _ci(without["median"], without["lower"], without["upper"]),
                        f"with the discrepancy ({prob:.0%})":
                            _ci(with_d["median"], with_d["lower"], with_d["upper"])})
    _write(out, "discrepancy_numbers.md",
           "## On the Chinchilla runs\n\nWith `models/chinchilla.toml` (`discrepancy = "
           f'"backtest"`), the scale learned from the backtests below is {row["median"]:.4f} '
           f"log loss per decade ({prob:.0%} interval [{row['lower']:.4f}, {row['upper']:.4f}]"
           ").\n\n" + _table(rows) + "\n\nWhat it does to the answer:\n\n" + _table(answers)
           + "\n\nHow the intervals cover on held-out real runs, sweep by sweep, is measured "
           "by `benchmarks/extrapolation.py` (`benchmarks/RESULTS.md`).\n")


# -- tutorial 2: the CS336 training API ------------------------------------------------------
def cs336(out: Path, settings: dict) -> None:
    """Fit models/cs336_api.toml; the classic argmin line beside it; the untrained-regime rule."""
    recipe = Recipe.read(MODELS / "cs336_api.toml")
    all_runs = bs.datasets.load(recipe.data["dataset"])
    runs = recipe.runs()
    prob, (budget,) = recipe.prob, recipe.budgets
    stricter_cut = STRICTER_FRACTION * math.log(VOCAB)
    stricter_runs = all_runs[all_runs["loss"] < stricter_cut]

    classic = argmin_loglinear(all_runs, drop_budgets=CS336_CLASSIC_DROP)
    classic_rule = argmin_loglinear(runs)
    classic_stricter = argmin_loglinear(stricter_runs)
    _write(out, "cs336_rule.md", _cs336_rule(all_runs, runs, stricter_runs, recipe, stricter_cut))
    _write(out, "cs336_classic.md", _cs336_classic(
        budget, {f"all {len(all_runs)} runs, budget {_num(CS336_CLASSIC_DROP[0])} dropped "
                 "(the classic recipe)": classic,
                 f"the recipe's {len(runs)} runs (`{recipe.data['query']}`)": classic_rule,
                 f"the stricter rule's {len(stricter_runs)} runs": classic_stricter}))

    kwargs = _fit_kwargs(recipe, settings)
    fit, seconds, sampler = _sample(recipe.scaling_law(runs), kwargs)
    rec = fit.recommend(budget, prob=prob)
    _write(out, "cs336_settings.md", _settings_md("cs336_api.toml", len(runs), kwargs, seconds))
    _write(out, "cs336_params.md", _summary_md(fit, prob))
    _write(out, "cs336_diagnostics.md", _diagnostics_md(fit, sampler))
    _write(out, "cs336_recommend.md", "```text\n" + str(rec) + "\n```\n")
    rows = [{"answer at C = " + _num(budget): "classic: argmin + log-log line "
             f"(drop {_num(CS336_CLASSIC_DROP[0])})",
             "loss": _num(classic.predict([budget])[0])}]
    loss = rec.table.set_index("quantity").loc["loss"]
    rows.append({"answer at C = " + _num(budget): f"bayescale: {fit.law.name} law + "
                 "hyperparameters, mean loss of the recommended configuration "
                 f"(median [{prob:.0%} interval])",
                 "loss": _ci(loss["median"], loss["lower"], loss["upper"])})
    _write(out, "cs336_answer.md", _table(rows))

    stricter = None
    if settings["stricter"]:
        model = bs.ScalingLaw(stricter_runs, law=fit.law.name, offsets=fit.spec["offsets"],
                              continuous=fit.spec["continuous"], noise=fit.spec["noise"],
                              priors=recipe.priors or None)
        stricter_fit, stricter_seconds, stricter_warnings = _sample(model, kwargs)
        stricter = (stricter_fit, stricter_seconds, stricter_warnings)
    _write(out, "cs336_stricter.md", _cs336_stricter(rec, fit, stricter, budget, prob, runs,
                                                     stricter_runs, recipe, stricter_cut))

    _write(out, "cs336_findings.md", _cs336_findings(
        budget, prob, classic, classic_rule, classic_stricter, rec,
        None if stricter is None else stricter[0].recommend(budget, prob=prob), len(stricter_runs)))

    _save(out, "cs336_runs.png", _cs336_runs_figure(all_runs, runs, classic, rec, budget,
                                                    recipe, stricter_cut))
    _save(out, "cs336_law.png", plots.plot_law(fit, [budget], prob=prob).figure)
    _save(out, "cs336_hyper.png", _cs336_hyper_figure(fit, runs, budget, prob))
    _save(out, "cs336_offsets.png", plots.plot_offsets(fit, prob=prob))
    _save(out, "cs336_checks.png", plots.plot_checks(fit, prob=prob))


#: Hoffmann et al.'s rule of thumb for the compute-optimal tokens per parameter.
CHINCHILLA_TOKENS_PER_PARAM = 20


def _cs336_findings(budget, prob, classic, classic_rule, classic_stricter, rec, stricter_rec,
                    n_stricter) -> str:
    table = rec.table.set_index("quantity")
    loss = table.loc["loss"]

    def versus(x, row):
        if x < row["lower"]:
            return "below"
        return "above" if x > row["upper"] else "inside"

    c = float(classic.predict([budget])[0])
    lines = [
        f"- The classic answer, {_num(c)}, lies {versus(c, loss)} the posterior's {prob:.0%} "
        "interval for the loss of the recommended configuration, "
        f"{_ci(loss['median'], loss['lower'], loss['upper'])}.",
        f"- Applied to the classic method, the recipe's rule moves its answer to "
        f"{_num(classic_rule.predict([budget])[0])} and the stricter rule to "
        f"{_num(classic_stricter.predict([budget])[0])}.",
    ]
    if stricter_rec is not None:
        other = stricter_rec.table.set_index("quantity").loc["loss"]
        lines.append(
            f"- Refitted on the stricter rule's {n_stricter} runs, the posterior answer becomes "
            f"{_ci(other['median'], other['lower'], other['upper'])}; its median lies "
            f"{versus(other['median'], loss)} the {prob:.0%} interval obtained with the recipe's "
            "rule.")
    bounds = ["median", "lower", "upper"]
    ratio, params = table.loc["tokens_per_param"], table.loc["params_opt"]
    lines.append(
        f"- The posterior's compute-optimal model has N\\* = {_ci(*params[bounds])} "
        f"parameters and D\\*/N\\* = {_ci(*ratio[bounds])} tokens per "
        f"parameter; the Chinchilla rule of thumb, {CHINCHILLA_TOKENS_PER_PARAM} tokens per "
        f"parameter, lies {versus(CHINCHILLA_TOKENS_PER_PARAM, ratio)} that interval.")
    return "\n".join(lines) + "\n"


def _cs336_rule(all_runs, runs, stricter_runs, recipe, stricter_cut: float) -> str:
    rows = []
    for flops, group in all_runs.groupby("flops"):
        rows.append({"budget (FLOPs)": _num(flops), "runs": len(group),
                     "kept by the recipe": int((runs["flops"] == flops).sum()),
                     "kept by the stricter rule": int((stricter_runs["flops"] == flops).sum()),
                     "lowest loss": _num(group["loss"].min())})
    rows.append({"budget (FLOPs)": "**all**", "runs": len(all_runs),
                 "kept by the recipe": len(runs), "kept by the stricter rule": len(stricter_runs),
                 "lowest loss": _num(all_runs["loss"].min())})
    dropped = len(all_runs) - len(runs)
    return (_table(rows) + f"\nln({VOCAB}) = {_num(math.log(VOCAB))}. The recipe's query "
            f"`{recipe.data['query']}` (0.9 ln({VOCAB}) = {_num(0.9 * math.log(VOCAB))}) drops "
            f"{dropped} of the {len(all_runs)} runs and keeps {len(runs)}; the stricter rule "
            f"`loss < {_num(stricter_cut)}` ({STRICTER_FRACTION} ln({VOCAB})) keeps "
            f"{len(stricter_runs)}.\n")


def _cs336_classic(budget: float, fits: dict) -> str:
    rows = [{"argmin + log-log line on": label,
             "budgets used": ", ".join(_num(b) for b in f.best_runs["flops"]),
             "slope": _num(f.slope), f"loss at {_num(budget)}": _num(f.predict([budget])[0])}
            for label, f in fits.items()]
    return _table(rows)


def _cs336_stricter(rec, fit, stricter, budget, prob, runs, stricter_runs, recipe,
                    stricter_cut) -> str:
    if stricter is None:
        return ("The refit under the stricter rule was skipped in this build "
                "(`BAYESCALE_DOCS_STRICTER=0`).\n")
    stricter_fit, seconds, sampler = stricter
    other = stricter_fit.recommend(budget, prob=prob)
    quantities = [q for q in rec.table["quantity"] if q in set(other.table["quantity"])]
    rows = []
    for label, r, n, f in ((f"recipe: `{recipe.data['query']}`", rec, len(runs), fit),
                           (f"stricter: `loss < {_num(stricter_cut)}`", other,
                            len(stricter_runs), stricter_fit)):
        table = r.table.set_index("quantity")
        d = f.diagnostics()
        rows.append({"rule": label, "runs": n,
                     **{q: _ci(*table.loc[q, ["median", "lower", "upper"]]) for q in quantities},
                     "max R-hat": f"{d['max_r_hat']:.3f}", "divergences": d["divergences"]})
    d = stricter_fit.diagnostics()
    return (_table(rows) + f"\nAt C = {_num(budget)} FLOPs, median [{prob:.0%} interval]. The "
            f"stricter refit used the same settings ({seconds:.0f} s); its diagnostics: "
            f"{d['divergences']} divergences, max R-hat {d['max_r_hat']:.3f}, min bulk ESS "
            f"{d['min_ess_bulk']:.0f}.\n")


def _cs336_runs_figure(all_runs, runs, classic, rec, budget, recipe, stricter_cut):
    fig, ax = plt.subplots(figsize=(8, 5))
    kept = all_runs.index.isin(runs.index)
    ax.scatter(all_runs.loc[~kept, "flops"], all_runs.loc[~kept, "loss"], s=6, color="0.7",
               label=f"dropped by `{recipe.data['query']}` ({int((~kept).sum())} runs)")
    ax.scatter(runs["flops"], runs["loss"], s=10, color="tab:blue",
               label=f"kept ({len(runs)} runs)")
    best = classic.best_runs
    ax.scatter(best["flops"], best["loss"], s=40, facecolor="none", edgecolor="k",
               label="best run per budget (classic)")
    grid = np.geomspace(all_runs["flops"].min(), budget * 2, 50)
    ax.plot(grid, classic.predict(grid), color="k", lw=1,
            label=f"classic log-log line: {_num(classic.predict([budget])[0])} at {budget:.0e}")
    ax.axhline(math.log(VOCAB), color="tab:red", lw=0.8, ls=":", label=f"ln({VOCAB})")
    ax.axhline(0.9 * math.log(VOCAB), color="tab:red", lw=1, ls="--",
               label=f"0.9 ln({VOCAB}): the recipe's rule")
    ax.axhline(stricter_cut, color="tab:orange", lw=1, ls="--",
               label=f"{STRICTER_FRACTION} ln({VOCAB}): stricter rule")
    loss = rec.table.set_index("quantity").loc["loss"]
    ax.errorbar([budget], [loss["median"]], yerr=[[loss["median"] - loss["lower"]],
                                                  [loss["upper"] - loss["median"]]],
                fmt="o", color="tab:green", capsize=4, ms=5,
                label=f"bayescale at {budget:.0e}: {_num(loss['median'])} "
                f"[{_num(loss['lower'])}, {_num(loss['upper'])}]")
    ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)",
           ylabel="final loss (nats/token)", title="CS336 training API: every run and two answers")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%.3g"))
    ax.legend(fontsize=7, loc="lower left")
    return fig


def _cs336_hyper_figure(fit, runs, budget, prob):
    columns = fit.spec["continuous"]
    grid = np.geomspace(runs["flops"].min() / 2, budget * 2, 60)
    opt = fit.optimal_hyperparameters(grid)
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.6), squeeze=False)
    for ax, col in zip(axes[0], columns):
        draws = opt[col].values.reshape(-1, grid.size)
        lo, mid, hi = np.quantile(draws, [(1 - prob) / 2, 0.5, (1 + prob) / 2], axis=0)
        ax.fill_between(grid, lo, hi, color="tab:purple", alpha=0.25, lw=0,
                        label=f"optimum, {prob:.0%} interval")
        ax.plot(grid, mid, color="tab:purple", label="optimum, median")
        ax.scatter(runs["flops"], runs[col], s=8, color="0.4", alpha=0.5, label="kept runs")
        ax.axvline(budget, color="tab:red", ls="--", lw=1, label="target budget")
        ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)", ylabel=col,
               title=f"{col}* (C)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# -- tutorial 3: planning the next runs -------------------------------------------------------
#: The simulated API of the design tutorial: the default truth, no num_heads offsets.
DESIGN_TRUTH = {"heads_tau": 0.0}
DESIGN_SWEEP = {"budgets": (1e16, 3e16, 1e17), "runs_per_budget": 8, "random_seed": 0}
DESIGN_GRID = [1e17, 3e17, 1e18]
DESIGN_BUDGET, DESIGN_TARGET = 2e18, 1e19
DESIGN_QUANTITIES = ("loss_opt", "params_opt", "learning_rate")
DESIGN_COLUMNS = ["params", "tokens", "flops", "learning_rate", "loss"]


def design_tutorial(out: Path, settings: dict) -> None:
    """A first sweep of a simulated API, a 2e18-FLOP plan, the runs trained, the refit."""
    truth = bs.Truth(**DESIGN_TRUTH)
    runs = bs.simulate(truth, **DESIGN_SWEEP)[DESIGN_COLUMNS]
    truth = runs.attrs["truth"]
    kwargs = {"draws": settings["draws"], "tune": settings["tune"], "chains": settings["chains"],
              "random_seed": 0}
    model = bs.ScalingLaw(runs, law="chinchilla", continuous=["learning_rate"])
    first, seconds, _ = _sample(model, kwargs)
    candidates = bs.candidate_grid(first, budgets=DESIGN_GRID)
    start = time.perf_counter()
    plan = first.design(candidates, budget=DESIGN_BUDGET, target=DESIGN_QUANTITIES,
                        at=DESIGN_TARGET)
    design_seconds = time.perf_counter() - start
    rng = np.random.default_rng(1)
    trained = plan[["params", "tokens", "flops", "learning_rate"]].assign(loss=np.exp(
        truth.log_mean_loss(plan) + truth.sigma * rng.standard_normal(len(plan))))
    both = pd.concat([runs, trained], ignore_index=True)
    second, seconds2, _ = _sample(bs.ScalingLaw(both, law="chinchilla",
                                                continuous=["learning_rate"]), kwargs)
    _write(out, "design_settings.md", (
        f"Made by `docs/gen_tutorials.py`: {len(runs)} runs of `bs.simulate` "
        f"({', '.join(_num(b) for b in DESIGN_SWEEP['budgets'])} FLOPs, random_seed "
        f"{DESIGN_SWEEP['random_seed']}); each fit {kwargs['chains']} chains x {kwargs['draws']}"
        f" draws after {kwargs['tune']} tuning steps ({seconds:.0f} s and {seconds2:.0f} s); the "
        f"design of {len(plan)} runs from {len(candidates)} candidates took "
        f"{design_seconds:.2f} s; bayescale {bs.__version__}.\n"))
    _write(out, "design_plan.md", _design_plan_md(plan))
    _write(out, "design_answer.md", _design_answer_md(truth, first, second, plan, both))
    _write(out, "design_findings.md", _design_findings_md(runs, plan, second))
    from bayescale.report.design_report import plot_design

    _save(out, "design_plan.png", plot_design(first, plan, candidates).figure)


def _design_plan_md(plan: pd.DataFrame) -> str:
    rows = [{"#": i, "N (params)": _num(r["params"]), "D (tokens)": _num(r["tokens"]),
             "C (FLOPs)": _num(r["flops"]), "learning rate": _num(r["learning_rate"]),
             "gain": f"{r['gain']:.3f}", "gain per 1e18 FLOPs": f"{r['gain_per_flop']:.3f}",
             "running total (FLOPs)": _num(r["total_flops"])}
            for i, (_, r) in enumerate(plan.iterrows(), 1)]
    before, after = plan.attrs["sd_before"], plan.attrs["sd_after"]
    sds = ", ".join(f"`{k}` {before[k]:.3g} -> {after[k]:.3g}" for k in before)
    return _table(rows) + f"\nExpected sd of each log target, now -> after these runs: {sds}.\n"


def _design_answer_md(truth, first, second, plan, both) -> str:
    true = {"loss_opt": float(truth.optimal([DESIGN_TARGET])["loss_opt"][0]),
            "params_opt": float(truth.optimal([DESIGN_TARGET])["params_opt"][0]),
            "learning_rate": float(truth.learning_rate_opt([DESIGN_TARGET])[0])}
    labels = {"loss_opt": "loss at the optimum", "params_opt": "N*",
              "learning_rate": "learning rate*"}
    classic = {"loss_opt": float(argmin_loglinear(both).predict([DESIGN_TARGET])[0]),
               "params_opt": float(isoflop_argmin(both).predict([DESIGN_TARGET])
                                   ["params_opt"].iloc[0])}
    rows = []
    for q in DESIGN_QUANTITIES:
        row = {"at C = 1e19": labels[q], "truth": _num(true[q])}
        for name, f in (("first sweep", first), ("after the design", second)):
            draws = _design_draws(f, q)
            lo, mid, hi = np.quantile(draws, [0.05, 0.5, 0.95])
            row[name] = _ci(mid, lo, hi)
            row[f"sd of log, {name}"] = f"{np.log(draws).std(ddof=1):.3g}"
        row["expected sd after"] = f"{plan.attrs['sd_after'][q]:.3g}"
        row["classic, same runs"] = _num(classic[q]) if q in classic else "-"
        rows.append(row)
    return _table(rows) + ("\nMedian [90% interval]; the classic column is the best run per "
                           "budget and log-log lines through all the runs.\n")


def _design_findings_md(runs: pd.DataFrame, plan: pd.DataFrame, second) -> str:
    counts = plan.groupby("flops").size()
    where = ", ".join(f"{n} at {_num(c)} FLOPs" for c, n in counts.items())
    lr = runs["learning_rate"]
    extreme = int(plan["learning_rate"].isin([lr.min(), lr.max()]).sum())
    lines = [f"- Of the {len(plan)} planned runs, {where}.",
             f"- {extreme} of them use the smallest or the largest learning rate of the first "
             f"sweep ({_num(lr.min())}, {_num(lr.max())})."]
    for q in DESIGN_QUANTITIES:
        realised = float(np.log(_design_draws(second, q)).std(ddof=1))
        promised = plan.attrs["sd_after"][q]
        side = "below" if realised < promised else "above"
        lines.append(f"- `{q}`: the realised sd of the log, {realised:.4g}, is {side} the "
                     f"expected {promised:.4g}.")
    return "\n".join(lines) + "\n"


def _design_draws(fit, quantity: str) -> np.ndarray:
    if quantity == "learning_rate":
        return fit.optimal_hyperparameters([DESIGN_TARGET])["learning_rate"].values.ravel()
    return fit.optimal([DESIGN_TARGET])[quantity].values.ravel()


# -- driver ----------------------------------------------------------------------------------
def _fingerprint(settings: dict) -> str:
    """A hash of the settings and of every source the generated files depend on."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    sources = [Path(__file__), *sorted((ROOT / "bayescale").rglob("*.py")),
               *sorted(MODELS.glob("*.toml")),
               *sorted((ROOT / "bayescale" / "datasets" / "data").glob("*"))]
    for path in sources:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


STAMP = ".generated.json"


def generate(out: Path, settings: dict | None = None, *, reuse: bool = False) -> bool:
    """Write every generated file into ``out``; returns False when ``reuse`` kept them as is."""
    settings = settings_from_env() if settings is None else settings
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = _fingerprint(settings)
    stamp = out / STAMP
    if reuse and stamp.is_file() and \
            json.loads(stamp.read_text()).get("fingerprint") == fingerprint:
        return False
    stamp.unlink(missing_ok=True)
    seconds = {}
    for name, step in (("cli", lambda: (write_cli_help(out), write_recipes(out))),
                       ("chinchilla", lambda: chinchilla(out, settings)),
                       ("cs336", lambda: cs336(out, settings)),
                       ("design", lambda: design_tutorial(out, settings))):
        start = time.perf_counter()
        step()
        seconds[name] = round(time.perf_counter() - start, 1)
        print(f"gen_tutorials: {name} in {seconds[name]:.0f} s", file=sys.stderr)
    stamp.write_text(json.dumps({"fingerprint": fingerprint, "settings": settings,
                                 "seconds": seconds}, indent=1))
    return True


# -- mkdocs hooks ----------------------------------------------------------------------------
def on_config(config):
    """Point pymdownx.snippets at the generated folder, wherever mkdocs is run from."""
    snippets = config["mdx_configs"].setdefault("pymdownx.snippets", {})
    snippets["base_path"] = [str(Path(config["docs_dir"]) / "generated")]
    return config


def on_pre_build(config):
    """Regenerate docs/generated/ (unless it is up to date) before mkdocs reads the pages."""
    reuse = os.environ.get("BAYESCALE_DOCS_REGENERATE", "0").strip() != "1"
    start = time.perf_counter()
    made = generate(Path(config["docs_dir"]) / "generated", reuse=reuse)
    print(f"gen_tutorials: {'generated' if made else 'reused'} docs/generated "
          f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)


_ROLE = re.compile(r":(?:class|func|meth|attr|data|mod|exc|obj):(?=<code)")


def on_page_content(html, **kwargs):
    """Drop Sphinx roles (``:func:`x` ``) that docstrings carry: keep the code, not the role."""
    return _ROLE.sub("", html)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "generated"),
                        help="folder to write into (default docs/generated)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the folder when it was made from the same sources and settings")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    made = generate(Path(args.out), reuse=args.reuse)
    print(f"{'generated' if made else 'reused'} {args.out} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
