"""Simulation-based calibration: the bookkeeping is right on small runs and known answers.

The study itself (hundreds of fits) is ``benchmarks/calibration.py``; its figures are in
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import bayescale as bs
from bayescale.analysis import calibration

SMALL = {"draws": 100, "tune": 150, "chains": 2}


@pytest.fixture(scope="module")
def prior_study() -> xr.Dataset:
    return calibration.calibrate("flops", datasets=4, batch=2, random_seed=3, **SMALL)


def test_prior_study_records_every_quantity_per_data_set(prior_study):
    r = prior_study
    assert r.sizes == {"dataset": 4, "quantity": 7}
    assert list(r["quantity"].values) == ["E", "A", "alpha", "sigma", "nu", "loss_10x",
                                          "loss_100x"]
    assert r.attrs["law"] == "flops" and r.attrs["mode"] == "prior"
    assert r.attrs["rank_draws"] == calibration.RANK_DRAWS
    rank = r["rank"].values
    assert ((rank >= 0) & (rank <= r.attrs["rank_draws"])).all()
    # intervals nest and "inside" agrees with them
    assert (r["lower_90"] <= r["lower_50"]).all() and (r["upper_50"] <= r["upper_90"]).all()
    inside = (r["lower_90"] <= r["truth"]) & (r["truth"] <= r["upper_90"])
    assert (inside == r["inside_90"]).all()
    # prior draws differ between data sets; the derived loss follows the law from the truths
    truth = r["truth"].to_pandas()
    assert truth["E"].nunique() == 4
    expected = truth["E"] + truth["A"] * (1e21 * 10) ** -truth["alpha"]
    np.testing.assert_allclose(truth["loss_10x"], expected, rtol=1e-12)


def test_prior_draws_follow_the_calibration_prior():
    """The truths are draws from the priors the fits use (SBC needs exactly that prior)."""
    priors = calibration.default_priors("flops")
    model = bs.ScalingLaw(calibration.default_design("flops"), law="flops", priors=priors)
    truths, log_loss = calibration._simulate(model, ["E", "A", "alpha", "sigma", "nu"],
                                             "prior", None, 2000, 0)
    # log E ~ Normal(log 1.8, 0.15): mean and sd within 4 standard errors
    log_e = np.log(truths["E"])
    assert abs(log_e.mean() - np.log(1.8)) < 4 * 0.15 / np.sqrt(2000)
    assert abs(log_e.std() - 0.15) < 0.01
    assert log_loss.shape == (2000, len(model.runs))


def test_fixed_mode_uses_one_truth_and_noise_only():
    r = calibration.calibrate("flops", datasets=2, mode="fixed", random_seed=0, **SMALL)
    truth = r["truth"].to_pandas()
    ref = calibration.REFERENCE_TRUTHS["flops"]
    for name in ("E", "A", "alpha", "sigma", "nu"):
        np.testing.assert_allclose(truth[name], ref[name])
    assert truth.nunique().max() == 1


def test_the_size_dependent_law_is_calibrated_about_the_designs_centre():
    """``chinchilla_sized`` (the default law): gamma keeps its default prior, and the truths'
    N* and loss at the optimum are those of the law turning about the design's centre, as the
    fits' law does (a law alone would turn about N = D = 1)."""
    from bayescale.model import laws

    priors = calibration.default_priors("chinchilla_sized")
    assert priors["gamma"] == {"dist": "Normal", "mu": 0.0, "sigma": laws.GAMMA_SD}
    truth = dict(calibration.REFERENCE_TRUTHS["chinchilla_sized"], gamma=0.1)
    r = calibration.calibrate("chinchilla_sized", datasets=1, mode="fixed", truth=truth,
                              random_seed=0, **SMALL)
    design = calibration.default_design("chinchilla_sized")
    d = np.log(design["tokens"].to_numpy())
    n = np.log(design["params"].to_numpy())
    law = laws.get_law("chinchilla_sized").bind({"params": n.mean(), "tokens": d.mean()})
    top = design["flops"].max()
    expected = law.optimum({k: np.array([v]) for k, v in truth.items()}, 10 * top)
    got = r["truth"].to_pandas().iloc[0]
    np.testing.assert_allclose(got["N_opt_10x"], expected["params_opt"][0], rtol=1e-10)
    np.testing.assert_allclose(got["loss_10x"], expected["loss_opt"][0], rtol=1e-10)
    unbound = laws.get_law("chinchilla_sized").optimum({k: np.array([v]) for k, v in
                                                         truth.items()}, 10 * top)
    assert abs(np.log(unbound["params_opt"][0] / got["N_opt_10x"])) > 0.1  # it matters


def test_coverage_table_counts_known_indicators():
    quantities = ["a", "b"]
    inside_90 = np.array([[True, False]] * 9 + [[False, False]])  # a: 0.9, b: 0.0
    inside_50 = np.array([[True, True]] * 5 + [[False, True]] * 5)  # a: 0.5, b: 1.0
    ranks = np.array([[i * 10, 99] for i in range(10)])  # a uniform, b all at the top
    result = xr.Dataset({"inside_90": (("dataset", "quantity"), inside_90),
                         "inside_50": (("dataset", "quantity"), inside_50),
                         "rank": (("dataset", "quantity"), ranks)},
                        coords={"quantity": quantities}, attrs={"rank_draws": 99})
    table = calibration.coverage(result)
    assert table.loc["a", "coverage_90"] == pytest.approx(0.9)
    assert table.loc["b", "coverage_90"] == 0.0
    assert table.loc["b", "coverage_50"] == 1.0
    assert table.loc["all", "coverage_90"] == pytest.approx(0.45)
    assert table.loc["a", "se_90"] == pytest.approx(np.sqrt(0.09 / 10))
    assert table.loc["a", "rank_p"] > 0.99 and table.loc["b", "rank_p"] < 1e-6


def test_plot_calibration_draws_one_panel_per_quantity(prior_study):
    import matplotlib.pyplot as plt

    fig = calibration.plot_calibration(prior_study)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == list(prior_study["quantity"].values)
    plt.close(fig)


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "posterior"}, "mode must be one of"),
    ({"datasets": 0}, "datasets must be a positive integer, got 0"),
    ({"batch": -1}, "batch must be a positive integer, got -1"),
    ({"truth": {"E": 1.0}}, "truth is only used with mode='fixed'"),
    ({"mode": "fixed", "truth": {"E": 1.0}}, r"truth lacks \['A', 'alpha', 'sigma', 'nu'\]"),
    ({"priors": {"log_E": {"dist": "Normal", "mu": 0.5, "sigma": 0.1}}},
     "priors must give every prior of the model"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        calibration.calibrate("flops", **kwargs)


def test_unknown_law_is_named():
    with pytest.raises(ValueError, match="unknown law 'hestness'"):
        calibration.calibrate("hestness")


def test_an_executor_gives_the_serial_answer(prior_study):
    """The fits go through fit_many's executor: a thread pool reproduces the serial study."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        threaded = calibration.calibrate("flops", datasets=4, batch=2, random_seed=3,
                                         executor=pool, **SMALL)
    xr.testing.assert_identical(threaded, prior_study)
