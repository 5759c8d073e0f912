"""The law's allocation against the runs' own isoFLOP profiles (bayescale.model.profiles)."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayescale as bs
from bayescale.model.laws import get_law
from bayescale.model.profiles import MIN_PROFILES, allocation_shift, profile_optima

LAW = get_law("chinchilla")


def _profiles(optima: dict[float, float], sizes: int = 7, jitter: float = 0.0, seed: int = 0):
    """Runs at each budget: ``sizes`` models on a log grid about a known N*, loss a parabola
    in log N with its minimum at that N* (FLOPs scattered by ``jitter`` decades)."""
    rng = np.random.default_rng(seed)
    rows = []
    for flops, n_opt in optima.items():
        n = n_opt * np.logspace(-0.6, 0.5, sizes)
        c = flops * 10 ** rng.uniform(-jitter, jitter, sizes)
        loss = 3.0 - 0.1 * np.log10(flops) + 0.2 * np.log(n / n_opt) ** 2
        rows.append(pd.DataFrame({"params": n, "tokens": c / (6 * n), "flops": c, "loss": loss}))
    return pd.concat(rows, ignore_index=True)


def test_profile_optima_recovers_each_budgets_minimum():
    truth = {1e18: 1e8, 1e19: 3e8, 1e20: 9e8}
    found = profile_optima(_profiles(truth, jitter=0.004))
    assert len(found) == 3
    np.testing.assert_allclose(found["params_opt"], list(truth.values()), rtol=1e-6)
    # FLOPs counted from N and D scatter about the budget; the label is their median
    np.testing.assert_allclose(np.log10(found["flops"]), np.log10(list(truth)), atol=0.005)


def test_profile_optima_skips_budgets_that_hold_no_minimum():
    runs = _profiles({1e18: 1e8, 1e19: 3e8, 1e20: 9e8, 1e21: 3e9}, sizes=7)
    runs = runs[~((runs["flops"] == 1e19) & (runs.index % 7 >= 4))]  # 1e19: 4 sizes only
    edge = runs["flops"] == 1e20
    runs.loc[edge, "loss"] = 3.0 - 0.3 * np.log(runs.loc[edge, "params"])  # no bowl: falls
    found = profile_optima(runs)
    np.testing.assert_allclose(found["flops"], [1e18, 1e21])


def test_allocation_shift_carries_the_profiles_drift_past_them():
    """Profiles that drift from the law by 0.1 + 0.2 per decade of compute (scatter 0.02):
    the shift 1.5 decades past them is near the drift's value there, inside its 90% range."""
    rng = np.random.default_rng(1)
    flops = 10 ** np.arange(17.0, 20.01, 0.5)
    law_at = np.log10(1e8) + 0.5 * (np.log10(flops) - 17)  # the law's log10 N*
    drift = 0.1 + 0.2 * (np.log10(flops) - np.log10(flops).mean())
    measured = law_at + drift + 0.02 * rng.standard_normal(flops.size)
    law_draws = law_at[None, :] + 0.01 * rng.standard_normal((2000, flops.size))
    target = np.array([10 ** 21.5])
    shift = allocation_shift(law_draws, measured, flops, target, np.random.default_rng(2))
    truth = 0.1 + 0.2 * (21.5 - np.log10(flops).mean())
    assert shift.shape == (2000, 1)
    lo, med, hi = np.quantile(shift[:, 0], [0.05, 0.5, 0.95])
    assert abs(med - truth) < 0.06, (med, truth)
    assert lo < truth < hi
    # at the profiles themselves the shift is their drift, within their scatter
    at = allocation_shift(law_draws, measured, flops, flops, np.random.default_rng(3))
    np.testing.assert_allclose(np.median(at, 0), drift, atol=0.05)


def test_allocation_shift_is_zero_without_enough_profiles():
    law_draws = np.zeros((50, MIN_PROFILES - 1))
    shift = allocation_shift(law_draws, np.ones(MIN_PROFILES - 1), [1e18, 1e19], [1e21, 1e22],
                             np.random.default_rng(0))
    assert shift.shape == (50, 2) and not shift.any()


def _posterior(theta: dict, draws: int = 400, scale: bool = True) -> xr.Dataset:
    rng = np.random.default_rng(4)
    data = {k: (("chain", "draw"), np.full((1, draws), v)) for k, v in theta.items()}
    if scale:
        data["discrepancy_scale"] = (("chain", "draw"), rng.lognormal(-3.6, 0.3, (1, draws)))
        data["discrepancy_z"] = (("chain", "draw"), rng.standard_normal((1, draws)))
    return xr.Dataset(data)


@pytest.mark.filterwarnings("ignore::bayescale.ExtrapolationWarning")
def test_n_star_moves_to_the_runs_profiles_when_the_law_misplaces_it():
    """Runs whose isoFLOP minima follow a true law; answers from draws of a law with the same
    loss scale but a different allocation. With a discrepancy, N* past the runs moves to the
    profiles' trend (inside 0.1 decades of the truth, which the wrong law misses by 0.45);
    with the law taken as exact it stays the law's."""
    truth = {"E": 1.7, "A": 400.0, "B": 400.0, "alpha": 0.34, "beta": 0.34}
    wrong = {**truth, "B": 4000.0}
    budgets = 10 ** np.arange(18.0, 20.01, 0.5)
    n_true = LAW.optimum(truth, budgets)["params_opt"]
    runs = _profiles(dict(zip(budgets, n_true)))
    model = bs.ScalingLaw(runs, law="chinchilla", discrepancy="prior")
    target = np.array([1e21])
    want = np.log10(LAW.optimum(truth, target)["params_opt"][0])
    law_says = np.log10(LAW.optimum(wrong, target)["params_opt"][0])
    assert abs(law_says - want) > 0.4
    moved = model.optimal(_posterior(wrong), target, np.random.default_rng(0))
    kept = model.optimal(_posterior(wrong, scale=False), target, np.random.default_rng(0))
    got = np.log10(moved["params_opt"][..., 0])
    assert abs(np.median(got) - want) < 0.1, (np.median(got), want)
    assert np.quantile(got, 0.05) < want < np.quantile(got, 0.95)
    np.testing.assert_allclose(np.log10(kept["params_opt"][..., 0]), law_says)
    # D* follows N* at the same compute
    np.testing.assert_allclose(moved["params_opt"] * moved["tokens_opt"] * 6, 1e21, rtol=1e-9)
