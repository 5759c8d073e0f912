"""Property-based tests (hypothesis): generated bad inputs are refused by name, never with a
raw exception.

Three kinds of case: run tables (a valid table with 0-4 generated flaws) through
:func:`bayescale.prepare` and model construction (the PyMC graph is built; nothing is sampled),
filter strings through the filter parser and evaluation, and argument lists through the
command line's ``main(argv)``. A case passes if it is accepted or refused with a ValueError or
TypeError whose message names a column or an argument (the CLI: exit 2 with one line on stderr,
never a traceback). The default run draws :data:`FAST` cases of each kind, ``-m slow``
:data:`SLOW`; both are derandomized, so CI draws the same cases every time.

With ``BAYESCALE_FUZZ_REPORT=path`` the counts of cases by kind and outcome are written there
as JSON (benchmarks/RESULTS.md records them).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayescale as bs
from bayescale.data.filters import filter_rows, parse_filter
from bayescale.report.cli import main

FAST, SLOW = 200, 2000
COUNTS: Counter = Counter()
UNEXPECTED: list[str] = []


def _settings(n: int):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    path = os.environ.get("BAYESCALE_FUZZ_REPORT")
    if path:
        Path(path).write_text(json.dumps({"counts": dict(sorted(COUNTS.items())),
                                          "unexpected": UNEXPECTED}, indent=1))


def _judge(kind: str, run, names) -> None:
    """Run ``run()``; count the outcome; fail on anything but acceptance or a named refusal."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for category in (bs.DataWarning, bs.DegenerateWarning):
                warnings.simplefilter("ignore", category)
            run()
    except (ValueError, TypeError) as err:
        message = str(err)
        named = any(str(n) in message for n in names)
        COUNTS[f"{kind}: {type(err).__name__}"] += 1
        if not named:
            UNEXPECTED.append(f"{kind}: unnamed {type(err).__name__}: {message[:200]}")
        assert named, f"{type(err).__name__} names no column or argument: {message}"
        return
    except Exception as err:  # noqa: BLE001 - anything else is what this test hunts
        UNEXPECTED.append(f"{kind}: {type(err).__name__}: {str(err)[:200]}")
        COUNTS[f"{kind}: unexpected {type(err).__name__}"] += 1
        raise
    COUNTS[f"{kind}: accepted"] += 1


# -- run tables ----------------------------------------------------------------------------
BASE = {"params": [1e8, 2e8, 4e8, 8e8, 1.6e9, 3.2e9],
        "tokens": [2e9, 4e9, 8e9, 1.6e10, 3.2e10, 6.4e10],
        "loss": [3.4, 3.1, 2.9, 2.6, 2.5, 2.4], "lr": [1e-3, 3e-3, 1e-3, 3e-3, 1e-3, 3e-3],
        "opt": ["adam", "sgd", "adam", "sgd", "adam", "sgd"]}
COLUMNS = [*BASE, "flops"]
BAD_VALUES = [np.nan, np.inf, -np.inf, 0.0, -1.0, 5e-324, 1e308, 10**400, -(10**400), 10**30,
              "abc", "1e9", "", None, True, 1 + 2j, b"x", pd.NA, pd.NaT, 3, 2.4]
DTYPES = ["object", "complex128", "Int64", "str", "category", "bool", "float32", "int64",
          "datetime64[ns]"]

flaws = st.one_of(
    st.tuples(st.just("cell"), st.sampled_from(COLUMNS), st.integers(0, 5),
              st.sampled_from(BAD_VALUES)),
    st.tuples(st.just("drop"), st.sampled_from(COLUMNS)),
    st.tuples(st.just("duplicate"), st.sampled_from(COLUMNS)),
    st.tuples(st.just("rename"), st.sampled_from(COLUMNS),
              st.sampled_from(["Model Size", "", "loss", "params", 0, None, "__x"])),
    st.tuples(st.just("constant"), st.sampled_from(COLUMNS), st.sampled_from([2.5, 0.0, "a"])),
    st.tuples(st.just("dtype"), st.sampled_from(COLUMNS), st.sampled_from(DTYPES)),
    st.tuples(st.just("rows"), st.integers(0, 3)),
    st.tuples(st.just("flops"), st.sampled_from([1.0, 1.0 + 1e-12, 1.5, 1e3, 1e-3, np.inf])),
    st.tuples(st.just("huge"), st.sampled_from(["params", "tokens"])),
    st.just(("multiindex",)),
    st.just(("repeat_row",)),
)
keywords = st.fixed_dictionaries({}, optional={
    "params": st.sampled_from(["params", "nope", "Model Size", 3, None]),
    "tokens": st.sampled_from(["tokens", "nope", None]),
    "flops": st.sampled_from(["flops", "nope", None]),
    "loss": st.sampled_from(["loss", "nope", "opt", "lr"]),
    "flops_per_param_token": st.sampled_from([6.0, 0.0, -1.0, np.nan, np.inf, "6", True, 1e308,
                                              2]),
})
models = st.fixed_dictionaries({
    "law": st.sampled_from(["chinchilla", "flops", "flops_pure", "kaplan", "nope", 3]),
    "discrepancy": st.sampled_from(["off", "prior", "backtest", "no"]),
    "noise": st.sampled_from(["student_t", "normal", "t"]),
}, optional={"offsets": st.sampled_from([["opt"], ["lr"], "opt", ["nope"], ["loss"], ["opt",
                                                                                        "opt"]]),
             "continuous": st.sampled_from([["lr"], ["opt"], "lr", ["nope"]]),
             "priors": st.sampled_from([{"alpha": {"dist": "LogNormal", "mu": -1.2,
                                                   "sigma": -0.5}},
                                        {"sigma": {"dist": "HalfNormal", "sigma": 0.0}},
                                        {"nope": {"dist": "Normal"}}, {"alpha": 3},
                                        {"log_E": {"dist": "Uniform", "lower": 1.0,
                                                   "upper": 0.0}}])})


def _apply(df: pd.DataFrame, flaw: tuple) -> pd.DataFrame:
    kind, *args = flaw
    if kind in ("cell", "drop", "duplicate", "rename", "constant", "dtype", "huge") \
            and args[0] not in df.columns:
        return df
    if kind == "cell":
        column, row, value = args
        if not len(df) or not df.columns.is_unique:
            return df
        out = df.astype({column: object})
        out.iloc[min(row, len(out) - 1), list(out.columns).index(column)] = value
        return out
    if kind == "drop":
        return df.drop(columns=args[0])
    if kind == "duplicate":
        return pd.concat([df, df[[args[0]]]], axis=1)
    if kind == "rename":
        return df.rename(columns={args[0]: args[1]})
    if kind == "constant":
        return df.assign(**{args[0]: args[1]})
    if kind == "dtype":
        with contextlib.suppress(Exception):  # a cast pandas cannot make: no flaw
            return df.astype({args[0]: args[1]})
        return df
    if kind == "rows":
        return df.iloc[:args[0]]
    if kind == "flops":
        usable = df.columns.is_unique and {"params", "tokens"} <= set(df.columns) \
            and df["params"].dtype == float and df["tokens"].dtype == float
        return df.assign(flops=6 * df["params"] * df["tokens"] * args[0]) if usable else df
    if kind == "huge":
        return df.assign(**{args[0]: [1e200] * len(df)})
    if kind == "multiindex":
        out = df.copy()
        out.columns = pd.MultiIndex.from_tuples([("a", str(c)) for c in df.columns])
        return out
    return pd.concat([df, df.iloc[:1]])


def _names(df: pd.DataFrame, *more) -> list:
    columns = [c for c in (df.columns.to_flat_index() if hasattr(df, "columns") else [])]
    return [*(repr(c) for c in columns), *(str(c) for c in columns if str(c)), "df", "runs",
            "params", "tokens", "flops", "loss", "law", "offsets", "continuous", "priors",
            "prior", "noise", "discrepancy", "flops_per_param_token", "columns", "column",
            *more]


def _table_case(data, flops: bool) -> tuple[pd.DataFrame, dict, dict]:
    df = pd.DataFrame(BASE)
    if flops:
        df["flops"] = 6 * df["params"] * df["tokens"]
    for flaw in data.draw(st.lists(flaws, max_size=4)):
        df = _apply(df, flaw)
    return df, data.draw(keywords), data.draw(models)


def _through_models(df, kwargs, options) -> None:
    runs = bs.prepare(df, **kwargs)
    bs.ScalingLaw(runs, **options).model
    if {"params", "flops"} <= set(runs.columns):
        with contextlib.suppress(ValueError):  # most tables lack 3 sizes at 2 budgets
            bs.IsoFlop(runs).model


def _check_tables(data) -> None:
    df, kwargs, options = _table_case(data, data.draw(st.booleans()))
    names = _names(df, *[v for v in kwargs.values() if isinstance(v, str)])
    _judge("run table via prepare", lambda: _through_models(df, kwargs, options), names)
    _judge("run table straight to ScalingLaw", lambda: bs.ScalingLaw(df, **options).model,
           names)


@_settings(FAST)
@given(data=st.data())
def test_generated_run_tables(data):
    _check_tables(data)


@pytest.mark.slow
@_settings(SLOW)
@given(data=st.data())
def test_generated_run_tables_at_length(data):
    _check_tables(data)


# -- filters -------------------------------------------------------------------------------
FRAGMENTS = ["loss", "params", "flops", "opt", "`Model Size`", "`", "__import__", "__class__",
             "os", "system", "(", ")", "[", "]", "{", "}", ".", ",", ":", ";", "@", "'", '"',
             "'adam'", '"x"', "f'", "b'", "\\", "\n", "#", "lambda", "for", "in", "not", "and",
             "or", "if", "else", ":=", "=", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*",
             "/", "**", "//", "%", "~", "&", "|", "^", "1", "0", "1e308", "1e400", "-1", ".5",
             "1_0", "0x1f", "9" * 400, "True", "None", "import", "eval", "exec", "open",
             "getattr", "pd", "np", " ", "\t", "é", "\u00a0", "\x00", "💥"]
RUNS = pd.DataFrame({"loss": [3.0, 2.5, 2.0], "params": [1e8, 1e9, 1e10],
                     "flops": [1e18, 1e19, 1e20], "opt": ["adam", "sgd", "adam"],
                     "Model Size": [1, 2, 3]})

filters = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join),
    st.lists(st.sampled_from(FRAGMENTS), max_size=30).map(" ".join),
    st.text(max_size=60),
    st.tuples(st.integers(0, 60), st.sampled_from(["(", "not ", "-", "2**"])).map(
        lambda t: t[1] * t[0] + "loss > 1" + (")" * t[0] if t[1] == "(" else "")),
    st.integers(1900, 2100).map(lambda n: ("loss > 1 and " * 200)[:n]),
)


def _check_filter(text: str) -> None:
    def run():
        kept = filter_rows(RUNS, parse_filter(text))
        assert isinstance(kept, pd.DataFrame) and set(kept.index) <= set(RUNS.index)

    _judge("filter", run, ["filter", "column"])


@_settings(FAST)
@given(filters)
def test_generated_filters(text):
    _check_filter(text)


@pytest.mark.slow
@_settings(SLOW)
@given(filters)
def test_generated_filters_at_length(text):
    _check_filter(text)


# -- the command line ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_files(tmp_path_factory, chinchilla_runs):
    """A saved fake posterior and bad recipes, points and candidates for the CLI cases."""
    import arviz as az
    from conftest import fake_posterior, with_sampled

    folder = tmp_path_factory.mktemp("fuzz_cli")
    spec = bs.ScalingLaw(chinchilla_runs, law="chinchilla", discrepancy="off").spec
    idata = az.from_dict({"posterior": with_sampled(fake_posterior(), spec)})
    fit = bs.Fit.from_sampler(idata, spec=spec, runs=chinchilla_runs, sampler="fake", seed=0)
    fit.save(folder / "fit.nc")
    files = {
        "hostile.toml": '[data]\ndataset = "chinchilla"\nquery = "@pd.io.common.os.system(\'id\')"\n',
        "prior.toml": '[data]\ndataset = "chinchilla"\n[priors]\n'
                      'alpha = { dist = "LogNormal", mu = -1.2, sigma = -0.5 }\n',
        "unknown.toml": '[data]\ndataset = "chinchilla"\n[nope]\n',
        "broken.toml": '[data\n',
        "column.toml": '[data]\ndataset = "chinchilla"\nquery = "los < 3"\n',
        "equal.toml": '[data]\npath = "equal.csv"\n',
        "equal.csv": "params,tokens,loss\n1e8,2e9,3\n2e8,4e9,3\n4e8,8e9,3\n",
        "good.toml": '[data]\ndataset = "chinchilla"\n[model]\ndiscrepancy = "off"\n',
        "points.csv": "params,tokens\n7e10,1.4e12\n1e-300,1e-300\n",
        "bad_points.csv": "params,tokens\nabc,1\n",
        "junk.nc": "not netcdf",
    }
    for name, text in files.items():
        (folder / name).write_text(text)
    contents = {p.name: p.read_bytes() for p in folder.iterdir()}
    return folder, contents


def _value_pool(folder: Path) -> list[str]:
    return [str(folder / n) for n in ("hostile.toml", "prior.toml", "unknown.toml",
                                      "broken.toml", "column.toml", "equal.toml", "good.toml",
                                      "fit.nc", "junk.nc", "points.csv", "bad_points.csv",
                                      "missing.nc")] + [
        str(folder / "nonexistent" / "x.csv"), str(folder), "-1", "0", "1", "12", "20", "abc",
        "nan", "inf", "-inf", "5e-324", "1e400", "1e24", "99999999999999999", "0.5", "2", "",
        "mean", "new_run", "loss_opt", "nope", "lfo", "loo"]


OPTIONS = ["--out", "--draws", "--tune", "--chains", "--seed", "--sampler", "--force",
           "--no-progress", "--budgets", "--points", "--kind", "--prob", "--method",
           "--holdout", "--stack", "--budget", "--candidates", "--grid-budgets", "--target",
           "--at", "--max-runs", "--nope", "-x"]


NUMBERS = ["-1", "0", "1", "2", "12", "13", "20", "abc", "nan", "inf", "-inf", "5e-324", "1e-300",
           "0.5", "0.9", "1e400", "1e24", "1e18", "99999999999999999", "9223372036854775808"]


def _shaped_argv(data, folder: Path) -> list[str]:
    """A verb's usual shape (its required arguments, then optional ones) with generated
    values: these reach the checks behind the parser."""
    number = st.sampled_from(NUMBERS)
    recipes = [str(folder / n) for n in ("hostile.toml", "prior.toml", "unknown.toml",
                                         "broken.toml", "column.toml", "equal.toml",
                                         "good.toml", "missing.toml")]
    posteriors = [str(folder / n) for n in ("fit.nc", "fit.nc", "fit.nc", "junk.nc",
                                            "missing.nc", "good.toml")]
    outs = [str(folder / "out.csv"), str(folder / "nonexistent" / "x.csv"), str(folder),
            str(folder / "fit.nc")]

    def pick(values):
        return data.draw(st.sampled_from(values))

    def numbers(most: int) -> list[str]:
        return [pick(NUMBERS) for _ in range(data.draw(st.integers(1, most)))]

    verb = pick(["fit", "predict", "compare", "design"])
    if verb == "fit":
        argv = ["fit", pick(recipes), "--out", str(folder / pick(["fit_out", "a/b"]))]
        optional = {o: lambda: numbers(1) for o in ("--draws", "--chains", "--tune", "--seed")}
    elif verb == "predict":
        argv = ["predict", pick(posteriors)] + (
            ["--budgets", *numbers(3)] if data.draw(st.booleans()) else
            ["--points", str(folder / pick(["points.csv", "bad_points.csv", "missing.csv",
                                            "good.toml"]))])
        optional = {"--prob": lambda: numbers(1), "--out": lambda: [pick(outs)],
                    "--kind": lambda: [pick(["mean", "new_run"])]}
    elif verb == "compare":
        argv = ["compare", *[pick(posteriors) for _ in range(data.draw(st.integers(1, 2)))]]
        optional = {"--method": lambda: [pick(["loo", "lfo"])], "--holdout": lambda: numbers(1),
                    "--draws": lambda: numbers(1), "--stack": list,
                    "--budgets": lambda: numbers(2)}
    else:
        argv = ["design", pick(posteriors), "--budget", *numbers(1), "--grid-budgets",
                *numbers(2)]
        optional = {"--at": lambda: numbers(1), "--max-runs": lambda: numbers(1),
                    "--target": lambda: [pick(["loss_opt", "params_opt", "nope"])],
                    "--out": lambda: [str(folder / "design_out")]}
    for option in data.draw(st.lists(st.sampled_from(sorted(optional)), max_size=3,
                                     unique=True)):
        argv += [option, *optional[option]()]
    return argv


def _argv(data, folder: Path) -> list[str]:
    if data.draw(st.booleans()):
        return _shaped_argv(data, folder)
    values = st.sampled_from(_value_pool(folder))
    verb = data.draw(st.sampled_from(["fit", "predict", "compare", "design", "datasets", "nope",
                                      "--draws"]))
    argv = [verb] + data.draw(st.lists(values, max_size=2))
    for option in data.draw(st.lists(st.sampled_from(OPTIONS), max_size=5)):
        argv += [option, *data.draw(st.lists(values, max_size=2))]
    return argv


class _Sampled(Exception):
    """The stand-in sampler: argument lists that pass every check reach it (and stop)."""


def _run_cli(argv: list[str]) -> str:
    """Run ``main(argv)``; the outcome, or a RuntimeError naming what went wrong."""
    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    except _Sampled:
        return "accepted, reached sampling"
    lines = err.getvalue().strip().splitlines()
    if code != 0:
        if code != 2 or len(lines) != 1 or "Traceback" in err.getvalue():
            raise RuntimeError(f"exit {code} with {len(lines)} line(s): {err.getvalue()[:300]}")
        return "exit 2, one line"
    for line in out.getvalue().splitlines():
        if not line.startswith("WARNING") and {"nan", "inf", "-inf"} & set(line.split()):
            raise RuntimeError(f"printed {line!r} as an answer")
    return "exit 0"


def _check_cli(data, folder: Path, files: dict) -> None:
    for name, content in files.items():  # a case may have written over one (--out)
        (folder / name).write_bytes(content)
    argv = _argv(data, folder)
    try:
        with warnings.catch_warnings(record=True):  # shown by Python, as a user would see them
            warnings.simplefilter("always")
            outcome = _run_cli(argv)
    except Exception as err:  # noqa: BLE001 - anything escaping main is what this hunts
        UNEXPECTED.append(f"command line {argv}: {type(err).__name__}: {str(err)[:200]}")
        COUNTS[f"command line: unexpected {type(err).__name__}"] += 1
        raise
    COUNTS[f"command line: {outcome}"] += 1


@pytest.fixture
def no_sampling(monkeypatch):
    def refuse(*args, **kwargs):
        raise _Sampled

    monkeypatch.setattr("bayescale.model.family.sample", refuse)
    monkeypatch.setattr("bayescale.model.discrepancy.sample", refuse)


@_settings(FAST)
@given(data=st.data())
def test_generated_command_lines(data, cli_files, no_sampling, monkeypatch):
    monkeypatch.chdir(cli_files[0])
    _check_cli(data, *cli_files)


@pytest.mark.slow
@_settings(SLOW)
@given(data=st.data())
def test_generated_command_lines_at_length(data, cli_files, no_sampling, monkeypatch):
    monkeypatch.chdir(cli_files[0])
    _check_cli(data, *cli_files)
