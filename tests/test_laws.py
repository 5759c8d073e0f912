"""The NumPy laws against direct formulas and against numerical minimisation (no sampler)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from bayescale.model import laws

EPOCH = {"E": 1.817, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}
HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def chinchilla(theta, n, d):
    return theta["E"] + theta["A"] / n ** theta["alpha"] + theta["B"] / d ** theta["beta"]


def test_registry():
    assert set(laws.LAWS) == {"chinchilla", "flops", "flops_pure", "kaplan", "chinchilla_sized"}
    assert laws.get_law("chinchilla").inputs == ("params", "tokens")
    assert laws.get_law("flops").inputs == ("flops",)
    assert laws.get_law("flops_pure").params == ("A", "alpha")
    with pytest.raises(ValueError, match=r"unknown law 'hestness'"):
        laws.get_law("hestness")


@pytest.mark.parametrize("theta", [EPOCH, HOFFMANN])
def test_chinchilla_log_mean_is_the_formula(theta):
    n = np.array([1e7, 3e8, 7e10, 1e12])
    d = np.array([1e8, 6e9, 1.4e12, 3e13])
    expected = np.log(chinchilla(theta, n, d))
    np.testing.assert_allclose(laws.log_mean("chinchilla", theta, {"params": n, "tokens": d}),
                               expected, rtol=1e-13)
    np.testing.assert_allclose(laws.mean("chinchilla", theta, {"params": n, "tokens": d}),
                               chinchilla(theta, n, d), rtol=1e-13)


def test_flops_laws_are_the_formula():
    c = np.array([1e15, 1e19, 1e23])
    theta = {"E": 1.7, "A": 30.0, "alpha": 0.05}
    np.testing.assert_allclose(laws.mean("flops", theta, {"flops": c}), 1.7 + 30.0 * c ** -0.05,
                               rtol=1e-13)
    np.testing.assert_allclose(laws.mean(laws.get_law("flops_pure"), theta, {"flops": c}),
                               30.0 * c ** -0.05, rtol=1e-13)


def test_log_mean_broadcasts_draws_against_points():
    rng = np.random.default_rng(0)
    theta = {k: v * np.exp(0.05 * rng.standard_normal((2, 3, 1))) for k, v in EPOCH.items()}
    n = np.array([1e8, 1e9, 1e10, 1e11])
    d = 20 * n
    out = laws.log_mean("chinchilla", theta, {"params": n, "tokens": d})
    assert out.shape == (2, 3, 4)
    one = {k: float(v[1, 2, 0]) for k, v in theta.items()}
    np.testing.assert_allclose(out[1, 2], np.log(chinchilla(one, n, d)), rtol=1e-13)


def test_huge_inputs_do_not_overflow():
    with np.errstate(all="raise"):  # any overflow, underflow to inf or invalid op fails
        n, d = np.array([1e15, 1e200]), np.array([1e16, 1e250])
        out = laws.log_mean("chinchilla", EPOCH, {"params": n, "tokens": d})
        np.testing.assert_allclose(out[0], np.log(chinchilla(EPOCH, 1e15, 1e16)), rtol=1e-14)
        np.testing.assert_allclose(out[1], np.log(EPOCH["E"]), rtol=1e-15)  # terms vanish
        theta = {"A": 1e3, "alpha": 2.5}  # C^alpha alone would overflow float64 at C = 1e300
        pure = laws.log_mean("flops_pure", theta, {"flops": np.array([1e300])})
        np.testing.assert_allclose(pure, np.log(1e3) - 2.5 * np.log(1e300), rtol=1e-14)
        opt = laws.compute_optimal(EPOCH, [1e40])
        assert all(np.all(np.isfinite(v)) for v in opt.values())
        np.testing.assert_allclose(6 * opt["params_opt"] * opt["tokens_opt"], 1e40, rtol=1e-12)


def numerical_optimum(theta, c, k=6.0):
    """argmin over N of E + A N^-a + B (C / (k N))^-b, by bounded scalar minimisation in log N."""
    def loss(log_n):
        n = np.exp(log_n)
        return chinchilla(theta, n, c / (k * n))
    res = optimize.minimize_scalar(loss, bounds=(np.log(1e3), np.log(c / k) - np.log(1e3)),
                                   method="bounded", options={"xatol": 1e-10})
    assert res.success
    n = np.exp(res.x)
    return n, c / (k * n), res.fun


@pytest.mark.parametrize("theta", [EPOCH, HOFFMANN])
@pytest.mark.parametrize("budget", [1e18, 1e21, 5.88e23, 1e26])
def test_compute_optimal_matches_numerical_minimisation(theta, budget):
    n, d, best = numerical_optimum(theta, budget)
    opt = laws.compute_optimal(theta, budget)
    # the loss is flat at the optimum, so the argmin is found only to ~sqrt(machine eps)
    np.testing.assert_allclose(opt["params_opt"], n, rtol=1e-4)
    np.testing.assert_allclose(opt["tokens_opt"], d, rtol=1e-4)
    np.testing.assert_allclose(opt["loss_opt"], best, rtol=1e-10)
    assert opt["loss_opt"] <= best * (1 + 1e-12)
    np.testing.assert_allclose(opt["tokens_per_param"], opt["tokens_opt"] / opt["params_opt"],
                               rtol=1e-12)
    np.testing.assert_allclose(6 * opt["params_opt"] * opt["tokens_opt"], budget, rtol=1e-12)


@pytest.mark.parametrize("k", [2.0, 8.0])
def test_compute_optimal_with_custom_flops_per_param_token(k):
    n, d, best = numerical_optimum(EPOCH, 1e22, k=k)
    opt = laws.compute_optimal(EPOCH, 1e22, flops_per_param_token=k)
    np.testing.assert_allclose(opt["params_opt"], n, rtol=1e-4)
    np.testing.assert_allclose(k * opt["params_opt"] * opt["tokens_opt"], 1e22, rtol=1e-12)


def test_epoch_fit_gives_about_20_tokens_per_param_at_chinchilla_budget():
    """A published number: Epoch's point estimate implies ~20 tokens/param at C = 5.88e23."""
    n, d, _ = numerical_optimum(EPOCH, 5.88e23)
    ratio = laws.compute_optimal(EPOCH, 5.88e23)["tokens_per_param"]
    np.testing.assert_allclose(ratio, d / n, rtol=2e-4)
    assert 15 < float(ratio) < 30


def test_compute_optimal_broadcasts_draws_against_budgets():
    theta = {k: np.full((3, 1), v) for k, v in EPOCH.items()}
    theta["alpha"] = np.array([[0.30], [0.348], [0.40]])
    budgets = np.array([1e20, 1e22])
    opt = laws.compute_optimal(theta, budgets)
    assert all(v.shape == (3, 2) for v in opt.values())
    one = {k: float(v[2, 0]) for k, v in theta.items()}
    n, _, _ = numerical_optimum(one, 1e22)
    np.testing.assert_allclose(opt["params_opt"][2, 1], n, rtol=1e-4)


# -- Kaplan et al. (2020), added as one definition ----------------------------------------------
KAPLAN = {"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095}  # their eq. 1.5 fit


def kaplan(theta, n, d):
    ratio = theta["alpha_N"] / theta["alpha_D"]
    return ((theta["N_c"] / n) ** ratio + theta["D_c"] / d) ** theta["alpha_D"]


def test_kaplan_log_mean_is_the_formula():
    n, d = np.array([1e7, 3e8, 7e10]), np.array([1e9, 2e10, 1.4e12])
    np.testing.assert_allclose(laws.mean("kaplan", KAPLAN, {"params": n, "tokens": d}),
                               kaplan(KAPLAN, n, d), rtol=1e-13)


@pytest.mark.parametrize("budget", [1e18, 1e21, 1e24])
def test_kaplan_optimum_matches_numerical_minimisation(budget):
    def loss(log_n):
        n = np.exp(log_n)
        return kaplan(KAPLAN, n, budget / (6 * n))
    res = optimize.minimize_scalar(loss, bounds=(np.log(1e3), np.log(budget / 6) - np.log(1e3)),
                                   method="bounded", options={"xatol": 1e-10})
    opt = laws.get_law("kaplan").optimum(KAPLAN, budget)
    np.testing.assert_allclose(opt["params_opt"], np.exp(res.x), rtol=1e-4)
    np.testing.assert_allclose(opt["loss_opt"], res.fun, rtol=1e-10)
    np.testing.assert_allclose(6 * opt["params_opt"] * opt["tokens_opt"], budget, rtol=1e-12)


def test_a_law_in_compute_alone_has_no_optimum():
    assert [name for name, law in laws.LAWS.items() if law.has_optimum] == ["chinchilla", "kaplan",
                                                                        "chinchilla_sized"]
    with pytest.raises(ValueError, match="law 'flops' .* has no compute-optimal allocation"):
        laws.get_law("flops").optimum({"E": 1.0, "A": 1.0, "alpha": 0.1}, 1e20)


@pytest.mark.parametrize("name, theta", [("chinchilla", EPOCH), ("kaplan", KAPLAN),
                                         ("flops", {"E": 1.7, "A": 30.0, "alpha": 0.05}),
                                         ("flops_pure", {"A": 30.0, "alpha": 0.05})])
def test_sampled_parameters_round_trip_to_natural_units(name, theta):
    """natural(sampled_from(theta)) == theta at any reference point, in NumPy and PyTensor."""
    import pytensor.tensor as pt

    law = laws.get_law(name)
    ref = {x: 20.0 + i for i, x in enumerate(law.inputs)}
    sampled = law.sampled_from(theta, ref)
    assert set(sampled) == set(law.sampled)
    back = law.natural(np, sampled, ref)
    for key in law.params:
        np.testing.assert_allclose(back[key], theta[key], rtol=1e-12, err_msg=key)
    symbolic = law.natural(pt, {k: pt.as_tensor(v) for k, v in sampled.items()}, ref)
    for key in law.params:
        np.testing.assert_allclose(symbolic[key].eval(), theta[key], rtol=1e-12, err_msg=key)


# -- the Chinchilla law with a size-dependent data exponent -------------------------------------
SIZED = {"E": 1.7, "A": 400.0, "B": 800.0, "alpha": 0.34, "beta": 0.3, "gamma": 0.08}
PIVOT = {"params": np.log(2e8), "tokens": np.log(3e10)}


def sized(theta, n, d, pivot=PIVOT):
    """``E + A N^-alpha + B D^-beta (D / D_p)^-(beta(N) - beta)``."""
    beta_n = theta["beta"] * (n / np.exp(pivot["params"])) ** theta["gamma"]
    return (theta["E"] + theta["A"] / n ** theta["alpha"]
            + theta["B"] * d ** -theta["beta"]
            * (d / np.exp(pivot["tokens"])) ** -(beta_n - theta["beta"]))


def test_sized_law_is_the_formula_and_chinchilla_at_gamma_zero():
    law = laws.get_law("chinchilla_sized").bind(PIVOT)
    n, d = np.array([1e7, 3e8, 7e10]), np.array([1e9, 2e10, 1.4e12])
    np.testing.assert_allclose(laws.mean(law, SIZED, {"params": n, "tokens": d}),
                               sized(SIZED, n, d), rtol=1e-12)
    flat = dict(SIZED, gamma=0.0)
    chin = {k: v for k, v in flat.items() if k != "gamma"}
    np.testing.assert_allclose(laws.mean(law, flat, {"params": n, "tokens": d}),
                               chinchilla(chin, n, d), rtol=1e-12)
    # at N = N_p the law is Chinchilla's of the same parameters, whatever gamma
    at_pivot = np.full(3, np.exp(PIVOT["params"]))
    np.testing.assert_allclose(laws.mean(law, SIZED, {"params": at_pivot, "tokens": d}),
                               chinchilla(chin, at_pivot, d), rtol=1e-12)
    # the law alone pivots at N = D = 1
    alone = laws.get_law("chinchilla_sized")
    np.testing.assert_allclose(laws.mean(alone, SIZED, {"params": n, "tokens": d}),
                               sized(SIZED, n, d, {"params": 0.0, "tokens": 0.0}), rtol=1e-12)


@pytest.mark.parametrize("gamma", [-0.05, 0.0, 0.1])
@pytest.mark.parametrize("budget", [1e18, 1e21, 1e24])
def test_sized_law_optimum_matches_numerical_minimisation(gamma, budget):
    theta = dict(SIZED, gamma=gamma)

    def loss(log_n):
        n = np.exp(log_n)
        return sized(theta, n, budget / (6 * n))
    res = optimize.minimize_scalar(loss, bounds=(np.log(1e4), np.log(budget / 6) - np.log(1e4)),
                                   method="bounded", options={"xatol": 1e-10})
    opt = laws.get_law("chinchilla_sized").bind(PIVOT).optimum(theta, budget)
    np.testing.assert_allclose(opt["params_opt"], np.exp(res.x), rtol=1e-4)
    np.testing.assert_allclose(opt["loss_opt"], res.fun, rtol=1e-10)


def test_sized_law_round_trips_and_predicts_the_same_in_any_frame():
    """natural(sampled_from(theta, ref), ref) == theta, and the formula in a frame centred at
    ``ref`` (the graph's) gives the loss the natural parameters give."""
    law = laws.get_law("chinchilla_sized").bind(PIVOT)
    n, d = np.array([1e7, 3e8, 7e10]), np.array([1e9, 2e10, 1.4e12])
    for ref in (PIVOT, {"params": 15.0, "tokens": 25.0}):
        sampled = law.sampled_from(SIZED, ref)
        assert set(law.sampled) <= set(sampled)
        back = law.natural(np, sampled, ref)
        for key in law.params:
            np.testing.assert_allclose(back[key], SIZED[key], rtol=1e-12, err_msg=key)
        z = {"params": np.log(n) - ref["params"], "tokens": np.log(d) - ref["tokens"]}
        np.testing.assert_allclose(np.exp(law.log_mean_sampled(np, sampled, z)),
                                   sized(SIZED, n, d), rtol=1e-12)


def test_a_fit_pivots_the_sized_law_at_its_runs_centre():
    import bayescale as bs

    model = bs.ScalingLaw(bs.ScalingLaw.example().runs, law="chinchilla_sized",
                          discrepancy="off")
    assert model.law.pivot == (model.log_reference["params"], model.log_reference["tokens"])
    assert model.priors["gamma"] == {"dist": "Normal", "mu": 0.0, "sigma": laws.GAMMA_SD}


def test_the_graph_reads_the_law_at_each_runs_point():
    """The model evaluates the law once per distinct (N, D) and reads it at each run: its
    observed log density equals Student-t about the formula at every run (scipy)."""
    import bayescale as bs
    from scipy import stats

    runs = bs.simulate(budgets=[1e17, 1e18, 1e19], runs_per_budget=6, seeds=3, random_seed=4)
    model = bs.ScalingLaw(runs, law="chinchilla", discrepancy="off")
    pm_model = model.model
    points = pm_model["law_points"].get_value()
    distinct = len(runs[["params", "tokens"]].drop_duplicates())
    assert points.shape == (2, distinct) and distinct <= len(runs) // 3  # seeds share points
    point = pm_model.initial_point()
    point["alpha"], point["beta"] = 0.31, 0.37  # away from the priors' centres
    inputs = pm_model.value_vars
    args = [point[v.name] for v in inputs]

    def evaluate(outs):
        return pm_model.compile_fn(outs, inputs=inputs, point_fn=False,
                                   on_unused_input="ignore")(*args)

    named = pm_model.unobserved_value_vars
    values = dict(zip([v.name for v in named], evaluate(named)))
    theta = {k: float(values[k]) for k in ("E", "A", "B", "alpha", "beta")}
    sigma, nu = values["sigma"], values["nu"]
    y = np.log(runs["loss"].to_numpy())
    want = stats.t.logpdf(y, nu, np.log(chinchilla(theta, runs["params"], runs["tokens"])),
                          sigma).sum()
    got = evaluate(pm_model.logp(vars=pm_model.observed_RVs))
    assert float(got) == pytest.approx(want, rel=1e-10)
