"""The next runs: the Bayes linear adjustment against closed forms, the batch, the known
situation, the bad inputs, and the command line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.model.design import _LinearState, _noise_variance
from bayescale.report.cli import main
from bayescale.report.recipe import Recipe


# -- the maths, without a sampler -------------------------------------------------------------
def _gaussian_draws(n: int, seed: int = 0):
    """Draws of a linear model: theta ~ N(0, I_2), mu_k = theta_0 + x_k theta_1, t = theta_0
    + 3 theta_1; returns (means (n, K), target (n, 1), design matrix X)."""
    rng = np.random.default_rng(seed)
    x = np.array([[1.0, -1.0], [1.0, 0.5], [1.0, 2.0], [1.0, 2.5]])
    theta = rng.standard_normal((n, 2))
    return theta @ x.T, (theta @ np.array([1.0, 3.0]))[:, None], x


def test_the_sequential_adjustment_is_the_batch_formula():
    """Rank-one updates after two picks = Var(t) - C_ty (C_yy + r I)^-1 C_yt on the same draws."""
    means, target, _ = _gaussian_draws(500)
    noise = 0.3
    state = _LinearState(means, target, noise)
    for j in (2, 0):
        state.pick(j)
    cov = np.cov(np.column_stack([target[:, 0], means[:, [2, 0]]]), rowvar=False)
    c_ty, c_yy = cov[0, 1:], cov[1:, 1:] + noise * np.eye(2)
    expected = cov[0, 0] - c_ty @ np.linalg.solve(c_yy, c_ty)
    assert state.var_targets[0] == pytest.approx(expected, rel=1e-10)


def test_the_adjustment_is_the_exact_posterior_variance_of_a_gaussian_linear_model():
    """For a Gaussian linear model the expected posterior variance is known in closed form;
    the estimate from 20,000 prior draws is within 3% of it (sampling error of covariances)."""
    means, target, x = _gaussian_draws(20_000, seed=1)
    noise = 0.5
    state = _LinearState(means, target, noise)
    chosen = [3, 0]
    gains = []
    for j in chosen:
        gains.append(state.gains()[j])
        state.pick(j)
    xs = x[chosen]
    posterior = np.linalg.inv(np.eye(2) + xs.T @ xs / noise)
    a = np.array([1.0, 3.0])
    assert state.var_targets[0] == pytest.approx(a @ posterior @ a, rel=0.03)
    assert sum(gains) == pytest.approx(1 - a @ posterior @ a / 10.0, rel=0.03)


def test_a_run_that_tells_nothing_gains_nothing_and_the_best_run_is_the_target_itself():
    rng = np.random.default_rng(2)
    t = rng.standard_normal(4000)
    means = np.column_stack([t, rng.standard_normal(4000), 0.5 * t])
    gains = _LinearState(means, t[:, None], 0.1).gains()
    assert gains[1] < 0.01
    assert gains[0] == pytest.approx(1 / 1.1, rel=0.02)      # Var t / (Var t + noise)
    assert gains[0] > gains[2] > gains[1]


def test_the_bound_misses_what_is_not_linear():
    """The documented limitation: t = theta^2 with theta ~ N(0, 1) is uncorrelated with y =
    theta + noise, so the linear adjustment sees no gain, though observing y shrinks the
    expected Var(t | y) (here by quadrature on a grid of theta, 2% sampling error from the 2,000
    outcomes) from 2 to 0.72."""
    rng = np.random.default_rng(4)
    theta = rng.standard_normal(50_000)
    noise = 0.25
    gain = _LinearState(theta[:, None], (theta ** 2)[:, None], noise).gains()[0]
    assert gain < 0.01
    grid = np.linspace(-8, 8, 1601)
    prior = np.exp(-grid ** 2 / 2)
    ys = rng.standard_normal(2000) + rng.normal(0, np.sqrt(noise), 2000)
    like = np.exp(-(ys[:, None] - grid) ** 2 / (2 * noise)) * prior
    like /= like.sum(axis=1, keepdims=True)
    t = grid ** 2
    expected_var = np.mean(like @ t ** 2 - (like @ t) ** 2)
    # closed form: theta | y ~ N(0.8 y, 0.2), so E Var(theta^2 | y) = 4 (0.64 E y^2) 0.2 + 2 0.2^2
    assert expected_var == pytest.approx(0.72, rel=0.06)
    assert 1 - expected_var / 2.0 > 0.33   # Var(theta^2) = 2: a third of it and more is learnt


# -- on fits ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lr_fit(make_tiny_fit):
    """A tiny fit of simulated runs with the learning rate as a continuous hyperparameter."""
    runs = bs.simulate(bs.Truth(heads_tau=0.0), budgets=(1e16, 3e16, 1e17), runs_per_budget=10,
                       random_seed=3)
    return make_tiny_fit(runs[["params", "tokens", "flops", "learning_rate", "loss"]],
                         law="chinchilla", continuous=["learning_rate"])


@pytest.fixture(scope="module")
def grid(lr_fit):
    return bs.candidate_grid(lr_fit, budgets=[1e17, 3e17, 1e18])


def test_candidate_grid_is_the_sweeps_sizes_and_levels_at_new_budgets(lr_fit, grid):
    runs = lr_fit.runs
    per_budget = runs["params"].nunique() * runs["learning_rate"].nunique()
    assert len(grid) == 3 * per_budget
    assert np.allclose(6 * grid["params"] * grid["tokens"], grid["flops"])
    assert set(grid["learning_rate"]) == set(runs["learning_rate"])
    sweep = bs.candidate_grid(lr_fit, budgets=[1e18], configurations="sweep")
    assert len(sweep) == len(runs[["params", "learning_rate"]].drop_duplicates())


def test_candidate_grid_takes_sizes_a_rounding_apart_as_one(chinchilla_fit):
    sizes = np.sort(bs.candidate_grid(chinchilla_fit, budgets=[1e22])["params"].to_numpy())
    assert np.all(sizes[1:] / sizes[:-1] > 1.001)
    raw = np.unique(chinchilla_fit.runs["params"])
    assert len(sizes) < len(raw)   # the digitised Chinchilla sizes differ in their last digits
    sweep = bs.candidate_grid(chinchilla_fit, budgets=[1e22], configurations="sweep")
    assert set(sweep["params"]) == set(sizes)


def test_the_batch_keeps_within_the_budget_and_reports_its_running_total(lr_fit, grid):
    chosen = bs.design(lr_fit, grid, budget=2e18, target=["loss_opt", "learning_rate"], at=1e19)
    assert 0 < chosen["total_flops"].iloc[-1] <= 2e18
    assert np.allclose(chosen["total_flops"], np.cumsum(chosen["flops"]))
    assert chosen.index.is_unique and set(chosen.index) <= set(grid.index)
    assert (chosen["gain"] > 0).all()
    for name in ("loss_opt", "learning_rate"):
        sd = chosen[f"sd_{name}"].to_numpy()
        assert np.all(np.diff(sd) <= 1e-12) and sd[-1] < chosen.attrs["sd_before"][name]
    assert chosen.attrs["sd_after"]["loss_opt"] == pytest.approx(chosen["sd_loss_opt"].iloc[-1])
    # what no candidate that still fits could add beats nothing: the leftover FLOPs are small
    left = 2e18 - chosen["total_flops"].iloc[-1]
    unused = grid.drop(index=chosen.index)
    assert (unused["flops"] > left).all() or len(chosen) == len(grid)


def test_fit_design_is_bs_design(lr_fit, grid):
    a = lr_fit.design(grid, budget=1e18, target="learning_rate", at=1e19)
    b = bs.design(lr_fit, grid, budget=1e18, target="learning_rate", at=1e19)
    pd.testing.assert_frame_equal(a, b)


def test_runs_near_the_target_budget_teach_more_about_the_loss_there(chinchilla_fit):
    """The known situation: for the loss at the optimum of 1e24 FLOPs, a run at the optimum of
    1e23 (one decade short) removes more variance than one at 1e19 (five decades short), and
    a run at the target's own optimum removes Var(t) / (Var(t) + noise) of it (its log mean
    is nearly the target itself; 10% tolerance for N* at the median rather than per draw)."""
    with pytest.warns(bs.ExtrapolationWarning):  # N* at 1e23 and 1e24: past the runs' sizes
        opt = {c: float(chinchilla_fit.optimal([c])["params_opt"].median())
               for c in (1e19, 1e23, 1e24)}
    candidates = pd.DataFrame({"params": list(opt.values()), "flops": list(opt)},
                              index=["tiny", "near", "target"])
    chosen = bs.design(chinchilla_fit, candidates, budget=1e24, target="loss_opt", at=1e24,
                       max_runs=1)
    assert list(chosen.index) == ["target"]
    gains = {}
    for name in ("tiny", "near"):
        gains[name] = bs.design(chinchilla_fit, candidates.loc[[name]], budget=1e24,
                                target="loss_opt", at=1e24)["gain"].iloc[0]
    assert gains["near"] > 2 * gains["tiny"]
    law = bs.model.design.law_draws(chinchilla_fit)  # the discrepancy is no run's to reduce
    target = np.log(chinchilla_fit.model.optimal(law, np.array([1e24]), None)["loss_opt"]
                    .ravel()).var(ddof=1)
    expected = target / (target + _noise_variance(chinchilla_fit))
    assert chosen["gain"].iloc[0] == pytest.approx(expected, rel=0.1)
    assert chosen["gain"].iloc[0] > gains["near"]


def test_a_configuration_target(chinchilla_fit):
    config = {"params": [7e10], "tokens": [1.4e12]}
    candidates = pd.DataFrame({"params": [7e10, 1e8], "tokens": [1.4e12, 2e9]})
    chosen = bs.design(chinchilla_fit, candidates, budget=1e30, target=config, max_runs=1)
    assert chosen["params"].iloc[0] == 7e10 and chosen.attrs["target"] == ["loss"]


# -- bad inputs -------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, error, match", [
    ({"candidates": pd.DataFrame(columns=["params", "flops", "learning_rate"])}, ValueError,
     "candidates is empty"),
    ({"budget": 1e15}, ValueError, r"budget=1e\+15 FLOPs is smaller than the cheapest"),
    ({"budget": -1.0}, ValueError, "budget must hold finite positive FLOPs, got -1.0"),
    ({"budget": float("nan")}, ValueError, "budget must hold finite positive FLOPs, got nan"),
    ({"budget": "2e18"}, TypeError, "budget must be a number of FLOPs, got '2e18'"),
    ({"target": "loss_at_1e19"}, ValueError, "unknown target 'loss_at_1e19'"),
    ({"target": 3}, TypeError, "target must be a name"),
    ({"at": None}, ValueError, "needs the target budget: give at="),
    ({"at": 0.0}, ValueError, "at must hold finite positive FLOPs"),
    ({"candidates": pd.DataFrame({"params": [1e8], "learning_rate": [1e-3]})}, ValueError,
     r"candidates: points need column\(s\) \['tokens'\]"),
    ({"candidates": pd.DataFrame({"params": [1e8], "flops": [1e18]})}, ValueError,
     r"candidates lack column\(s\) \['learning_rate'\]"),
    ({"candidates": [1e18]}, TypeError, "candidates must be a DataFrame"),
    ({"candidates": pd.DataFrame({"params": [1e8], "flops": [1e18], "learning_rate": [np.nan]})},
     ValueError, r"column 'learning_rate' \(candidates\) has 1 NaN"),
    ({"max_runs": 0}, ValueError, "max_runs must be a positive integer"),
])
def test_bad_inputs_name_the_argument_and_value(lr_fit, grid, kwargs, error, match):
    args = {"candidates": grid, "budget": 2e18, "target": "loss_opt", "at": 1e19} | kwargs
    with pytest.raises(error, match=match):
        bs.design(lr_fit, args.pop("candidates"), **args)


# -- the command line and recipes -------------------------------------------------------------
def test_cli_design_writes_the_table_and_the_plot(lr_fit, grid, tmp_path, capsys):
    lr_fit.save(tmp_path / "posterior.nc")
    grid.to_csv(tmp_path / "grid.csv", index=False)
    status = main(["design", str(tmp_path / "posterior.nc"), "--budget", "2e18", "--candidates",
                   str(tmp_path / "grid.csv"), "--at", "1e19", "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert status == 0 and "The next runs:" in printed and "sd of each log target" in printed
    table = pd.read_csv(tmp_path / "out" / "design.csv", index_col="candidate")
    assert table["total_flops"].iloc[-1] <= 2e18 and (tmp_path / "out" / "design.png").stat().st_size
    expected = bs.design(lr_fit, grid, budget=2e18, at=1e19)
    assert list(table.index) == list(expected.index)


def test_cli_design_takes_candidates_of_params_and_tokens(chinchilla_fit, tmp_path, capsys):
    """A candidates file without a flops column (the FLOPs follow from params and tokens) is
    designed, printed and plotted: design.png is written and the exit status is 0."""
    chinchilla_fit.save(tmp_path / "posterior.nc")
    pd.DataFrame({"params": [4e8, 1e9, 2e9, 4e9], "tokens": [8e9, 2e10, 4e10, 8e10]}).to_csv(
        tmp_path / "cands.csv", index=False)
    status = main(["design", str(tmp_path / "posterior.nc"), "--budget", "1e21", "--candidates",
                   str(tmp_path / "cands.csv"), "--at", "5.7e21", "--out", str(tmp_path)])
    assert status == 0, capsys.readouterr().err
    assert (tmp_path / "design.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(tmp_path / "design.csv")
    assert "flops" in table and table["total_flops"].iloc[-1] <= 1e21


def test_cli_design_errors_are_one_line(lr_fit, tmp_path, capsys):
    lr_fit.save(tmp_path / "posterior.nc")
    status = main(["design", str(tmp_path / "posterior.nc"), "--budget", "1e10",
                   "--grid-budgets", "1e18", "--at", "1e19"])
    assert status == 2
    assert "bayescale design: error: budget=1e+10 FLOPs is smaller" in capsys.readouterr().err


def test_a_recipe_design_table_is_checked():
    base = {"data": {"dataset": "chinchilla"}}
    recipe = Recipe.from_dict(base | {"design": {"budget": 2e18, "grid_budgets": [1e18],
                                                 "at": 1e19, "max_runs": 3}})
    assert recipe.design == {"budget": 2e18, "grid_budgets": [1e18], "at": 1e19, "max_runs": 3}
    with pytest.raises(ValueError, match=r"\[design\] needs 'budget'"):
        Recipe.from_dict(base | {"design": {"grid_budgets": [1e18]}})
    with pytest.raises(ValueError, match="at most one of 'candidates'"):
        Recipe.from_dict(base | {"design": {"budget": 1e18, "candidates": "c.csv",
                                            "grid_budgets": [1e18]}})
    assert Recipe.from_dict(base | {"design": {"budget": 1e18, "at": 1e19}}).design == {
        "budget": 1e18, "at": 1e19}  # neither: the default candidates
    with pytest.raises(ValueError, match="unknown key 'buget'"):
        Recipe.from_dict(base | {"design": {"buget": 1e18}})
    with pytest.raises(ValueError, match=r"\[design\] budget must hold finite positive"):
        Recipe.from_dict(base | {"design": {"budget": -1, "grid_budgets": [1e18]}})


def test_the_discrepancy_past_the_runs_does_not_steer_the_design(chinchilla_fit):
    """Its direction is shared by every point at one distance, but no run's outcome updates it:
    a run far outside the sweep must not seem to reveal the target's discrepancy."""
    from bayescale.inference.trees import set_groups

    assert "discrepancy_scale" in chinchilla_fit.posterior
    top = float(chinchilla_fit.runs["flops"].max())
    candidates = pd.DataFrame({"params": [5e7, 5e9, 2e10], "flops": [3 * top, 3 * top, top / 3]})
    tree = chinchilla_fit.idata.copy(deep=True)
    set_groups(tree, posterior=bs.discrepancy.without_discrepancy(chinchilla_fit.posterior))
    exact = bs.Fit(tree, chinchilla_fit.spec)
    kwargs = {"budget": 1e30, "target": "loss_opt", "at": 5.88e23, "max_runs": 3}
    pd.testing.assert_frame_equal(bs.design(chinchilla_fit, candidates, **kwargs),
                                  bs.design(exact, candidates, **kwargs))


def test_default_candidates_reach_n_star_at_the_target(chinchilla_fit, chinchilla_runs):
    """The Chinchilla law on the Chinchilla runs, --budget 1e23 --at 1e24: sizes within a
    factor 3 of the median N* at 1e24 are among the candidates, none past the runs' tokens
    per parameter by more than a factor 2, and they teach more about N* than the sweep's own
    sizes at the same budgets."""
    from bayescale.model.design import default_candidates

    with pytest.warns(bs.ExtrapolationWarning):  # N* at 1e24 lies past the runs' sizes
        n_star = float(chinchilla_fit.optimal([1e24], random_seed=0)["params_opt"].median())
    table = default_candidates(chinchilla_fit, budget=1e23, at=1e24)
    assert (np.abs(np.log(table["params"] / n_star)) < np.log(3)).any()
    assert table["params"].max() > n_star > chinchilla_runs["params"].max()
    ratio = table["tokens"] / table["params"]
    runs_ratio = chinchilla_runs["tokens"] / chinchilla_runs["params"]
    assert ratio.min() >= runs_ratio.min() / 2 and ratio.max() <= runs_ratio.max() * 2
    assert table["flops"].max() == pytest.approx(1e23)
    grid = bs.candidate_grid(chinchilla_fit, np.unique(table["flops"]))
    ours = bs.design(chinchilla_fit, table, budget=1e23, at=1e24)
    theirs = bs.design(chinchilla_fit, grid, budget=1e23, at=1e24)
    assert ours.attrs["sd_after"]["params_opt"] < theirs.attrs["sd_after"]["params_opt"]


def test_cli_design_without_candidates_uses_the_default(chinchilla_fit, tmp_path, capsys):
    chinchilla_fit.save(tmp_path / "posterior.nc")
    status = main(["design", str(tmp_path / "posterior.nc"), "--budget", "1e23", "--at", "1e24",
                   "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert status == 0 and "candidates (default):" in printed and "The next runs:" in printed
    assert pd.read_csv(tmp_path / "design.csv")["total_flops"].iloc[-1] <= 1e23
