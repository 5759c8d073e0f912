"""The classic point methods against published numbers and simulated truth.

References come from the data sources' notes (SOURCES.md beside the bundled data) (published results on the bundled data) or
from data simulated here with known parameters; none is computed by the code under test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.analysis.baselines import (
    HOFFMANN_GRID,
    HuberFit,
    argmin_loglinear,
    best_per_budget,
    huber_lbfgs,
    isoflop_argmin,
)

#: A thinning of Hoffmann's grid for fast tests (72 of its 4500 starts: every other value of
#: ``a`` and ``b``, the lower values of ``e``, ``alpha``, ``beta``); the slow test runs it all.
THIN_GRID = {"e": [0.0, 1.0], "a": [0.0, 10.0, 20.0], "b": [0.0, 10.0, 20.0],
             "alpha": [0.0, 1.0], "beta": [0.0, 1.0]}
#: 16 starts for the small simulated tables.
SMALL_GRID = {"e": [0.0], "a": [0.0, 10.0], "b": [0.0, 10.0], "alpha": [0.0, 1.0],
              "beta": [0.0, 1.0]}

#: Epoch AI's refit of Chinchilla (Besiroglu et al. 2024), from SOURCES.md.
EPOCH = {"E": 1.817, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}


@pytest.fixture(scope="module")
def chinchilla_240() -> pd.DataFrame:
    """The 240 Chinchilla runs Epoch fitted: the 245 digitised runs less the 5 highest-loss."""
    runs = bs.datasets.load("chinchilla")
    return runs.drop(runs["loss"].nlargest(5).index)


@pytest.fixture(scope="module")
def epoch_fit(chinchilla_240) -> HuberFit:
    return huber_lbfgs(chinchilla_240, grid=THIN_GRID)


def _chinchilla_runs(theta: dict, *, noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Runs on a 6 x 6 grid of N and D, loss from the Chinchilla law (times log-normal noise)."""
    params, tokens = np.meshgrid(np.geomspace(5e7, 5e9, 6), np.geomspace(1e9, 2e11, 6))
    params, tokens = params.ravel(), tokens.ravel()
    loss = (theta["E"] + theta["A"] * params ** -theta["alpha"]
            + theta["B"] * tokens ** -theta["beta"])
    loss = loss * np.exp(noise * np.random.default_rng(seed).standard_normal(loss.size))
    return bs.prepare(pd.DataFrame({"params": params, "tokens": tokens, "loss": loss}))


TRUTH = {"E": 1.7, "A": 400.0, "B": 1500.0, "alpha": 0.33, "beta": 0.29}


# -- argmin_loglinear -------------------------------------------------------------------------
def test_argmin_loglinear_reproduces_cs336_api_reference():
    runs = bs.datasets.load("cs336_api_2024")
    fit = argmin_loglinear(runs, drop_budgets=[1e13])
    # SOURCES.md: "predicted loss at 1e19 FLOPs ~ 2.74"; tolerance = half a unit of the last digit.
    assert fit.predict(1e19)[0] == pytest.approx(2.74, abs=0.005)
    assert fit.dropped_budgets == (1e13,)
    assert len(fit.best_runs) == 6
    # dropping the smallest budget by count is the same fit
    assert argmin_loglinear(runs, drop_budgets=1).predict([1e19])[0] == fit.predict(1e19)[0]


def test_argmin_loglinear_recovers_a_simulated_power_law():
    budgets = np.array([1e17, 1e18, 1e19, 1e20])
    best = 30.0 * budgets ** -0.05                      # the law the best runs follow
    runs = pd.DataFrame({"flops": np.repeat(budgets, 3),
                         "loss": np.repeat(best, 3) * np.tile([1.3, 1.0, 1.1], 4)})
    fit = argmin_loglinear(runs)
    assert fit.slope == pytest.approx(-0.05, rel=1e-10)
    assert fit.coefficient == pytest.approx(30.0, rel=1e-10)
    assert list(fit.best_runs.index) == [1, 4, 7, 10]
    np.testing.assert_allclose(fit.predict([1e22, 1e23]), 30.0 * np.array([1e22, 1e23]) ** -0.05,
                               rtol=1e-10)


# -- isoflop_argmin ---------------------------------------------------------------------------
def test_isoflop_argmin_reproduces_cs336_reference():
    fit = isoflop_argmin(bs.datasets.load("cs336_isoflops"))
    # SOURCES.md: N_opt = 1.16 C^0.47, D_opt = 0.143 C^0.53 (exponents +-0.01, coefficients to
    # half a unit of their last published digit)
    assert fit.params_exponent == pytest.approx(0.47, abs=0.01)
    assert fit.tokens_exponent == pytest.approx(0.53, abs=0.01)
    assert fit.params_coefficient == pytest.approx(1.16, abs=0.005)
    assert fit.tokens_coefficient == pytest.approx(0.143, abs=0.0005)
    pred = fit.predict([1e23, 1e24])
    # SOURCES.md: N_opt ~ 7.0e10, D_opt ~ 2.4e11 at 1e23; ~ 2.06e11, 8.1e11 at 1e24
    # (again to half a unit of the last published digit)
    assert pred.loc[1e23, "params_opt"] == pytest.approx(7.0e10, abs=0.05e10)
    assert pred.loc[1e23, "tokens_opt"] == pytest.approx(2.4e11, abs=0.05e11)
    assert pred.loc[1e24, "params_opt"] == pytest.approx(2.06e11, abs=0.005e11)
    assert pred.loc[1e24, "tokens_opt"] == pytest.approx(8.1e11, abs=0.05e11)
    assert pred.index.name == "budget"


def test_isoflop_argmin_recovers_a_simulated_allocation():
    rows = []
    for budget in (1e18, 1e19, 1e20, 1e21):
        n_opt = 0.3 * budget ** 0.5
        for n in n_opt * np.array([0.25, 0.5, 1.0, 2.0, 4.0]):    # the optimum is on the grid
            rows.append({"params": n, "flops": budget, "loss": 2.0 + np.log(n / n_opt) ** 2})
    fit = isoflop_argmin(bs.prepare(pd.DataFrame(rows)))
    assert fit.params_exponent == pytest.approx(0.5, rel=1e-10)
    assert fit.params_coefficient == pytest.approx(0.3, rel=1e-9)
    assert fit.tokens_exponent == pytest.approx(0.5, rel=1e-10)         # D = C / (6 N)
    assert fit.tokens_coefficient == pytest.approx(1 / 1.8, rel=1e-9)
    pred = fit.predict(1e24)
    assert pred["params_opt"].iloc[0] * pred["tokens_opt"].iloc[0] * 6 == pytest.approx(1e24)


# -- huber_lbfgs ------------------------------------------------------------------------------
def _assert_epoch(fit: HuberFit) -> None:
    # SOURCES.md (Epoch's refit): E, alpha, beta within 2%; A within 2%; B, the least
    # determined parameter (95% interval 1042-5810), within 5%.
    for name in ("E", "alpha", "beta", "A"):
        assert getattr(fit, name) == pytest.approx(EPOCH[name], rel=0.02), name
    assert fit.B == pytest.approx(EPOCH["B"], rel=0.05)
    # SOURCES.md: compute-optimal exponent a = 0.513 (SE 0.020)
    assert fit.params_exponent == pytest.approx(0.513, abs=0.02)


def test_huber_lbfgs_reproduces_epoch_on_a_thin_grid(epoch_fit):
    _assert_epoch(epoch_fit)
    assert epoch_fit.n_runs == 240
    assert epoch_fit.n_starts == 2 * 3 * 3 * 2 * 2


@pytest.mark.slow
def test_huber_lbfgs_reproduces_epoch_on_hoffmanns_full_grid(chinchilla_240):
    fit = huber_lbfgs(chinchilla_240)
    assert fit.n_starts == np.prod([len(v) for v in HOFFMANN_GRID.values()]) == 4500
    _assert_epoch(fit)


@pytest.mark.slow
def test_huber_lbfgs_bootstrap_matches_epochs_intervals(chinchilla_240):
    fit = huber_lbfgs(chinchilla_240, grid=THIN_GRID, bootstrap=1000, random_seed=0)
    table = fit.interval(0.95)
    # SOURCES.md, Epoch's 95% intervals (4000 replicates); with 1000 replicates each bound
    # within 0.01 (Monte Carlo error of a 2.5% quantile is a few thousandths here)
    for name, (lower, upper) in {"E": (1.769, 1.871), "alpha": (0.317, 0.373),
                                 "beta": (0.331, 0.415)}.items():
        assert table.loc[name, "lower"] == pytest.approx(lower, abs=0.01), name
        assert table.loc[name, "upper"] == pytest.approx(upper, abs=0.01), name
    # SOURCES.md: tokens per parameter at C = 5.88e23, 80% interval "roughly 10-29"
    opt = fit.optimal(5.88e23, prob=0.8)
    assert opt["tokens_per_param_lower"].iloc[0] == pytest.approx(10, abs=2)
    assert opt["tokens_per_param_upper"].iloc[0] == pytest.approx(29, abs=3)


def test_huber_lbfgs_tokens_per_param_at_chinchillas_budget(epoch_fit):
    # SOURCES.md: about 20 tokens per parameter at C = 5.88e23 (80% interval roughly 10-29)
    opt = epoch_fit.optimal(5.88e23)
    assert 10 < opt["tokens_per_param"].iloc[0] < 29


def test_huber_lbfgs_recovers_a_noise_free_law():
    runs = _chinchilla_runs(TRUTH)
    fit = huber_lbfgs(runs, grid=SMALL_GRID)
    for name, value in TRUTH.items():
        assert getattr(fit, name) == pytest.approx(value, rel=1e-4), name
    np.testing.assert_allclose(fit.predict(runs), runs["loss"], rtol=1e-6)
    assert fit.objective < 1e-12


def test_huber_lbfgs_optimal_is_on_the_budget_and_minimises_the_fitted_law(epoch_fit):
    budgets = np.array([1e21, 5.88e23])
    opt = epoch_fit.optimal(budgets)
    np.testing.assert_allclose(6 * opt["params_opt"] * opt["tokens_opt"], budgets, rtol=1e-12)
    for budget, row in opt.iterrows():
        sizes = row["params_opt"] * np.array([0.8, 0.9, 1.0, 1.1, 1.25])
        loss = epoch_fit.predict({"params": sizes, "flops": np.full(5, budget)})
        assert np.argmin(loss) == 2
        assert loss[2] == pytest.approx(row["loss_opt"], rel=1e-12)


def test_huber_lbfgs_bootstrap_is_seeded_and_gives_intervals():
    runs = _chinchilla_runs(TRUTH, noise=0.002, seed=1)
    fit = huber_lbfgs(runs, grid=SMALL_GRID, bootstrap=4, random_seed=7)
    again = huber_lbfgs(runs, grid=SMALL_GRID, bootstrap=4, random_seed=7)
    other = huber_lbfgs(runs, grid=SMALL_GRID, bootstrap=4, random_seed=8)
    assert fit.bootstrap_draws.shape == (4, 5)
    pd.testing.assert_frame_equal(fit.bootstrap_draws, again.bootstrap_draws)
    assert not np.allclose(fit.bootstrap_draws, other.bootstrap_draws)
    # 0.2% noise on 36 runs: each replicate's exponents stay near the truth
    np.testing.assert_allclose(fit.bootstrap_draws["alpha"], TRUTH["alpha"], atol=0.05)
    np.testing.assert_allclose(fit.bootstrap_draws["beta"], TRUTH["beta"], atol=0.05)
    table = fit.interval(0.9)
    assert list(table.index) == ["E", "A", "B", "alpha", "beta", "params_exponent"]
    assert (table["lower"] <= table["upper"]).all()
    opt = fit.optimal([1e22], prob=0.9)
    assert opt["params_opt_lower"].iloc[0] <= opt["params_opt_upper"].iloc[0]


# -- bad input --------------------------------------------------------------------------------
def test_a_single_budget_is_refused():
    runs = pd.DataFrame({"flops": [1e18, 1e18, 1e18], "loss": [3.0, 2.9, 3.1]})
    with pytest.raises(ValueError, match="at least 2 compute budgets"):
        argmin_loglinear(runs)
    two = pd.DataFrame({"flops": [1e18, 1e19], "loss": [3.0, 2.9]})
    with pytest.raises(ValueError, match=r"drop_budgets=1 leaves 1"):
        argmin_loglinear(two, drop_budgets=1)


def test_missing_column_is_named():
    runs = pd.DataFrame({"flops": [1e18, 1e19], "loss": [3.0, 2.9]})
    with pytest.raises(ValueError, match="'params'"):
        isoflop_argmin(runs)
    with pytest.raises(ValueError, match="'tokens'"):
        huber_lbfgs(pd.DataFrame({"params": [1e8] * 6, "loss": [3.0] * 6}))
    with pytest.raises(ValueError, match="'flops'"):
        best_per_budget(pd.DataFrame({"loss": [3.0]}))


@pytest.mark.parametrize("budget", [0.0, -1e20, np.inf])
def test_non_positive_budget_in_predict_is_refused(budget, epoch_fit):
    line = argmin_loglinear(pd.DataFrame({"flops": [1e18, 1e19], "loss": [3.0, 2.9]}))
    iso = isoflop_argmin(bs.datasets.load("cs336_isoflops"))
    for predict in (line.predict, iso.predict, epoch_fit.optimal):
        with pytest.raises(ValueError, match="budgets"):
            predict([1e21, budget])
    with pytest.raises(ValueError, match="points"):
        epoch_fit.predict({"params": [1e9], "tokens": [budget]})


def test_bad_options_are_refused(chinchilla_240, epoch_fit):
    with pytest.raises(TypeError, match="runs must be a pandas DataFrame"):
        argmin_loglinear({"flops": [1e18], "loss": [3.0]})
    with pytest.raises(ValueError, match=r"drop_budgets holds 3.*not a budget of runs"):
        argmin_loglinear(pd.DataFrame({"flops": [1e18, 1e19], "loss": [3.0, 2.9]}),
                         drop_budgets=[3e13])
    with pytest.raises(ValueError, match="drop_budgets must be >= 0"):
        argmin_loglinear(pd.DataFrame({"flops": [1e18, 1e19], "loss": [3.0, 2.9]}), drop_budgets=-1)
    with pytest.raises(TypeError, match="drop_budgets"):
        argmin_loglinear(pd.DataFrame({"flops": [1e18, 1e19], "loss": [3.0, 2.9]}),
                         drop_budgets="1")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['E'\]"):
        huber_lbfgs(chinchilla_240, grid={"E": [0.0]})
    with pytest.raises(TypeError, match=r"grid\['alpha'\] must hold numbers"):
        huber_lbfgs(chinchilla_240, grid={"alpha": ["0.5"]})
    with pytest.raises(ValueError, match=r"shape \(n, 5\)"):
        huber_lbfgs(chinchilla_240, grid=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="delta must be a finite positive number, got 0"):
        huber_lbfgs(chinchilla_240, delta=0)
    with pytest.raises(ValueError, match="bootstrap must be >= 0, got -2"):
        huber_lbfgs(chinchilla_240, bootstrap=-2)
    with pytest.raises(TypeError, match="random_seed"):
        huber_lbfgs(chinchilla_240, random_seed="seven")
    with pytest.raises(RuntimeError, match="no bootstrap draws"):
        epoch_fit.interval()
    with pytest.raises(ValueError, match="loss"):
        argmin_loglinear(pd.DataFrame({"flops": [1e18, 1e19], "loss": [3.0, -1.0]}))
