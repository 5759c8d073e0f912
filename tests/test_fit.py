"""Plumbing of a fitted law on the shared tiny fit: groups, dims, attrs, summary, predict,
optimal, save/load and reproducibility.

Expected values are computed here from the raw posterior draws with NumPy (or by PyMC), never
taken from the function under test.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr

import bayescale as bs

LAW_PARAMS = ("E", "A", "B", "alpha", "beta")


def draws(fit: bs.Fit, name: str) -> np.ndarray:
    """Posterior draws of ``name`` with a trailing axis for broadcasting over points."""
    return fit.posterior[name].values[..., None]


# -- groups and dims -------------------------------------------------------------------------
def test_posterior_has_every_parameter_over_chain_and_draw(chinchilla_fit, tiny):
    post = chinchilla_fit.idata.posterior
    for name in (*LAW_PARAMS, "sigma", "nu"):
        assert post[name].dims == ("chain", "draw"), name
    assert post.sizes == {"chain": tiny["chains"], "draw": tiny["draws"]}
    assert all(np.all(post[name].values > 0) for name in (*LAW_PARAMS, "sigma", "nu"))


def test_inference_data_has_the_documented_groups(chinchilla_fit, chinchilla_runs):
    idata = chinchilla_fit.idata
    for group in ("posterior", "log_likelihood", "sample_stats", "observed_data", "constant_data"):
        assert group in idata.children, group
    np.testing.assert_array_equal(idata.observed_data["log_loss"].values,
                                  np.log(chinchilla_runs["loss"].to_numpy()))
    np.testing.assert_array_equal(idata.constant_data["params"].values,
                                  chinchilla_runs["params"].to_numpy())


def test_log_likelihood_dims(chinchilla_fit, chinchilla_runs):
    ll = chinchilla_fit.idata.log_likelihood["log_loss"]
    assert ll.dims == ("chain", "draw", "run")
    assert ll.sizes["run"] == len(chinchilla_runs)


def test_log_likelihood_equals_pymc(chinchilla_fit, chinchilla_runs):
    """Pointwise log-likelihood equals PyMC's on the same model, within 1e-6."""
    model = bs.ScalingLaw(chinchilla_runs, law="chinchilla").model
    reference = pm.compute_log_likelihood(chinchilla_fit.idata, model=model,
                                          extend_inferencedata=False, progressbar=False)
    ours = chinchilla_fit.idata.log_likelihood["log_loss"]
    np.testing.assert_allclose(ours.values, reference["log_loss"].transpose(*ours.dims).values,
                               rtol=0, atol=1e-6)


def test_log_likelihood_in_chunks_equals_one_pass(chinchilla_fit, monkeypatch):
    """Large tables are evaluated a few runs at a time; the result must not change."""
    from bayescale.model import family

    draws = chinchilla_fit.posterior.sizes["chain"] * chinchilla_fit.posterior.sizes["draw"]
    monkeypatch.setattr(family, "CHUNK_ELEMENTS", 7 * draws)  # 7 runs per chunk
    chunked = chinchilla_fit._log_likelihood().values
    np.testing.assert_array_equal(chunked, chinchilla_fit.idata.log_likelihood["log_loss"].values)


@pytest.mark.parametrize("law", list(bs.laws.LAWS))
@pytest.mark.parametrize("noise", ["normal", "student_t"])
def test_log_likelihood_equals_pymc_for_every_law(law, noise):
    """Each law's formula, the offsets, the continuous penalty and both noises, evaluated
    from draws in NumPy, against PyMC's own log-likelihood of the graph (prior draws, no NUTS)."""
    rng = np.random.default_rng(7)
    n = 40
    runs = bs.prepare(pd.DataFrame({
        "params": 10 ** rng.uniform(7, 9, n), "tokens": 10 ** rng.uniform(8, 10, n),
        "loss": rng.uniform(2.5, 4.0, n), "width": rng.uniform(0.5, 2.0, n),
        "lr": rng.choice([3e-4, 1e-3, 3e-3], n), "batch": rng.choice(["64", "128"], n)}))
    model = bs.ScalingLaw(runs, law=law, offsets=["lr", "batch"], continuous=["width"],
                          noise=noise)
    with model.model:
        prior = pm.sample_prior_predictive(draws=30, random_seed=3).prior
    idata = xr.DataTree.from_dict({"posterior": prior})
    fit = bs.Fit.from_sampler(idata, spec=model.spec, runs=runs, sampler="fake", seed=0)
    reference = pm.compute_log_likelihood(fit.idata, model=model.model,
                                          extend_inferencedata=False, progressbar=False)
    ours = fit.idata.log_likelihood["log_loss"]
    np.testing.assert_allclose(ours.values, reference["log_loss"].transpose(*ours.dims).values,
                               rtol=1e-9, atol=1e-6)


# -- provenance ------------------------------------------------------------------------------
def test_attrs_carry_spec_law_and_version(chinchilla_fit):
    attrs = chinchilla_fit.idata.posterior.attrs
    assert attrs["law"] == "chinchilla"
    assert attrs["bayescale_version"] == importlib.metadata.version("bayescale")
    spec = json.loads(attrs["spec"])
    assert spec == chinchilla_fit.spec
    assert spec["law"] == "chinchilla" and spec["noise"] == "student_t" and spec["offsets"] == []
    assert attrs["spec_hash"] == hashlib.sha256(attrs["spec"].encode()).hexdigest()


# -- summary ---------------------------------------------------------------------------------
def test_summary_rows_columns_and_values(chinchilla_fit):
    table = chinchilla_fit.summary(prob=0.8)
    assert list(table.index) == [*LAW_PARAMS, "sigma", "nu", "discrepancy_scale"]
    assert list(table.columns) == ["mean", "sd", "median", "lower", "upper",
                                   "r_hat", "ess_bulk", "ess_tail"]
    for name in table.index:
        x = chinchilla_fit.posterior[name].values.ravel()
        lower, median, upper = np.quantile(x, [0.1, 0.5, 0.9])
        np.testing.assert_allclose(table.loc[name, ["lower", "median", "upper"]].to_numpy(float),
                                   [lower, median, upper], rtol=1e-12)
        np.testing.assert_allclose(table.loc[name, "mean"], x.mean(), rtol=1e-12)
    assert table[["r_hat", "ess_bulk", "ess_tail"]].notna().all().all()


# -- predict ---------------------------------------------------------------------------------
def test_predict_mean_is_the_chinchilla_formula(chinchilla_fit, tiny):
    n = np.array([1e8, 1e9, 7e10])
    c = np.array([1e20, 1e21, 5.88e23])
    with pytest.warns(bs.ExtrapolationWarning) as seen:  # 7e10 params: past the runs
        pred = chinchilla_fit.predict({"params": n, "flops": c})
    assert any("7e+10 (row 2)" in str(w.message) for w in seen)
    assert pred["loss"].dims == ("chain", "draw", "point")
    assert pred["loss"].shape == (tiny["chains"], tiny["draws"], 3)
    d = c / (6 * n)
    np.testing.assert_allclose(pred["tokens"].values, d, rtol=1e-12)
    f = chinchilla_fit
    expected = (draws(f, "E") + draws(f, "A") * n ** -draws(f, "alpha")
                + draws(f, "B") * d ** -draws(f, "beta"))
    # times exp(past * s z): past = decades from the nearest run, jointly in N, D, C
    # (the largest coordinate's difference, minimised over runs; brute force here)
    runs = f.runs
    gap = np.stack([np.abs(np.log10(x)[:, None] - np.log10(runs[col].to_numpy())[None, :])
                    for col, x in (("params", n), ("tokens", d), ("flops", c))])
    past = gap.max(axis=0).min(axis=1)
    assert 0 < past[0] < past[2] and past[2] > 1
    # and the tilt s t x_N, x_N = decades of N from the law's N* at C (Hoffmann et al. eq. 4)
    a, b = draws(f, "alpha"), draws(f, "beta")
    n_opt = ((a * draws(f, "A") / (b * draws(f, "B"))) ** (1 / (a + b))
             * (c / 6) ** (b / (a + b)))
    tilt = draws(f, "discrepancy_tilt") * np.log10(n / n_opt)
    assert "discrepancy_bias" not in f.posterior  # no bias unless its prior is given
    expected = expected * np.exp(past * draws(f, "discrepancy_scale")
                                 * (draws(f, "discrepancy_z") + tilt))
    np.testing.assert_allclose(pred["loss"].values, expected, rtol=1e-10)


def test_new_run_intervals_are_wider_than_mean_intervals(chinchilla_fit, chinchilla_runs):
    points = chinchilla_runs.iloc[::40][["params", "tokens"]]
    mean = bs.interval(chinchilla_fit.predict(points, kind="mean"), prob=0.9)
    new = bs.interval(chinchilla_fit.predict(points, kind="new_run", random_seed=1), prob=0.9)
    assert len(mean) == len(new) == len(points)
    assert np.all(new["upper"] - new["lower"] > mean["upper"] - mean["lower"])
    assert np.all(new["lower"] < mean["lower"]) and np.all(new["upper"] > mean["upper"])


def test_new_run_with_same_seed_is_reproducible(chinchilla_fit):
    points = {"params": [1e9], "tokens": [2e10]}
    a = chinchilla_fit.predict(points, kind="new_run", random_seed=5)["loss"].values
    b = chinchilla_fit.predict(points, kind="new_run", random_seed=5)["loss"].values
    c = chinchilla_fit.predict(points, kind="new_run", random_seed=6)["loss"].values
    assert np.array_equal(a, b) and not np.array_equal(a, c)


# -- optimal ---------------------------------------------------------------------------------
def test_optimal_dims_and_allocation(chinchilla_fit, monkeypatch):
    budgets = [1e21, 5.88e23]
    with pytest.warns(bs.ExtrapolationWarning, match=r"at C = 5\.88e\+23 FLOPs .* N\* "):
        opt = chinchilla_fit.optimal(budgets)
    for name in ("params_opt", "tokens_opt", "tokens_per_param", "loss_opt"):
        assert opt[name].dims == ("chain", "draw", "budget"), name
    np.testing.assert_array_equal(opt["budget"].values, budgets)
    np.testing.assert_allclose(opt["tokens_per_param"], opt["tokens_opt"] / opt["params_opt"],
                               rtol=1e-10)
    np.testing.assert_allclose(6 * opt["params_opt"] * opt["tokens_opt"],
                               np.broadcast_to(budgets, opt["params_opt"].shape), rtol=1e-10)
    # without the discrepancy's tilt and the runs' profiles: Hoffmann et al. eq. 4 written out
    # from the draws
    monkeypatch.setattr(bs.ScalingLaw, "profiles_measure_allocation", False)
    f = chinchilla_fit
    a, b = draws(f, "alpha"), draws(f, "beta")
    g = (a * draws(f, "A") / (b * draws(f, "B"))) ** (1 / (a + b))
    law_opt = g * (np.asarray(budgets) / 6) ** (b / (a + b))
    untilted = bs.Fit(f.idata.copy(deep=True), f.spec)
    untilted.idata["posterior"] = xr.DataTree(f.posterior.drop_vars("discrepancy_tilt"))
    with pytest.warns(bs.ExtrapolationWarning):
        np.testing.assert_allclose(untilted.optimal(budgets)["params_opt"].values, law_opt,
                                   rtol=1e-9)
    # with it, N* moves by what the law's misfit past the runs leaves open: at 1.7 decades past
    # the runs the spread of log10 N* across draws is several times the law's
    spread = lambda x: np.log10(np.asarray(x)[..., 1]).std()  # noqa: E731
    assert spread(opt["params_opt"]) > 3 * spread(law_opt)


# -- save / load -----------------------------------------------------------------------------
def test_save_then_load_round_trips(chinchilla_fit, tmp_path):
    path = tmp_path / "fit.nc"
    chinchilla_fit.save(path)
    loaded = bs.load(path)
    assert isinstance(loaded, bs.Fit)
    assert loaded.spec == chinchilla_fit.spec
    for group in ("posterior", "log_likelihood", "observed_data"):
        ours, theirs = getattr(chinchilla_fit.idata, group), getattr(loaded.idata, group)
        assert set(ours.data_vars) == set(theirs.data_vars), group
        for name in ours.data_vars:
            assert np.array_equal(ours[name].values, theirs[name].values), (group, name)
    assert loaded.idata.posterior.attrs["spec"] == chinchilla_fit.idata.posterior.attrs["spec"]
    pd.testing.assert_frame_equal(loaded.runs, chinchilla_fit.runs, check_dtype=False)
    points = {"params": [1e9], "tokens": [2e10]}  # inside the runs: no ExtrapolationWarning
    assert np.array_equal(loaded.predict(points)["loss"].values,
                          chinchilla_fit.predict(points)["loss"].values)


def test_save_refuses_to_overwrite(chinchilla_fit, tmp_path):
    path = tmp_path / "fit.nc"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        chinchilla_fit.save(path)
    assert path.read_bytes() == b"precious"
    chinchilla_fit.save(path, overwrite=True)
    assert np.array_equal(bs.load(path).posterior["alpha"].values,
                          chinchilla_fit.posterior["alpha"].values)


# -- reproducibility -------------------------------------------------------------------------
def test_same_random_seed_gives_identical_draws(chinchilla_fit, chinchilla_runs, make_tiny_fit):
    again = make_tiny_fit(chinchilla_runs, law="chinchilla")
    for name in chinchilla_fit.posterior.data_vars:
        assert np.array_equal(again.posterior[name].values,
                              chinchilla_fit.posterior[name].values), name
    assert again.posterior.attrs["random_seed"] == chinchilla_fit.posterior.attrs["random_seed"]


def test_diagnostics_report_tiny_fit(chinchilla_fit, tiny):
    d = chinchilla_fit.diagnostics()
    assert d["draws"] == tiny["chains"] * tiny["draws"]
    assert d["min_ess_bulk"] == pytest.approx(
        min(float(az.ess(chinchilla_fit.posterior[v].values, method="bulk"))
            for v in chinchilla_fit.posterior.data_vars), rel=1e-9)
    assert d["min_ess_bulk"] < 400  # why the fixture expects a SamplerWarning
    assert d["divergences"] == int(chinchilla_fit.idata.sample_stats["diverging"].sum())


def test_summary_diagnostics_are_not_rounded(chinchilla_fit):
    table = chinchilla_fit.summary()
    post = chinchilla_fit.posterior[list(LAW_PARAMS)]
    r_hat, ess = az.rhat(post), az.ess(post, method="bulk")
    for name in LAW_PARAMS:
        assert table.loc[name, "r_hat"] == pytest.approx(float(r_hat[name]), abs=1e-9), name
        assert table.loc[name, "ess_bulk"] == pytest.approx(float(ess[name]), abs=1e-6), name
