"""The ``bayescale`` command: run recipes, predict from saved fits, list data sets."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import os
import sys
import warnings
from pathlib import Path

from bayescale.data import lazy
from bayescale.report.drawing import FigureWorker
from bayescale.inference import progress
from bayescale.report import interrupts
from bayescale.report.phases import PhaseLines

__all__ = ["main", "run"]

_USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError, ImportError)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block): ``PROG: error: MESSAGE``, exit 2."""

    def error(self, message: str):
        line = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {line} (see {self.prog.split()[0]} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bayescale", description="Bayesian scaling laws: fit, predict, compare.")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for add in (_fit_parser, _predict_parser, _compare_parser, _design_parser):
        add(sub)
    data = sub.add_parser("datasets", help="list the bundled data sets, or show one")
    data.add_argument("name", nargs="?", help="a data set to describe")
    return parser


def _fit_parser(sub) -> None:
    fit = sub.add_parser("fit", help="fit a recipe (models/*.toml) and write a results folder",
                         description="Fit the recipe by NUTS, print the parameter posteriors, "
                         "the answer at the recipe's target budgets and sampler diagnostics; "
                         "write posterior.nc, summary.csv, targets.csv, report.md and PNGs.")
    fit.add_argument("recipe", help="path to a TOML recipe")
    fit.add_argument("--out", required=True, help="results folder (created if needed)")
    fit.add_argument("--draws", type=int, help="posterior draws per chain (overrides recipe)")
    fit.add_argument("--tune", type=int, help="tuning steps per chain (overrides recipe)")
    fit.add_argument("--chains", type=int, help="number of chains (overrides recipe)")
    fit.add_argument("--seed", type=int, help="random seed (overrides recipe)")
    fit.add_argument("--sampler", choices=("nutpie", "pymc", "numpyro"), help="NUTS backend")
    fit.add_argument("--force", action="store_true", help="overwrite the results in the folder "
                     "(any of bayescale's outputs there)")
    fit.add_argument("--no-progress", action="store_true", help="hide the sampling progress bar")
    fit.add_argument("--ranks", action="store_true", help="draw the chains' rank plots "
                     "(ranks.png) even where the sampler diagnostics find no problem")


def _predict_parser(sub) -> None:
    pred = sub.add_parser("predict", help="intervals at budgets or configurations from a "
                          "saved posterior.nc",
                          description="Answer at target budgets (--budgets) or predict the loss "
                          "of the configurations in a CSV (--points: columns params/tokens/flops "
                          "and any hyperparameter columns of the fit).")
    pred.add_argument("posterior", help="a posterior.nc written by `bayescale fit`")
    what = pred.add_mutually_exclusive_group(required=True)
    what.add_argument("--budgets", type=float, nargs="+", help="compute budgets in FLOPs")
    what.add_argument("--points", help="CSV of configurations to predict")
    pred.add_argument("--kind", choices=("mean", "new_run"), default="new_run",
                      help="with --points: the law's mean or a new run's loss (default)")
    pred.add_argument("--prob", type=float, default=0.9, help="interval probability")
    pred.add_argument("--out", help="with --points: write the intervals to this CSV")
    pred.add_argument("--force", action="store_true", help="overwrite the --out file")


def _compare_parser(sub) -> None:
    comp = sub.add_parser("compare", help="rank saved fits by LOO or leave-future-out",
                          description="Compare fits of the same runs: PSIS-LOO (interpolation) "
                          "or leave-future-out refits scored on the largest budgets "
                          "(extrapolation). Each fit is named after its folder or file.")
    comp.add_argument("posteriors", nargs="+", help="posterior.nc files or results folders")
    comp.add_argument("--method", choices=("loo", "lfo", "backtest"), default="loo",
                      help="loo: PSIS-LOO (interpolation); lfo: refit below --holdout and score "
                           "the larger runs; backtest: score the fits' own backtests (no "
                           "refit; fits with discrepancy = \"backtest\")")
    comp.add_argument("--holdout", type=float, help="lfo: fraction of the largest budgets "
                      "(0-1) or a FLOPs threshold (>= 1) to hold out")
    comp.add_argument("--draws", type=int, help="lfo: draws per chain of the refits")
    comp.add_argument("--chains", type=int, help="lfo: chains of the refits")
    comp.add_argument("--seed", type=int, help="lfo: random seed of the refits")
    comp.add_argument("--stack", action="store_true", help="with --budgets: the answer of the "
                      "fits' stacking mixture (weights by --method)")
    comp.add_argument("--budgets", type=float, nargs="+", help="with --stack: compute budgets "
                      "in FLOPs at which to answer")


def _design_parser(sub) -> None:
    des = sub.add_parser("design", help="the next runs within a FLOP budget, from a saved "
                         "posterior.nc", description="Rank candidate runs by the expected "
                         "reduction of the posterior variance of the target (by default the "
                         "loss at the optimum and N* at --at) per FLOP, pick a batch within "
                         "--budget, print it and write design.csv and design.png.")
    des.add_argument("posterior", help="a posterior.nc written by `bayescale fit`")
    des.add_argument("--budget", type=float, required=True, help="FLOPs to spend on the batch")
    what = des.add_mutually_exclusive_group()
    what.add_argument("--candidates", help="CSV of candidate runs (the law's inputs and the "
                      "fit's hyperparameter columns; default: sizes from the sweep's smallest "
                      "to 3x the median N* at --at, at 5 budgets up to --budget)")
    what.add_argument("--grid-budgets", type=float, nargs="+", help="candidates: the sweep's "
                      "own sizes and hyperparameters at these budgets (FLOPs)")
    des.add_argument("--target", nargs="+", help="loss_opt, params_opt, tokens_opt, "
                     "tokens_per_param or a continuous hyperparameter (default: loss_opt "
                     "params_opt)")
    des.add_argument("--at", type=float, help="the target budget in FLOPs")
    des.add_argument("--max-runs", type=int, help="at most this many runs")
    des.add_argument("--out", default=".", help="folder for design.csv and design.png "
                     "(default: the current folder)")
    des.add_argument("--force", action="store_true", help="overwrite design.csv and design.png")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bayescale`` console script; returns the exit status: 0, 2 for a
    user error, 130 / 143 when stopped by SIGINT / SIGTERM (nothing half-written is left)."""
    args = _parser().parse_args(argv)
    from bayescale.report import folders  # after --help, which needs no array library

    written = len(folders.WRITTEN)
    try:
        verbs = {"fit": _fit, "predict": _predict, "compare": _compare, "design": _design,
                 "datasets": _datasets}
        with interrupts.stop_on_signals(), _warnings_as_lines(), \
                progress.listening(PhaseLines()):
            return verbs[args.verb](args)
    except _USER_ERRORS as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"bayescale {args.verb}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        done = folders.WRITTEN[written:]
        what = f"after writing {', '.join(map(str, done))}" if done else "nothing was written"
        print(f"bayescale {args.verb}: interrupted by {interrupts.signal_name()}; stopped, "
              f"{what}", file=sys.stderr)
        return interrupts.exit_status()


def run() -> None:
    """The console script (``bayescale``, ``python -m bayescale``): :func:`main`, then the
    process ends without tearing the interpreter down. Freeing what a fit leaves in memory
    (PyTensor's graphs, numba's compiled functions) takes about a second at exit and writes
    nothing: the standard streams are flushed and the exit handlers run first (they close
    files, logging and matplotlib's figures). Output into a pipe whose reader has gone
    (``bayescale datasets | head``) ends the command quietly, with status 141 as SIGPIPE
    would."""
    try:
        code = main()
    except BrokenPipeError:
        code = 128 + 13
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe
            stream.flush()
    atexit._run_exitfuncs()
    os._exit(code)


def _package_warnings() -> tuple[type[Warning], ...]:
    """The categories of bayescale's own warnings (about the data, the sampler, the answers)."""
    import bayescale as bs

    return (bs.DataWarning, bs.DegenerateWarning, bs.SamplerWarning, bs.ParetoKWarning,
            bs.ExtrapolationWarning, bs.MisfitWarning)


@contextlib.contextmanager
def _warnings_as_lines():
    """bayescale's warnings (:func:`_package_warnings`) as one ``WARNING:`` line each on
    stdout, once per message, without Python's file and line; other warnings as Python shows
    them."""
    categories = _package_warnings()
    seen: set[str] = set()
    with warnings.catch_warnings():
        show = warnings.showwarning

        def as_line(message, category, *rest, **kwargs):
            if not issubclass(category, categories):
                return show(message, category, *rest, **kwargs)
            line = str(message).replace("\n", " ")
            if line not in seen:
                seen.add(line)
                print(f"WARNING: {line}", flush=True)

        warnings.showwarning = as_line
        for category in categories:
            warnings.simplefilter("always", category)
        yield


def _check_out_file(out: str | None, argument: str = "--out") -> None:
    """A file to write: its folder exists and is writable, and it is not a folder itself."""
    if out is None:
        return
    path = Path(out)
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"{argument} {out}: folder {folder} does not exist")
    if path.is_dir():
        raise ValueError(f"{argument} {out} is a folder; give a file name, e.g. "
                         f"{path / 'predictions.csv'}")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{argument} {out}: folder {folder} is not writable")


def _fit(args) -> int:
    import bayescale as bs
    from bayescale.report import folders
    from bayescale.report.recipe import Recipe

    recipe = Recipe.read(args.recipe)
    out = Path(args.out)
    folders.check_outputs(out, overwrite=args.force)
    with progress.phase(f"loading the runs of {args.recipe} and building the model", after=2):
        runs = recipe.runs()
        model = recipe.scaling_law(runs)
    kwargs = recipe.fit_kwargs(draws=args.draws, tune=args.tune, chains=args.chains,
                               random_seed=args.seed, sampler=args.sampler)
    _check_fit_settings(model, kwargs)
    print(f"bayescale {bs.__version__}: recipe {args.recipe}: {_describe(model)} on "
          f"{len(runs)} runs; {kwargs['chains']} chains x {kwargs['draws']} draws "
          f"({kwargs['sampler']})", flush=True)
    # nothing here uses JAX but NumPyro: keep SciPy and matplotlib from importing it (1 s);
    # arviz_base (which nutpie imports anyway) registers the stub that the block hides
    importlib.import_module("arviz_base")
    # the view's first figure: drawn by a second process, started now to import on the idle core
    with FigureWorker.start() or contextlib.nullcontext() as worker, lazy.stubs_hidden(
            *(() if kwargs["sampler"] == "numpyro" else ("jax",))):
        return _fit_answer(recipe, runs, model, kwargs, out, args, worker)


def _fit_answer(recipe, runs, model, kwargs: dict, out: Path, args, worker=None) -> int:
    """Sample, print the answer and the diagnostics, write the results folder."""
    from bayescale.report.answer import format_answer, targets_table, write_results

    fit, caught = _fit_recording(model, kwargs, args)
    interrupts.check()  # a signal that the sampler swallowed
    prob = recipe.prob
    import pandas as pd

    with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 120):
        print(f"\nParameters (median, {prob:.0%} interval, R-hat, bulk/tail ESS):")
        print(fit.summary(prob=prob)[["median", "lower", "upper", "r_hat", "ess_bulk",
                                      "ess_tail"]].to_string())
    targets = targets_table(fit, recipe.budgets, prob=prob) if recipe.budgets else None
    if targets is not None:
        print(f"\nAt the target budgets (median [{prob:.0%} interval]):")
        print(format_answer(fit, prob=prob, table=targets))
    _print_diagnostics(fit, caught)
    stacked = _recipe_stack(recipe, runs, fit, kwargs, args) if recipe.stack else None
    paths = write_results(fit, out, budgets=recipe.budgets, prob=prob,
                          title=f"bayescale fit {args.recipe}", overwrite=args.force,
                          targets=targets, also=_also(_recipe_design(fit, recipe), stacked),
                          ranks=True if args.ranks else None, worker=worker)
    print(f"\nwrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _fit_recording(model, kwargs: dict, args):
    """``model.fit(**kwargs)`` and the warnings it raised (every SamplerWarning, reported by
    the caller)."""
    import bayescale as bs

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bs.SamplerWarning)
        # PyTensor's C backend is not what samples here (nutpie compiles with numba)
        warnings.filterwarnings("ignore", message=".*could not link to a BLAS", category=UserWarning)
        fit = model.fit(progressbar=not args.no_progress, **kwargs)
    return fit, caught


def _check_fit_settings(model, kwargs: dict) -> None:
    """Every check of the sampler settings before any work: the model's own
    (:meth:`bayescale.model.family.Family.check_fit`) and the report's two chains."""
    model.check_fit(**{k: kwargs[k] for k in ("draws", "tune", "chains", "sampler",
                                              "target_accept")})
    if kwargs["chains"] < 2:
        raise ValueError(f"chains={kwargs['chains']}: the report's rank plots compare chains; "
                         "give --chains 2 or more")


def _recipe_stack(recipe, runs, fit, kwargs, args):
    """The recipe's [stack]: the further laws' fits, their weights and the mixture's answer
    at the target budgets, printed; returns (stack, table) for the results folder."""
    import pandas as pd

    from bayescale.report.stacked import format_stack, stack_fits, stack_table

    fits, laws = {fit.model.law.name: fit}, recipe.stack["laws"]
    for k, law in enumerate(laws):  # the recipe's model under each further law
        with progress.phase(f"stack {k + 1} of {len(laws)}: law {law!r}"):
            fits[law], caught = _fit_recording(recipe.scaling_law(runs, law=law), kwargs, args)
        interrupts.check()
        for w in caught:
            print(f"WARNING (law {law!r}): {w.message}")
    stacked = stack_fits(fits, recipe.stack["method"], kwargs)
    with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 160,
                           "display.max_columns", 30):
        print(f"\n{recipe.stack['method'].upper()} comparison of the stacked laws (best first):")
        print(stacked.table.to_string())
    table = stack_table(stacked, recipe.budgets, prob=recipe.prob) if recipe.budgets else None
    if table is not None:
        print("\n" + format_stack(table))
    return stacked, table


def _also(design, stacked):
    """One writer of the results folder's further outputs: the design, the stacked answer."""
    if design is None and stacked is None:
        return None

    def write(folder):
        from bayescale.report.stacked import stack_section, stack_table, write_stack

        paths = design(folder) if design is not None else {}
        if stacked is not None:
            stack, table = stacked
            table = table if table is not None else stack_table(stack, [])
            paths |= write_stack(stack, table, folder)
            with (folder / "report.md").open("a") as report:
                report.write(stack_section(stack, table))
        return paths
    return write


def _recipe_design(fit, recipe):
    """The recipe's [design], written into the results folder (None without one)."""
    if not recipe.design:
        return None
    from bayescale.report.design_report import run_design

    return lambda folder: run_design(fit, recipe.design, folder, source=recipe.source)


def _design(args) -> int:
    import bayescale as bs
    from bayescale.report.design_report import run_design

    fit = bs.load(args.posterior)
    print(_loaded(args.posterior, fit))
    options = {"budget": args.budget, "candidates": args.candidates,
               "grid_budgets": args.grid_budgets, "target": args.target, "at": args.at,
               "max_runs": args.max_runs}
    paths = run_design(fit, options, args.out, overwrite=args.force)
    print(f"\nwrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _describe(model) -> str:
    return model.describe()


def _print_diagnostics(fit, caught) -> None:
    import bayescale as bs

    d = fit.diagnostics()
    print(f"\nSampler diagnostics: divergences {d['divergences']}, max R-hat "
          f"{d['max_r_hat']:.4f}, min bulk ESS {d['min_ess_bulk']:.0f}, "
          f"min tail ESS {d['min_ess_tail']:.0f} ({d['draws']} draws)")
    for problem in fit.diagnostic_problems():
        print(f"WARNING: {problem}")
    if fit.misfit:
        print(f"WARNING: {fit.misfit}")
    for w in caught:
        if not issubclass(w.category, bs.SamplerWarning):
            print(f"warning ({w.category.__name__}): {w.message}", file=sys.stderr)
    if not fit.diagnostic_problems() and not fit.misfit:
        print("no problems found")


def _predict(args) -> int:
    import bayescale as bs
    from bayescale.model.reach import point_messages
    from bayescale.report.answer import format_answer

    if args.budgets is not None and args.out is not None:
        raise ValueError("--out applies to --points only; --budgets prints its answer")
    _check_out_file(args.out)
    fit = bs.load(args.posterior)
    print(_loaded(args.posterior, fit))
    if args.budgets is not None:
        print(f"median [{args.prob:.0%} interval]:")
        print(format_answer(fit, args.budgets, prob=args.prob))
        return 0
    from bayescale.data.readers import read_table

    points = read_table(args.points)
    draws = fit.predict(points, kind=args.kind, random_seed=0)["loss"]
    for message in point_messages(fit.runs, fit.model.points(points)):
        print(f"WARNING: {message}")
    stats = bs.interval(draws, prob=args.prob)
    table = points.reset_index(drop=True).assign(loss=stats["median"].to_numpy(),
                                                 loss_lower=stats["lower"].to_numpy(),
                                                 loss_upper=stats["upper"].to_numpy())
    import pandas as pd

    with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 160,
                           "display.max_columns", 30):
        print(f"{_KIND_NAMES[args.kind]}: median [{args.prob:.0%} interval]\n"
              f"{_finite_only(table).to_string(index=False)}")
    if args.out:
        from bayescale.report import folders

        out = Path(args.out)
        with folders.staged_files(out.parent, [out.name], overwrite=args.force) as temps:
            table.to_csv(temps[out.name], index=False)
        print(f"wrote {args.out}")
    return 0


_KIND_NAMES = {"mean": "the law's mean loss (no run-to-run noise)",
               "new_run": "the loss of a new run (the law's mean and the run-to-run noise)"}


def _loaded(path, fit) -> str:
    """One line saying what was loaded: the file, the model, its runs and draws."""
    post = fit.posterior
    return (f"{path}: {fit.describe()}; {len(fit.runs)} runs; "
            f"{post.sizes['chain'] * post.sizes['draw']} posterior draws")


def _finite_only(table):
    """The predictions table for printing: a loss that is not finite reads "not finite",
    with a WARNING line naming the points."""
    import numpy as np

    shown = table.copy()
    for col in ("loss", "loss_lower", "loss_upper"):
        bad = ~np.isfinite(table[col].to_numpy(dtype=float))
        if bad.any():
            print(f"WARNING: {col} is not finite at {int(bad.sum())} of {len(table)} points "
                  f"(rows {np.flatnonzero(bad)[:5].tolist()}): a degenerate answer")
            shown[col] = [f"{v:.4g}" if ok else "not finite" for v, ok in zip(table[col], ~bad)]
    return shown


def _load_fits(paths) -> dict:
    import bayescale as bs

    fits = {}
    for given in paths:
        path = Path(given)
        path = path / "posterior.nc" if path.is_dir() else path
        name = path.parent.name if path.name == "posterior.nc" else path.stem
        if name in fits:
            raise ValueError(f"two fits are named {name!r}; give files in distinct folders")
        fits[name] = bs.load(path)
    return fits


def _compare(args) -> int:
    import pandas as pd

    import bayescale as bs

    from bayescale.model.points import check_budgets

    if (args.budgets is None) != (not args.stack):
        raise ValueError("--stack and --budgets go together: the stacked answer at budgets")
    with progress.phase(f"loading {len(args.posteriors)} fits", after=2):
        fits = _load_fits(args.posteriors)
    kwargs = {} if args.method in ("loo", "backtest") else {
        "holdout": args.holdout, "draws": args.draws, "chains": args.chains,
        "random_seed": args.seed, "progressbar": False}
    if args.method != "lfo" and args.holdout is not None:
        raise ValueError("--holdout applies to --method lfo only")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    # lfo: each refit has its phase line; loo: one, if it takes long (an error in the arguments
    # comes before any of them, alone on stderr)
    with progress.phase(f"PSIS-LOO of {len(fits)} fits", after=2) if args.method == "loo" \
            else contextlib.nullcontext():
        stacked = bs.stack(fits, method=args.method, **kwargs) if args.stack else None
        table = stacked.table if stacked else bs.compare(fits, method=args.method, **kwargs)
    with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 160,
                           "display.max_columns", 30):
        print(f"{args.method.upper()} comparison (best first; elpd: higher is better)")
        print(table.to_string())
    if stacked:
        _print_stacked(stacked, check_budgets(args.budgets, argument="--budgets"))
    return 0


def _print_stacked(stacked, budgets) -> None:
    """The stacked mixture's loss of a new run (and N*, D* where the fits have them)."""
    from bayescale.report.stacked import format_stack, stack_table

    print("\n" + format_stack(stack_table(stacked, budgets)))


def _datasets(args) -> int:
    import bayescale as bs

    if args.name is None:
        table = bs.datasets.list()
        for _, row in table.iterrows():
            print(f"{row['name']:<20} {row['rows']:>5} runs  loss: {row['loss']}")
        print("\n`bayescale datasets NAME` shows a set's description, source and licence.")
        return 0
    entry = bs.datasets.info(args.name)
    print(f"{entry.name}: {entry.rows} runs\n{entry.description}\nloss: {entry.loss}\n"
          f"source: {entry.source}\nlicence: {entry.licence}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    run()
