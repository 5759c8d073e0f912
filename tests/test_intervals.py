"""bs.interval on synthetic draws whose quantiles are known in closed form."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

import bayescale as bs

RNG_SEED = 20240611


def as_draws(values: np.ndarray, name: str = "x", **dims) -> xr.DataArray:
    """Reshape a flat sample (or one with trailing dims) into (chain=4, draw, ...)."""
    values = np.asarray(values).reshape(4, -1, *[len(c) for c in dims.values()])
    return xr.DataArray(values, dims=("chain", "draw", *dims), coords=dims, name=name)


def test_eti_on_a_uniform_grid_is_exact():
    """Draws 0, 1, ..., 9999 (shuffled): the p-quantile is p * 9999 (linear interpolation)."""
    values = np.random.default_rng(RNG_SEED).permutation(10_000).astype(float)
    row = bs.interval(as_draws(values), prob=0.9).iloc[0]
    assert row["variable"] == "x"
    assert row["lower"] == pytest.approx(0.05 * 9999, abs=1e-9)
    assert row["upper"] == pytest.approx(0.95 * 9999, abs=1e-9)
    assert row["median"] == pytest.approx(4999.5, abs=1e-9)
    assert row["mean"] == pytest.approx(4999.5, abs=1e-9)
    assert row["sd"] == pytest.approx(np.sqrt((10_000**2 - 1) / 12), rel=1e-3)


@pytest.mark.parametrize("prob", [0.5, 0.8, 0.9, 0.95])
def test_eti_of_normal_draws_matches_normal_quantiles(prob):
    # 200,000 draws: the sample quantile's standard error is below 0.01 at these probabilities
    values = 3.0 + 2.0 * np.random.default_rng(RNG_SEED).standard_normal(200_000)
    row = bs.interval(as_draws(values), prob=prob, method="eti").iloc[0]
    z = stats.norm.ppf((1 + prob) / 2)
    assert row["lower"] == pytest.approx(3.0 - 2.0 * z, abs=0.03)
    assert row["upper"] == pytest.approx(3.0 + 2.0 * z, abs=0.03)
    assert row["median"] == pytest.approx(3.0, abs=0.03)


def test_hdi_of_exponential_draws_starts_at_zero():
    """The 90% HDI of Exponential(1) is [0, -log(0.1)]; the ETI is [-log(0.95), -log(0.05)]."""
    values = np.random.default_rng(RNG_SEED).exponential(1.0, 200_000)
    hdi = bs.interval(as_draws(values), prob=0.9, method="hdi").iloc[0]
    eti = bs.interval(as_draws(values), prob=0.9, method="eti").iloc[0]
    assert hdi["lower"] == pytest.approx(0.0, abs=0.01)
    assert hdi["upper"] == pytest.approx(-np.log(0.1), abs=0.03)
    assert eti["lower"] == pytest.approx(-np.log(0.95), abs=0.01)
    assert eti["upper"] == pytest.approx(-np.log(0.05), abs=0.03)
    # the HDI is the narrowest 90% interval
    assert hdi["upper"] - hdi["lower"] < eti["upper"] - eti["lower"]


def test_hdi_of_symmetric_draws_matches_eti():
    values = np.random.default_rng(RNG_SEED).standard_normal(200_000)
    hdi = bs.interval(as_draws(values), prob=0.9, method="hdi").iloc[0]
    z = stats.norm.ppf(0.95)
    assert hdi["lower"] == pytest.approx(-z, abs=0.03)
    assert hdi["upper"] == pytest.approx(z, abs=0.03)


@pytest.mark.parametrize("method", ["eti", "hdi"])
def test_extra_dims_give_one_row_per_coordinate(method):
    budgets = [1e21, 1e23, 1e25]
    shifts = np.array([0.0, 10.0, 100.0])
    rng = np.random.default_rng(RNG_SEED)
    values = rng.standard_normal((4, 25_000, 1)) + shifts
    table = bs.interval(as_draws(values, name="loss", budget=budgets), prob=0.9, method=method)
    assert list(table.columns) == ["variable", "budget", "mean", "sd", "median", "lower", "upper"]
    assert list(table["budget"]) == budgets
    z = stats.norm.ppf(0.95)
    np.testing.assert_allclose(table["median"], shifts, atol=0.03)
    np.testing.assert_allclose(table["lower"], shifts - z, atol=0.04)
    np.testing.assert_allclose(table["upper"], shifts + z, atol=0.04)


def test_two_extra_dims_and_a_dataset_of_several_variables():
    rng = np.random.default_rng(RNG_SEED)
    a = xr.DataArray(rng.standard_normal((2, 1000, 2, 3)) + np.arange(3),
                     dims=("chain", "draw", "lr", "budget"),
                     coords={"lr": [1e-3, 3e-3], "budget": [1.0, 2.0, 3.0]})
    b = xr.DataArray(rng.standard_normal((2, 1000)) + 7, dims=("chain", "draw"))
    table = bs.interval(xr.Dataset({"a": a, "b": b}), prob=0.5)
    assert list(table["variable"]) == ["a"] * 6 + ["b"]
    rows_a = table[table["variable"] == "a"].set_index(["lr", "budget"])
    for lr in (1e-3, 3e-3):
        for budget in (1.0, 2.0, 3.0):
            x = a.sel(lr=lr, budget=budget).values.ravel()
            np.testing.assert_allclose(rows_a.loc[(lr, budget), ["lower", "median", "upper"]]
                                       .to_numpy(float), np.quantile(x, [0.25, 0.5, 0.75]),
                                       rtol=1e-12)
    assert table.attrs == {"prob": 0.5, "method": "eti"}


def test_unnamed_dataarray():
    da = xr.DataArray(np.ones((2, 10)), dims=("chain", "draw"))
    table = bs.interval(da)
    assert list(table["variable"]) == ["value"]
    assert isinstance(table, pd.DataFrame)


@pytest.mark.parametrize("prob", [0, 1, 0.0, 1.0, 1.5, -0.1, 90, float("nan"), True, "0.9", None])
def test_bad_prob_raises(prob):
    da = as_draws(np.arange(40.0))
    with pytest.raises(ValueError, match=r"prob must be .* got " + _escaped(prob)):
        bs.interval(da, prob=prob)


def test_bad_method_raises():
    with pytest.raises(ValueError, match=r"method must be 'eti' or 'hdi', got 'quantile'"):
        bs.interval(as_draws(np.arange(40.0)), method="quantile")


def test_missing_sample_dims_raise():
    da = xr.DataArray(np.arange(10.0), dims=("sample",))
    with pytest.raises(ValueError, match=r"lacks the sample dims \['chain', 'draw'\]"):
        bs.interval(da)


def test_not_xarray_raises():
    with pytest.raises(TypeError, match="xarray Dataset or DataArray, got ndarray"):
        bs.interval(np.zeros((2, 10)))


def _escaped(value) -> str:
    return re.escape(repr(value))
