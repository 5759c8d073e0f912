"""One test per case of DEVELOPERS.md's "Bad inputs" list (Python API side).

Every case asserts the exception type and that the message names the column or argument and
holds the offending value. The CLI side of the same list lives in tests/test_cli.py.
"""

from __future__ import annotations

import re

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayescale as bs

N = [1e8, 4e8, 1.6e9, 6.4e9]
D = [2e9, 8e9, 3.2e10, 1.28e11]
LOSS = [3.2, 2.9, 2.6, 2.4]


def runs_table(**overrides) -> pd.DataFrame:
    """A valid user table under non-canonical names, with one column replaced."""
    columns = {"Model Size": N, "Tokens": D, "val_loss": LOSS, "lr": [1e-3, 3e-4, 1e-3, 3e-4]}
    return pd.DataFrame(columns | overrides)


def prepare(df: pd.DataFrame) -> pd.DataFrame:
    return bs.prepare(df, params="Model Size", tokens="Tokens", loss="val_loss")


def canonical(**overrides) -> pd.DataFrame:
    """A run table with canonical names that has not been through prepare()."""
    columns = {"params": N, "tokens": D, "loss": LOSS}
    return pd.DataFrame(columns | overrides)


# 1 -----------------------------------------------------------------------------------------
def test_missing_or_misnamed_column():
    df = runs_table()
    with pytest.raises(ValueError, match=r"params='Model size' is not a column of df.*"
                                         r"'Model Size'"):
        bs.prepare(df, params="Model size", tokens="Tokens", loss="val_loss")
    with pytest.raises(ValueError, match=r"loss='loss' is not a column of df"):
        bs.prepare(df, params="Model Size", tokens="Tokens")
    with pytest.raises(TypeError, match=r"tokens must be a column name \(str\), got 3"):
        bs.prepare(df, params="Model Size", tokens=3, loss="val_loss")
    with pytest.raises(ValueError, match=r"law 'chinchilla' needs column 'tokens'"):
        bs.ScalingLaw(canonical().drop(columns="tokens"), law="chinchilla")


# 2-5 ---------------------------------------------------------------------------------------
BAD_VALUES = [pytest.param(np.nan, "NaN", "nan", id="nan"),
              pytest.param(np.inf, "infinite", "inf", id="inf"),
              pytest.param(-np.inf, "infinite", "-inf", id="-inf"),
              pytest.param(0.0, "not positive", "0.0", id="zero"),
              pytest.param(-2.5, "not positive", "-2.5", id="negative")]


@pytest.mark.parametrize("bad, what, shown", BAD_VALUES)
@pytest.mark.parametrize("column, argument", [("Model Size", "params"), ("Tokens", "tokens"),
                                              ("val_loss", "loss")])
def test_bad_number_in_prepare(column, argument, bad, what, shown):
    values = list(runs_table()[column])
    values[2] = bad
    pattern = (rf"column '{column}' \({argument}\) has 1 {what} value\(s\), first at row 2: "
               rf"{re.escape(shown)};")
    with pytest.raises(ValueError, match=pattern):
        prepare(runs_table(**{column: values}))


@pytest.mark.parametrize("bad, what, shown", BAD_VALUES)
@pytest.mark.parametrize("column", ["params", "tokens", "loss"])
def test_bad_number_in_scaling_law(column, bad, what, shown):
    values = list(canonical()[column])
    values[1] = bad
    with pytest.raises(ValueError, match=rf"column '{column}' .* {what} .*row 1: "
                                         rf"{re.escape(shown)};"):
        bs.ScalingLaw(canonical(**{column: values}), law="chinchilla")


@pytest.mark.parametrize("bad", [0.0, -1e21, np.nan])
def test_bad_number_in_flops_for_the_flops_law(bad):
    flops = [1e18, 1e19, bad, 1e21]
    with pytest.raises(ValueError, match=rf"column 'flops' .*row 2: {re.escape(repr(bad))};"):
        bs.ScalingLaw(pd.DataFrame({"flops": flops, "loss": LOSS}), law="flops")


# 6 -----------------------------------------------------------------------------------------
def test_strings_in_a_numeric_column():
    with pytest.raises(TypeError, match=r"column 'val_loss' \(loss\) must be numeric; "
                                        r"it holds 'diverged'"):
        prepare(runs_table(val_loss=[3.2, 2.9, "diverged", 2.4]))
    with pytest.raises(TypeError, match=r"column 'Tokens' \(tokens\) must be numeric; "
                                        r"it holds '2e9'"):
        prepare(runs_table(Tokens=["2e9", "8e9", "3.2e10", "1.28e11"]))
    with pytest.raises(TypeError, match=r"column 'params' \(params\) must be numeric; "
                                        r"it holds '1B'"):
        bs.ScalingLaw(canonical(params=[1e8, 4e8, "1B", 6.4e9]))


# 7 -----------------------------------------------------------------------------------------
def test_runs_sharing_one_compute_budget():
    n = np.array(N)
    runs = bs.prepare(pd.DataFrame({"params": n, "tokens": 1e20 / (6 * n), "loss": LOSS}))
    with pytest.raises(ValueError, match=r"single compute budget \(flops=1e\+20\)"):
        bs.ScalingLaw(runs, law="chinchilla")
    flops_only = pd.DataFrame({"flops": [3e19] * 4, "loss": LOSS})
    with pytest.raises(ValueError, match=r"single compute budget \(flops=3e\+19\)"):
        bs.ScalingLaw(flops_only, law="flops")


def test_runs_sharing_one_compute_budget_without_a_flops_column():
    n = np.array(N)
    with pytest.raises(ValueError, match=r"single compute budget"):
        bs.ScalingLaw(canonical(tokens=1e20 / (6 * n)), law="chinchilla")


# 8 -----------------------------------------------------------------------------------------
def test_duplicate_runs():
    df = runs_table()
    df = pd.concat([df, df.iloc[[1]]], ignore_index=True)
    with pytest.raises(ValueError, match=r"1 duplicate run\(s\): row 4 repeats an earlier row"):
        prepare(df)


def test_duplicate_runs_in_scaling_law():
    df = canonical()
    with pytest.raises(ValueError, match=r"duplicate run\(s\): row 4"):
        bs.ScalingLaw(pd.concat([df, df.iloc[[1]]], ignore_index=True))


# 9 -----------------------------------------------------------------------------------------
def test_unknown_law():
    runs = prepare(runs_table())
    with pytest.raises(ValueError, match=r"unknown law 'hestness'; known laws are \['chinchilla'"):
        bs.ScalingLaw(runs, law="hestness")
    with pytest.raises(TypeError, match=r"law must be a str, got None"):
        bs.ScalingLaw(runs, law=None)
    with pytest.raises(ValueError, match=r"noise must be one of .*got 'cauchy'"):
        bs.ScalingLaw(runs, noise="cauchy")


# 10 ----------------------------------------------------------------------------------------
def test_unknown_hyperparameter():
    runs = prepare(runs_table())
    with pytest.raises(ValueError, match=r"offsets names column 'warmup', which the run table "
                                         r"lacks"):
        bs.ScalingLaw(runs, offsets=["lr", "warmup"])
    with pytest.raises(TypeError, match=r"offsets must be a list of column names, got 'lr'"):
        bs.ScalingLaw(runs, offsets="lr")


# 11 ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("budget, error, shown", [
    (0, ValueError, "0"), (0.0, ValueError, "0.0"), (-1e21, ValueError, "-1e+21"),
    (float("nan"), ValueError, "nan"), (float("inf"), ValueError, "inf"),
    ("1e21", TypeError, "'1e21'"), (None, TypeError, "None"), (True, TypeError, "True")])
def test_target_budget_not_a_positive_number(fake_fit, budget, error, shown):
    with pytest.raises(error, match=rf"budgets must hold .*got {re.escape(shown)}$"):
        fake_fit.optimal(budget)
    with pytest.raises(error, match=rf"budgets must hold .*got {re.escape(shown)}$"):
        fake_fit.optimal([1e21, budget])


def test_target_budget_empty(fake_fit):
    with pytest.raises(ValueError, match=r"budgets must be a number or a non-empty list.*\[\]"):
        fake_fit.optimal([])


def test_huge_integer_budget_is_a_number(fake_fit):
    """10**24 is a Python int beyond int64: a valid budget, not a confusing TypeError."""
    with pytest.warns(bs.ExtrapolationWarning, match=r"at C = 1e\+24 FLOPs"):  # past the runs
        opt = fake_fit.optimal([10**21, 10**24])
    np.testing.assert_array_equal(opt["budget"].values, [1e21, 1e24])


@pytest.mark.parametrize("bad, shown", [(0.0, "0.0"), (-7e10, "-70000000000.0"),
                                        (np.nan, "nan")])
def test_target_point_not_a_positive_number(fake_fit, bad, shown):
    with pytest.raises(ValueError, match=rf"column 'params' \(points\) .*row 1: "
                                         rf"{re.escape(shown)};"):
        fake_fit.predict({"params": [7e10, bad], "tokens": [1.4e12, 1.4e12]})


# 12 ----------------------------------------------------------------------------------------
def test_empty_table(fake_fit):
    with pytest.raises(ValueError, match=r"df is empty"):
        prepare(runs_table().iloc[:0])
    with pytest.raises(ValueError, match=r"runs has 0 row\(s\)"):
        bs.ScalingLaw(canonical().iloc[:0])
    with pytest.raises(ValueError, match=r"runs has 1 row\(s\)"):
        bs.ScalingLaw(canonical().iloc[:1])
    with pytest.raises(ValueError, match=r"points is empty"):
        fake_fit.predict(pd.DataFrame({"params": [], "tokens": []}))


# 13 ----------------------------------------------------------------------------------------
def test_law_that_needs_params_and_tokens_given_only_flops():
    runs = bs.prepare(pd.DataFrame({"C": [1e18, 1e19, 1e20, 1e21], "L": LOSS}),
                      flops="C", loss="L")
    with pytest.raises(ValueError, match=r"law 'chinchilla' needs params and tokens.*only flops"):
        bs.ScalingLaw(runs, law="chinchilla")


# 14 ----------------------------------------------------------------------------------------
def test_offset_column_with_a_single_level():
    runs = prepare(runs_table(lr=[1e-3] * 4))
    with pytest.raises(ValueError, match=r"offset column 'lr' has a single level \(.*0\.001"):
        bs.ScalingLaw(runs, offsets=["lr"])


def test_offset_column_named_run_is_refused():
    """'run' is the dimension of the observations: an offset on it would clash."""
    runs = prepare(runs_table(run=["a", "a", "b", "b"]))
    with pytest.raises(ValueError, match=r"offsets cannot include 'run'.*'curve'"):
        bs.ScalingLaw(runs, offsets=["run"])


# 15 ----------------------------------------------------------------------------------------
def test_priors_with_unknown_names():
    runs = prepare(runs_table())
    with pytest.raises(ValueError, match=r"priors has unknown name\(s\) \['exponent'\]; valid "
                                         r"names are \['alpha'"):
        bs.ScalingLaw(runs, priors={"exponent": {"dist": "Normal", "mu": 0, "sigma": 1}})


@pytest.mark.parametrize("name, spec, error, pattern", [
    ("alpha", {"dist": "Bogus", "mu": 0.0}, ValueError, r"prior 'alpha' has dist='Bogus'"),
    ("alpha", {"dist": "Normal", "mu": 0.3, "sigma": 0.1}, ValueError,
     r"prior 'alpha' has dist='Normal'; allowed for this positive parameter"),
    ("log_E", {"dist": "Normal", "mu": 0.5, "sd": 1.0}, ValueError,
     r"prior 'log_E' = .*'sd': 1\.0.* is not a valid pymc\.Normal"),
    ("log_E", {"dist": "Normal", "mu": "zero", "sigma": 1.0}, TypeError,
     r"prior 'log_E': parameter mu='zero' must be a finite number"),
    ("log_E", "Normal(0, 1)", TypeError, r"prior 'log_E' must be a dict .*got 'Normal\(0, 1\)'"),
])
def test_priors_with_an_unknown_distribution_or_bad_spec(name, spec, error, pattern):
    with pytest.raises(error, match=pattern):
        bs.ScalingLaw(prepare(runs_table()), priors={name: spec})


# 16 ----------------------------------------------------------------------------------------
def test_results_file_missing(tmp_path):
    path = tmp_path / "nowhere.nc"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        bs.load(path)


def test_results_file_garbage(tmp_path):
    path = tmp_path / "garbage.nc"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match=re.escape(str(path)) + " is not a readable netCDF"):
        bs.load(path)


def test_results_file_truncated(fake_fit, tmp_path):
    whole = tmp_path / "whole.nc"
    fake_fit.save(whole)
    assert isinstance(bs.load(whole), bs.Fit)  # the untruncated file is fine
    path = tmp_path / "truncated.nc"
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=re.escape(str(path)) + " is not a readable netCDF"):
        bs.load(path)


@pytest.mark.parametrize("kind", ["plain xarray", "arviz"])
def test_results_file_not_written_by_bayescale(tmp_path, kind):
    path = tmp_path / "other.nc"
    if kind == "arviz":
        az.from_dict({"posterior": {"alpha": np.zeros((2, 10))}}).to_netcdf(str(path),
                                                                      engine="h5netcdf")
    else:
        xr.Dataset({"loss": ("run", [3.1, 2.9])}).to_netcdf(path, engine="h5netcdf")
    with pytest.raises(ValueError, match=re.escape(str(path)) + " was not written by bayescale"):
        bs.load(path)


def test_results_file_with_edited_spec(fake_fit, tmp_path):
    path = tmp_path / "edited.nc"
    idata = fake_fit.idata.copy()
    idata["posterior"].attrs["spec"] = idata["posterior"].attrs["spec"].replace('"student_t"',
                                                                          '"normal"')
    idata.to_netcdf(str(path), engine="h5netcdf")
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": the model spec does not "
                                                                "match its recorded hash"):
        bs.load(path)
