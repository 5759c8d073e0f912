"""Tests of bayescale.analysis.compare: PSIS-LOO and leave-future-out comparison, refits, executors.

Real fits are few and tiny (draws=200, tune=200, chains=2) and shared through session fixtures;
every nutpie fit costs a ~15 s compile, so they are counted: the shared ``chinchilla_fit`` of
conftest.py, one flops-law fit, and 3 refits (2 in a thread pool, 1 serial).
"""

from __future__ import annotations

import math
import re
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayescale as bs
from bayescale.model.noise import Noise
from bayescale.analysis.compare import (LFO_COLUMNS, LOO_COLUMNS, ParetoKWarning, compare, fit_many,
                               log_predictive_density, refit)

TINY = {"draws": 200, "tune": 200, "chains": 2, "progressbar": False}


@pytest.fixture(scope="session")
def runs(chinchilla_runs) -> pd.DataFrame:
    return chinchilla_runs


@pytest.fixture(scope="session")
def fits(runs, chinchilla_fit) -> dict[str, bs.Fit]:
    """The flops law (fitted here) and the shared chinchilla-law fit, on the 245 Chinchilla runs."""
    with pytest.warns(bs.SamplerWarning, match="ESS"):
        flops = bs.ScalingLaw(runs, law="flops", discrepancy="prior").fit(random_seed=11, **TINY)
    return {"flops": flops, "chinchilla": chinchilla_fit}


@pytest.fixture(scope="session")
def lfo_threaded(fits) -> pd.DataFrame:
    """Leave-future-out of both laws, the refits run in a thread pool."""
    with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=2) as pool:
        warnings.simplefilter("ignore", bs.SamplerWarning)
        return compare(fits, method="lfo", executor=pool, random_seed=5, **TINY)


# -- the maths, without sampling -----------------------------------------------------------------
def test_log_predictive_density_normal_matches_scipy_mixture():
    y = np.array([0.3, -1.0])
    loc = np.array([0.0, 0.5, 1.0]).reshape(1, 3, 1) * np.ones((1, 1, 2))
    sigma = np.array([0.5, 1.0, 2.0]).reshape(1, 3, 1)
    expected = [math.log(np.mean([stats.norm.pdf(v, m, s) for m, s in
                                  zip((0.0, 0.5, 1.0), (0.5, 1.0, 2.0))])) for v in y]
    np.testing.assert_allclose(log_predictive_density(y, loc, Noise(sigma)), expected, rtol=1e-12)


def test_log_predictive_density_student_t_matches_scipy():
    y = np.array([2.0])
    loc, sigma = np.zeros((2, 1, 1)), np.full((2, 1, 1), 0.5)
    nu = np.array([3.0, 30.0]).reshape(2, 1, 1)
    expected = math.log(0.5 * (stats.t.pdf(2.0, 3.0, 0, 0.5) + stats.t.pdf(2.0, 30.0, 0, 0.5)))
    np.testing.assert_allclose(log_predictive_density(y, loc, Noise(sigma, nu)), [expected], rtol=1e-12)


def test_log_predictive_density_skewed_matches_a_numerical_convolution():
    """Normal(0, sigma) plus Exponential(mean shortfall), integrated over the exponential."""
    from scipy import integrate
    y, sigma, shortfall = np.array([0.05, -0.02]), 0.02, 0.03
    dens = lambda v: integrate.quad(  # noqa: E731
        lambda e: stats.norm.pdf(v - e, 0, sigma) * stats.expon.pdf(e, scale=shortfall),
        0, np.inf)[0]
    noise = Noise(np.full((1, 1, 1), sigma), shortfall=np.full((1, 1, 1), shortfall))
    np.testing.assert_allclose(log_predictive_density(y, np.zeros((1, 1, 2)), noise),
                               [math.log(dens(v)) for v in y], rtol=1e-6)


# -- LOO ------------------------------------------------------------------------------------------
def test_loo_table_columns_and_ranks(fits):
    table = compare(fits, method="loo")
    assert list(table.columns) == list(LOO_COLUMNS)
    assert set(table.index) == {"flops", "chinchilla"}
    assert list(table["rank"]) == [0, 1]
    assert table["elpd"].is_monotonic_decreasing
    assert table["elpd_diff"].iloc[0] == 0 and table["elpd_diff"].iloc[1] > 0
    assert (table["se"] > 0).all() and table["dse"].iloc[1] > 0
    assert table["weight"].sum() == pytest.approx(1.0)
    assert table.attrs["n_runs"] == 245
    # The Chinchilla runs include IsoFLOP sweeps: at (nearly) equal compute the loss varies with
    # the split between N and D, which a law in compute alone cannot express. The two-term law
    # must win interpolation by a wide margin.
    assert table.index[0] == "chinchilla"
    assert table.loc["flops", "elpd_diff"] > 4 * table.loc["flops", "dse"]


def test_loo_warns_about_high_pareto_k_naming_run_and_fit(fits):
    fit = fits["flops"]
    idata = fit.idata.copy()
    ll = idata.log_likelihood["log_loss"].values.copy()
    # one run whose draws disagree wildly: importance ratios exp(-ll) with a very heavy tail
    ll[..., 17] = np.random.default_rng(0).normal(0.0, 25.0, size=ll.shape[:2])
    idata.log_likelihood["log_loss"].values[...] = ll
    bad = bs.Fit(idata, fit.spec)
    run = fit.runs.iloc[17]
    named = re.escape(f"row 17 (N={run['params']:.3g}, D={run['tokens']:.3g}, "
                      f"C={run['flops']:.3g}, loss {run['loss']:.4g}) (k=")
    with pytest.warns(ParetoKWarning, match=rf"fit 'flops'.*Pareto k > 0\.7: .*{named}") as seen:
        table = compare({"flops": bad, "chinchilla": fits["chinchilla"]}, method="loo")
    assert table.loc["flops", "n_pareto_k_high"] >= 1
    assert table.loc["flops", "pareto_k_max"] > 0.7
    # the warning points at the line that called compare, not into the package
    assert {w.filename for w in seen if w.category is ParetoKWarning} == {__file__}


def test_cli_compare_prints_pareto_warnings_as_one_line(fits, tmp_path, capsys):
    from bayescale.report.cli import main

    fit = fits["flops"]
    idata = fit.idata.copy()
    ll = idata.log_likelihood["log_loss"].values.copy()
    ll[..., 17] = np.random.default_rng(0).normal(0.0, 25.0, size=ll.shape[:2])
    idata.log_likelihood["log_loss"].values[...] = ll
    for name, one in (("flops", bs.Fit(idata, fit.spec)), ("chinchilla", fits["chinchilla"])):
        (tmp_path / name).mkdir()
        one.save(tmp_path / name / "posterior.nc")
    assert main(["compare", str(tmp_path / "flops"), str(tmp_path / "chinchilla")]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if "Pareto k" in line]
    assert len(lines) == 1 and lines[0].startswith("WARNING: fit 'flops': PSIS-LOO")
    assert "row 17 (N=" in lines[0]
    assert "ParetoKWarning" not in captured.err and ".py:" not in captured.err


def test_fits_on_different_runs_are_refused(fits):
    fewer = bs.Fit(fits["flops"].idata.isel(run=slice(0, 200)), fits["flops"].spec)
    with pytest.raises(ValueError, match="different runs"):
        compare({"chinchilla": fits["chinchilla"], "flops": fewer})


# -- LFO ------------------------------------------------------------------------------------------
def test_lfo_table_columns_ranks_and_holdout(lfo_threaded, runs):
    table = lfo_threaded
    assert list(table.columns) == list(LFO_COLUMNS)
    assert set(table.index) == {"flops", "chinchilla"}
    assert list(table["rank"]) == [0, 1]
    assert table["elpd"].is_monotonic_decreasing
    assert table["elpd_diff"].iloc[0] == 0 and table["elpd_diff"].iloc[1] > 0
    # default holdout: the top 25% of distinct budgets; every Chinchilla run has its own budget
    n_out = math.ceil(0.25 * runs["flops"].nunique())
    assert (table["n_holdout"] == n_out).all() and (table["n_train"] == len(runs) - n_out).all()
    held = runs["flops"].nlargest(n_out).index
    assert sorted(table.attrs["held_out_runs"]) == sorted(held)
    assert table.attrs["threshold"] == runs["flops"].loc[held].min()
    np.testing.assert_allclose(table["elpd_mean"], table["elpd"] / n_out)
    for col in ("coverage_50", "coverage_90"):
        assert table[col].between(0, 1).all()
    assert (table["coverage_90"] >= table["coverage_50"]).all()
    assert (table["rel_error"] > 0).all() and (table["rel_error"] < 0.5).all()


def test_executor_gives_the_serial_numbers(fits, lfo_threaded):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplerWarning)
        serial = compare({"flops": fits["flops"]}, method="lfo", random_seed=5, **TINY)
    cols = ["elpd", "se", "elpd_mean", "rel_error", "coverage_50", "coverage_90"]
    np.testing.assert_allclose(serial.loc["flops", cols].to_numpy(float),
                               lfo_threaded.loc["flops", cols].to_numpy(float), rtol=1e-12)


# -- bad inputs -----------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["waic", "LOO", None])
def test_unknown_method(fits, method):
    with pytest.raises(ValueError, match=f"method must be one of .*got {method!r}"):
        compare(fits, method=method)


def test_empty_and_wrong_types(fits):
    with pytest.raises(ValueError, match="fits is empty"):
        compare({})
    with pytest.raises(TypeError, match="fits must be a dict"):
        compare([fits["flops"]])
    with pytest.raises(TypeError, match=r"fits\['x'\] must be a bayescale.Fit, got str"):
        compare({"x": "not a fit"})
    with pytest.raises(TypeError, match="fits keys must be names"):
        compare({1: fits["flops"]})


@pytest.mark.parametrize("holdout, error, message", [
    (0, ValueError, "holdout must be .* got 0.0"),
    (-0.2, ValueError, "holdout must be .* got -0.2"),
    (float("nan"), ValueError, "holdout must be"),
    (1.5, ValueError, r"holdout=1.5 leaves 0 budget\(s\)"),
    (1e30, ValueError, "holdout=1e\\+30 holds out no run"),
    ("0.25", TypeError, "holdout must be a fraction"),
    (True, TypeError, "holdout must be a fraction"),
])
def test_bad_holdout(fits, holdout, error, message):
    with pytest.raises(error, match=message):
        compare(fits, method="lfo", holdout=holdout, **TINY)


def test_threshold_leaving_one_training_budget(fits, runs):
    second = float(np.sort(runs["flops"].unique())[1])
    with pytest.raises(ValueError, match=r"leaves 1 budget\(s\) .* at least 2 are needed"):
        compare(fits, method="lfo", holdout=second, **TINY)


def test_lfo_only_options_are_refused_by_loo(fits):
    with pytest.raises(ValueError, match=r"\['holdout'\] apply only to method='lfo'"):
        compare(fits, method="loo", holdout=0.25)
    with pytest.raises(ValueError, match=r"\['draws'\] apply only"):
        compare(fits, method="loo", draws=100)


@pytest.mark.parametrize("prob", [(0.5, 1.0), (0.0,), ("0.9",)])
def test_bad_prob(fits, prob):
    with pytest.raises(ValueError, match="prob must hold numbers strictly between 0 and 1"):
        compare(fits, method="lfo", prob=prob)


def test_bad_executor(fits):
    with pytest.raises(TypeError, match="executor must be a concurrent.futures.Executor"):
        compare(fits, method="lfo", executor="threads", **TINY)


def test_refit_and_fit_many_reject_bad_models(runs):
    with pytest.raises(TypeError, match="models must be a dict"):
        fit_many([("spec", runs)])
    with pytest.raises(TypeError, match=r"models\['a'\] must be a model \(ScalingLaw, IsoFlop, ...\) or a pair"):
        fit_many({"a": runs})
    with pytest.raises(TypeError, match="spec_or_fit must be a bayescale.Fit or its .spec"):
        refit("chinchilla", runs)


@pytest.mark.slow
def test_process_pool_refit_matches_serial(fits, runs):
    """A spawn-started process pool returns the same draws as a serial refit."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    train = runs[runs["flops"] < 1e21]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplerWarning)
        serial = refit(fits["flops"], train, random_seed=3, **TINY)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            other = refit(fits["flops"], train, executor=pool, random_seed=3, **TINY)
    np.testing.assert_array_equal(serial.posterior["alpha"].values, other.posterior["alpha"].values)


def test_refit_rebuilds_the_same_model_with_the_recorded_sampler_settings(monkeypatch,
                                                                          chinchilla_fit):
    """A refit keeps offsets and continuous terms, and the original tune and target_accept."""
    module = sys.modules["bayescale.analysis.compare"]  # bayescale.analysis.compare is also the function's name
    runs = bs.simulate(runs_per_budget=8, random_seed=3)
    model = bs.ScalingLaw(runs, offsets=["num_heads"], continuous=["learning_rate"])
    spec, _, _ = module._job("m", model, {})
    built = {}

    def record(self, **fit_kwargs):
        built.update(offsets=self.offsets, continuous=self.continuous)
        return "fitted"

    monkeypatch.setattr(bs.ScalingLaw, "fit", record)
    assert module._fit_job(spec, runs, {}) == "fitted"
    assert built == {"offsets": ("num_heads",), "continuous": ("learning_rate",)}
    defaults = module._fit_defaults(chinchilla_fit)
    assert defaults["tune"] == chinchilla_fit.posterior.attrs["tune"] == 200
    assert defaults["target_accept"] == chinchilla_fit.posterior.attrs["target_accept"] == 0.9
