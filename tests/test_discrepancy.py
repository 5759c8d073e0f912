"""The model discrepancy past the runs: its distance, its effect, and how its scale is learned."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.model import discrepancy as disc
from bayescale.model.terms import Discrepancy


def test_distance_is_decades_from_the_nearest_run_jointly():
    runs = pd.DataFrame({"flops": [1e18, 1e20], "params": [1e8, 1e9]})
    term = Discrepancy(("flops", "params"))
    ranges = term.ranges(runs)
    points = pd.DataFrame({"flops": [1e20, 1e19, 1e21, 1e23, 1e19, 1e17, 1e18],
                           "params": [1e9, 5e8, 1e9, 1e10, 1e11, 1e8, 1e9]})
    # at a run; between the two runs (1 decade in C from each); 1 decade past in C; 3 in C
    # (1 in N); 2 in N; 1 below the smallest run; the smallest budget at the largest size:
    # inside both ranges taken one at a time, but 1 decade from either run
    np.testing.assert_allclose(term.distance(points, ranges), [0, 1, 1, 3, 2, 1, 1], atol=1e-12)
    # a column the points lack does not count; arrays of any shape are accepted
    assert term.distance({"flops": np.array([[1e22]])}, ranges).shape == (1, 1)
    assert term.distance({"tokens": [1e30]}, ranges) == 0.0


def test_the_effect_is_scale_times_distance_times_z():
    assert Discrepancy.effect(np, 0.02, np.array([0.0, 2.0]), 1.5).tolist() == [0.0, 0.06]


def _without_scale(fit):
    return disc.without_discrepancy(fit.posterior)


def test_prior_mode_leaves_the_runs_alone_and_widens_past_them(chinchilla_fit, chinchilla_runs):
    fit = chinchilla_fit
    assert "discrepancy_scale" in fit.posterior and fit.spec["discrepancy"] == "prior"
    model = fit.model
    inside = chinchilla_runs.iloc[:20]
    rng = lambda: np.random.default_rng(3)  # noqa: E731
    with_d = model.log_mean_draws(fit.posterior, inside, rng())
    without = model.log_mean_draws(_without_scale(fit), inside, rng())
    np.testing.assert_array_equal(with_d, without)  # d = 0 on the runs: nothing drawn
    top = chinchilla_runs["flops"].max()
    far = model.points({"flops": [10 * top, 100 * top], "params": [1e11, 3e11]})
    d = model.discrepancy_term.distance(far, model.discrepancy_term.ranges(model.runs))
    a = model.log_mean_draws(fit.posterior, far, rng()).reshape(-1, 2)
    b = model.log_mean_draws(_without_scale(fit), far, rng()).reshape(-1, 2)
    assert (d > 0.9).all()
    # what is added is d * s * (z + t * x): z and t standard normal, one per draw (shared by
    # the points), x the decades of N from the law's own N* at the point's compute; no bias
    post = fit.posterior
    assert "discrepancy_bias" not in post and "discrepancy_bias" not in model.priors
    flat = lambda name: post[name].values.reshape(-1, 1)  # noqa: E731
    n_opt = bs.laws.compute_optimal({k: flat(k) for k in ("E", "A", "B", "alpha", "beta")},
                               far["flops"].to_numpy())["params_opt"]
    x = np.log10(far["params"].to_numpy() / n_opt)
    z = (a - b) / d / flat("discrepancy_scale")
    np.testing.assert_allclose(z, flat("discrepancy_z") + flat("discrepancy_tilt") * x,
                               rtol=1e-7, atol=1e-9)
    for name in ("discrepancy_z", "discrepancy_tilt"):
        assert abs(flat(name).std() - 1) < 0.12 and abs(flat(name).mean()) < 0.15  # 400 draws
    # a posterior with a bias b per decade (a fit whose priors gave it one) adds d * b more
    bias = np.random.default_rng(4).normal(-0.02, 0.01, post["discrepancy_scale"].shape)
    biased = post.assign(discrepancy_bias=(("chain", "draw"), bias))
    c = model.log_mean_draws(biased, far, rng()).reshape(-1, 2)
    np.testing.assert_allclose(c - a, d * bias.reshape(-1, 1), rtol=1e-9, atol=1e-12)


def test_the_bias_is_learned_only_when_its_prior_is_given(chinchilla_runs):
    plain = bs.ScalingLaw(chinchilla_runs, law="chinchilla")
    assert "discrepancy_bias" not in plain.priors
    with_bias = bs.ScalingLaw(chinchilla_runs, law="chinchilla",
                              priors={"discrepancy_bias": disc.DEFAULT_BIAS_PRIOR})
    assert with_bias.priors["discrepancy_bias"] == disc.DEFAULT_BIAS_PRIOR
    with pytest.raises(ValueError, match="unknown name.*'discrepancy_bias'"):  # nothing to bias
        bs.ScalingLaw(chinchilla_runs, discrepancy="off", priors={"discrepancy_bias":
                                                                  disc.DEFAULT_BIAS_PRIOR})
    # with no backtests the learned variables are drawn from the priors given, the bias too
    drawn = disc.learn_discrepancy([], {n: with_bias.priors[n] for n in disc.LEARNED},
                                   chains=2, draws=2000, tune=0, seed=0)
    assert drawn["discrepancy_bias"].shape == (2, 2000)
    assert abs(drawn["discrepancy_bias"].std() - 0.01) < 0.001
    assert "discrepancy_bias" not in disc.learn_discrepancy(
        [], {"discrepancy_scale": plain.priors["discrepancy_scale"]}, chains=2, draws=10,
        tune=0, seed=0)


def test_loss_at_the_optimum_carries_the_discrepancy(chinchilla_fit, monkeypatch):
    fit = chinchilla_fit
    out = fit.model.optimal(fit.posterior, np.array([1e24]), np.random.default_rng(0))
    plain = fit.model.optimal(_without_scale(fit), np.array([1e24]), np.random.default_rng(0))
    assert np.log(out["loss_opt"]).std() > 1.5 * np.log(plain["loss_opt"]).std()
    # the tilt moves N* past the runs; without it N* is the law's
    assert np.log10(out["params_opt"]).std() > 1.5 * np.log10(plain["params_opt"]).std()
    # without the tilt and without the runs' isoFLOP profiles, N* is the law's
    monkeypatch.setattr(fit.model, "profiles_measure_allocation", False)
    untilted = fit.model.optimal(fit.posterior.drop_vars("discrepancy_tilt"), np.array([1e24]),
                                 np.random.default_rng(0))
    np.testing.assert_array_equal(untilted["params_opt"], plain["params_opt"])


def test_a_tilt_moves_the_optimum_to_where_the_tilted_profile_is_flat():
    """N* of L(N, C/6N) * 10^(slope * log10(N / N_law*)): checked on a fine grid of N."""
    law = bs.laws.get_law("chinchilla")
    theta = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.3478, "beta": 0.3658}
    flops = 1e23
    base = law.optimum(theta, flops)["params_opt"]
    grid = base * 10 ** np.linspace(-2, 2, 40001)
    for slope in (-0.06, -0.01, 0.0, 0.03):
        tilted = law.optimum(theta, flops, slope=slope)["params_opt"]
        profile = (np.log(bs.laws.mean(law, theta, {"params": grid, "tokens": flops / 6 / grid}))
                   + slope * np.log10(grid / base))
        assert abs(np.log10(tilted / grid[profile.argmin()])) < 2e-4, slope
        # a misfit that rises with N (slope > 0) moves N* down, and the other way
        assert np.sign(np.log10(base / tilted)).item() == np.sign(slope) or slope == 0


def test_the_scale_model_recovers_a_known_drift():
    """Held-out runs that drift by s d z (s = 0.03), predicted by an otherwise exact law."""
    rng = np.random.default_rng(0)
    n, draws = 400, 50
    d = rng.uniform(0.2, 1.5, n)
    mu = np.zeros((draws, n))
    y = 0.03 * d * rng.standard_normal(n) + 0.002 * rng.standard_normal(n)
    backtest = disc.Backtest(cut=1.0, log_loss=y, log_mu=mu, sigma=np.full(draws, 0.002),
                             nu=np.full(draws, 30.0), distance=d)
    scale = disc.learn_scale([backtest], disc.DEFAULT_SCALE_PRIOR, chains=2, draws=300,
                             tune=300, seed=1, shared=0.0)
    assert scale.shape == (2, 300)
    assert 0.026 < np.median(scale) < 0.034  # sd of the estimate ~ 0.03 / sqrt(2 n)


def test_a_shared_bend_is_one_observation_per_backtest():
    """60 backtests of 30 runs, each backtest's runs bent by one shared s d z (s = 0.03):
    read as shared, the scale is recovered; read as independent, the 30 runs of a backtest
    would count 30 times and the scale would be pinned just as tightly whatever it is."""
    rng = np.random.default_rng(4)
    backtests = []
    for _ in range(60):
        d = rng.uniform(0.2, 1.5, 30)
        y = 0.03 * d * rng.standard_normal() + 0.002 * rng.standard_normal(30)
        backtests.append(disc.Backtest(cut=1.0, log_loss=y, log_mu=np.zeros((20, 30)),
                                       sigma=np.full(20, 0.002), nu=None, distance=d))
    scale = disc.learn_scale(backtests, disc.DEFAULT_SCALE_PRIOR, chains=2, draws=300,
                             tune=300, seed=1, shared=1.0)
    # 60 observations of s |z|: sd of log s about 1 / sqrt(2 * 60) = 0.09
    assert abs(np.log(np.median(scale) / 0.03)) < 0.25


@pytest.mark.parametrize("shared", [0.0, 0.4, 1.0])
def test_the_shared_bend_integrates_to_the_multivariate_normal(shared):
    """Normal noise: the runs of a backtest are jointly Normal, covariance diag(v + sigma^2 +
    (1 - shared)(s d)^2) + shared (s d)(s d)^T; 80 runs pin z tightly (adaptive nodes)."""
    from scipy import stats

    rng = np.random.default_rng(2)
    n, s, sigma = 80, 0.04, 0.003
    d = rng.uniform(0.1, 2.0, n)
    mu = rng.normal(0, 0.002, (50, n))
    y = s * d * (0.8 + rng.standard_normal(n) * np.sqrt(1 - shared)) + sigma * rng.standard_normal(n)
    backtest = disc.Backtest(cut=1.0, log_loss=y, log_mu=mu, sigma=np.full(50, sigma), nu=None,
                             distance=d)
    u = s * d
    cov = np.diag(mu.var(0) + sigma ** 2 + (1 - shared) * u ** 2) + shared * np.outer(u, u)
    want = stats.multivariate_normal(mu.mean(0), cov).logpdf(y)
    assert float(disc._log_predictive(backtest, s, shared).eval()) == pytest.approx(want, abs=1e-6)


def test_without_backtests_the_scale_is_drawn_from_its_prior():
    scale = disc.learn_scale([], {"dist": "LogNormal", "mu": np.log(0.02), "sigma": 0.5},
                             chains=2, draws=2000, tune=0, seed=0)
    assert abs(np.median(np.log(scale)) - np.log(0.02)) < 0.05


@pytest.fixture(scope="module")
def backtest_fit(chinchilla_runs, tiny):
    runs = chinchilla_runs[chinchilla_runs["flops"] <= 1.3e21]
    with pytest.warns(bs.SamplerWarning):
        # a user prior of the scale (the backtest fits themselves take none)
        prior = {"dist": "LogNormal", "mu": float(np.log(0.02)), "sigma": 1.0}
        return bs.ScalingLaw(runs, law="chinchilla", discrepancy="backtest",
                             priors={"discrepancy_scale": prior}).fit(**tiny)


def test_backtests_learn_the_scale_and_are_kept(backtest_fit, tmp_path):
    fit = backtest_fit
    table = fit.idata["backtests"].to_dataset()
    assert sorted(set(table["cut_decades"].values)) == [0.5, 1.0]
    assert (table["decades_past"] > 0).all()
    # learned from the Chinchilla backtests: well inside the default prior's 90% range
    scale = float(fit.posterior["discrepancy_scale"].median())
    assert 0.005 < scale < 0.05
    assert "discrepancy_scale" in fit.summary().index
    fit.save(tmp_path / "f.nc")
    back = bs.load(tmp_path / "f.nc")
    assert back.spec["discrepancy"] == "backtest"
    np.testing.assert_array_equal(back.posterior["discrepancy_scale"],
                                  fit.posterior["discrepancy_scale"])
    assert back.idata["backtests"]["loss"].size == table["loss"].size


def test_bad_discrepancy_options_are_refused(chinchilla_runs):
    with pytest.raises(ValueError, match="discrepancy must be one of.*'sometimes'"):
        bs.ScalingLaw(chinchilla_runs, discrepancy="sometimes")
    with pytest.raises(ValueError, match="unknown name.*discrepancy_scale"):
        bs.ScalingLaw(chinchilla_runs, discrepancy="off",
                      priors={"discrepancy_scale": {"dist": "HalfNormal", "sigma": 0.1}})
    with pytest.raises(ValueError, match="discrepancy_scale"):
        bs.ScalingLaw(chinchilla_runs, priors={"discrepancy_scale": {"dist": "Normal",
                                                                     "mu": 0, "sigma": 1}})


def test_a_spec_without_the_key_answers_as_the_exact_law(chinchilla_fit):
    spec = {k: v for k, v in chinchilla_fit.spec.items() if k != "discrepancy"}
    assert bs.model.fit.family_of(spec).options(spec)["discrepancy"] == "off"


@pytest.mark.parametrize("nu", [1.5, 5.0, None])
def test_the_predictive_density_is_the_convolution(nu):
    """Against numerical integration of the noise density times Normal(0, (s d)^2)."""
    from scipy import integrate, stats

    y, mu, sigma, d, s = np.array([0.05, -0.01]), 0.0, 0.004, np.array([1.2, 0.3]), 0.02
    backtest = disc.Backtest(cut=1.0, log_loss=y, log_mu=np.full((1, 2), mu),
                             sigma=np.array([sigma]), nu=None if nu is None else np.array([nu]),
                             distance=d)
    got = float(disc._log_predictive(backtest, s).eval())
    noise = stats.norm(0, sigma) if nu is None else stats.t(nu, 0, sigma)
    want = sum(np.log(integrate.quad(lambda x: noise.pdf(yi - x) * stats.norm.pdf(x, 0, s * di),
                                     -1, 1, points=[0, yi], limit=200)[0])
               for yi, di in zip(y, d))
    assert got == pytest.approx(want, abs=0.01)


def test_a_backtests_log_density_is_the_mixture_over_its_draws():
    """Each held-out run's log density: log of the mean over draws of the noise's density
    about that draw's law (here Normal, checked against the formula)."""
    rng = np.random.default_rng(4)
    log_mu, sigma = rng.normal(1.0, 0.02, (50, 3)), rng.uniform(0.01, 0.02, 50)
    y = np.array([0.99, 1.0, 1.05])
    b = disc.Backtest(cut=1.0, log_loss=y, log_mu=log_mu, sigma=sigma, nu=None,
                      distance=np.zeros(3))
    pdf = np.exp(-0.5 * ((y - log_mu) / sigma[:, None]) ** 2) / (sigma[:, None] * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(b.log_density(), np.log(pdf.mean(axis=0)), rtol=1e-12)
    np.testing.assert_allclose(b.table()["log_density"], np.log(pdf.mean(axis=0)), rtol=1e-12)


@pytest.mark.parametrize("shortfall", [False, True], ids=["student_t", "skewed"])
def test_the_scale_model_reads_a_few_backtests_as_data_and_many_as_constants(shortfall):
    """Two backtests' numbers are pm.Data (one compilation per structure, whatever the runs)
    and give the log density the constants give; 60 backtests stay constants (more data
    arrays than one compiled call takes)."""
    rng = np.random.default_rng(8)

    def backtest(n):
        return disc.Backtest(cut=0.5, log_loss=0.02 * rng.standard_normal(n),
                             log_mu=0.005 * rng.standard_normal((40, n)),
                             sigma=np.full(40, 0.01), nu=np.full(40, 3.0),
                             distance=rng.uniform(0.1, 1.0, n),
                             shortfall=np.full(40, 0.004) if shortfall else None)

    two = [backtest(3), backtest(7)]
    prior = {"discrepancy_scale": disc.DEFAULT_SCALE_PRIOR}
    model = disc.scale_model(two, prior)
    names = {var.name for var in model.data_vars}
    assert {"backtest_0_resid", "backtest_1_distance", "backtest_1_w"} <= names
    assert ("backtest_0_tau" in names) is shortfall
    point = {"discrepancy_scale_log__": np.log(0.03)}
    with_data = float(model.compile_logp()(point))
    import pymc as pm

    with pm.Model() as constants:  # the same density with the numbers as constants
        scale = pm.LogNormal("discrepancy_scale", **{k: v for k, v in
                                                     disc.DEFAULT_SCALE_PRIOR.items()
                                                     if k != "dist"})
        for b in two:
            pm.Potential(f"p{b.log_loss.size}", disc._log_predictive(b, scale))
    assert with_data == pytest.approx(float(constants.compile_logp()(point)), rel=1e-10)
    many = disc.scale_model([backtest(3) for _ in range(60)], prior)
    assert not many.data_vars


def test_the_scale_reads_at_most_max_held_out_runs_spread_over_their_distance():
    """A backtest of 3000 held-out runs: its log density is Normal about the law at the
    MAX_HELD_OUT runs of evenly spaced distance ranks (from the nearest to the farthest)."""
    from scipy import stats

    rng = np.random.default_rng(5)
    n, s, sigma = 3000, 0.03, 0.004
    d = rng.uniform(0.05, 1.5, n)
    mu = rng.normal(0, 0.002, (40, n))
    y = s * d * rng.standard_normal(n) + sigma * rng.standard_normal(n)
    backtest = disc.Backtest(cut=1.0, log_loss=y, log_mu=mu, sigma=np.full(40, sigma),
                             nu=None, distance=d)
    ranks = np.round(np.arange(disc.MAX_HELD_OUT) * (n - 1) / (disc.MAX_HELD_OUT - 1))
    keep = np.argsort(d)[ranks.astype(int)]
    assert d[keep].min() == d.min() and d[keep].max() == d.max()
    sd = np.sqrt(mu.var(0) + sigma ** 2 + (s * d) ** 2)
    want = stats.norm(mu.mean(0)[keep], sd[keep]).logpdf(y[keep]).sum()
    assert float(disc._log_predictive(backtest, s).eval()) == pytest.approx(want, rel=1e-9)
