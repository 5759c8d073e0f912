"""Laws that differ by group: per-level law parameters, pooled, and the answers between levels.

The recovery test fits a simulated truth (4 variants differing in E and alpha, one fit, fixed
seeds) and checks every variant's E and alpha and the compute multiplier at 100x the largest
run against the truth; the rest checks the arguments, the spec and the answers' mechanics.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayescale as bs
from bayescale.model import laws
from bayescale.model.groups import _loss_curve, _multiplier, parameter_differences

BUDGETS = np.repeat(np.geomspace(1e17, 1e20, 6), 5)
PARAMS = np.sqrt(BUDGETS / 120.0) * np.tile(np.geomspace(1 / 4, 4, 5), 6)
N0 = float(np.exp(np.mean(np.log(PARAMS))))
A0 = 400.0 * N0 ** -0.36  # every variant's N term of the same size at the sweep's mean N
TRUTHS = {f"v{i}": {"E": e, "alpha": a, "A": A0 * N0 ** a, "B": 2000.0, "beta": 0.36}
          for i, (e, a) in enumerate([(1.7, 0.30), (1.8, 0.34), (1.9, 0.38), (2.0, 0.42)])}


def _sweep(seed: int, noise: float = 0.01) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tokens = BUDGETS / (6 * PARAMS)
    rows = [pd.DataFrame({"params": PARAMS, "tokens": tokens, "variant": name,
                          "loss": laws.mean("chinchilla", truth, {"params": PARAMS,
                                                                  "tokens": tokens})
                          * np.exp(noise * rng.standard_normal(PARAMS.size))})
            for name, truth in TRUTHS.items()]
    return bs.prepare(pd.concat(rows, ignore_index=True))


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    return _sweep(0)


@pytest.fixture(scope="module")
def fit(runs) -> bs.Fit:
    model = bs.ScalingLaw(runs, law="chinchilla", group="variant", group_params=["E", "alpha"],
                          discrepancy="off")  # the truths are Chinchilla laws
    return model.fit(draws=400, tune=400, chains=2, random_seed=1, progressbar=False)


def test_every_variant_recovers_its_exponent_and_floor(fit):
    for level, truth in TRUTHS.items():
        theta = fit.model.law_theta(fit.posterior, level=level)
        for name in ("E", "alpha"):
            lo, hi = np.quantile(theta[name], [0.05, 0.95])
            assert lo <= truth[name] <= hi, (level, name, truth[name], lo, hi)
    # the population is the variants' average: between the extreme variants
    assert 0.30 < float(fit.posterior["alpha"].median()) < 0.42


def test_the_compute_multiplier_covers_the_truth(fit):
    budget = 100 * BUDGETS.max()
    answer = fit.groups([budget], reference="v0")
    log10_c = np.log10([budget])
    truth = {lv: {k: np.array([[[v]]]) for k, v in th.items()} for lv, th in TRUTHS.items()}
    target = _loss_curve(fit.model, truth["v0"], log10_c)
    for level in ("v1", "v2"):
        true = float(_multiplier(fit.model, truth[level], target, log10_c).ravel()[0])
        draws = answer["multiplier"].sel(variant=level).values.ravel()
        # one data set: the 98% interval (the 90% one's coverage over 50 data sets is
        # benchmarks/groups.py's to measure)
        lo, hi = np.quantile(draws, [0.01, 0.99])
        assert lo <= true <= hi, (level, true, lo, hi)
        assert true > 1  # a higher floor needs more compute to reach v0's loss
    np.testing.assert_allclose(answer["multiplier"].sel(variant="v0").values, 1.0, rtol=1e-4)
    # v3's floor (E = 2.0) lies above v0's loss at that budget: never reached
    assert np.mean(np.isinf(answer["multiplier"].sel(variant="v3").values)) > 0.5
    assert float(answer["p_lower"].sel(variant="v0").item()) == 0.0
    assert float(answer["p_lower"].sel(variant="v3").item()) == 0.0


def test_predictions_take_each_level_the_population_or_a_new_draw(fit, runs):
    point = {"params": [1e9], "tokens": [2e10]}
    levels = [fit.predict(point | {"variant": [lv]}, random_seed=0)["loss"].median().item()
              for lv in TRUTHS]
    assert levels == sorted(levels)  # higher floors, higher losses
    population = fit.predict(point, random_seed=0)["loss"]
    new = fit.predict(point | {"variant": ["unseen"]}, random_seed=0)["loss"]
    assert levels[0] < population.median().item() < levels[-1]
    assert new.std().item() > 3 * population.std().item()  # a new level: the pooled spread
    optimum = fit.optimal([1e20], level="v1", random_seed=0)
    np.testing.assert_allclose(optimum["params_opt"] * optimum["tokens_opt"] * 6, 1e20,
                               rtol=1e-9)
    deltas = parameter_differences(fit, reference="v0")
    assert float(deltas["delta_alpha"].sel(variant="v3").median()) == pytest.approx(0.12, abs=0.04)


def test_spec_round_trip_and_summary(fit, tmp_path):
    spec = fit.spec
    assert spec["group"] == "variant" and spec["group_params"] == ["E", "alpha"]
    assert spec["group_levels"] == list(TRUTHS)
    fit.save(tmp_path / "groups.nc")
    back = bs.load(tmp_path / "groups.nc")
    assert back.model.groups == fit.model.groups
    xr.testing.assert_allclose(back.predict({"params": [1e9], "tokens": [1e10],
                                             "variant": ["v2"]}, random_seed=0)["loss"],
                               fit.predict({"params": [1e9], "tokens": [1e10],
                                            "variant": ["v2"]}, random_seed=0)["loss"])
    rows = fit.summary().index
    assert "variant_alpha_tau" in rows and "variant_log_E[v3]" in rows


def test_group_centred_chooses_how_the_deviations_are_sampled(runs):
    """30 runs per level: centred by the rule; ``group_centred=False`` samples ``tau * z``, and
    the choice travels with the spec to the model a saved fit rebuilds."""
    by_rule = bs.ScalingLaw(runs, group="variant", group_params=["E", "alpha"], discrepancy="off")
    forced = bs.ScalingLaw(runs, group="variant", group_params=["E", "alpha"], discrepancy="off",
                           group_centred=False)
    free = {model: {rv.name for rv in model.model.free_RVs} for model in (by_rule, forced)}
    assert by_rule.groups.centred and {"variant_log_E", "variant_alpha"} <= free[by_rule]
    assert not forced.groups.centred
    assert {"variant_log_E_z", "variant_alpha_z"} <= free[forced]
    assert "variant_log_E" not in free[forced]
    assert by_rule.compile_key() != forced.compile_key()
    assert by_rule.spec.get("group_centred") is None and forced.spec["group_centred"] is False
    rebuilt = bs.ScalingLaw(runs, **bs.ScalingLaw.options(forced.spec))
    assert rebuilt.groups == forced.groups


def test_bad_group_arguments(runs):
    with pytest.raises(ValueError, match="group='variant' needs group_params"):
        bs.ScalingLaw(runs, group="variant")
    with pytest.raises(ValueError, match="group_params names 'gamma'.*has \\['E', 'A', 'B'"):
        bs.ScalingLaw(runs, law="chinchilla", group="variant", group_params=["gamma"])
    with pytest.raises(ValueError, match="needs a group column"):
        bs.ScalingLaw(runs, group_params=["E"])
    with pytest.raises(ValueError, match="group_centred=False needs a group column"):
        bs.ScalingLaw(runs, group_centred=False)
    with pytest.raises(TypeError, match="group_centred must be True, False or None, got 'no'"):
        bs.ScalingLaw(runs, group="variant", group_params=["E"], group_centred="no")
    with pytest.raises(ValueError, match="group names column 'dataset', which the run table"):
        bs.ScalingLaw(runs, group="dataset", group_params=["E"])
    with pytest.raises(ValueError, match="group cannot include 'variant'"):
        bs.ScalingLaw(runs, offsets=["variant"], group="variant", group_params=["E"])
    with pytest.raises(ValueError, match="single level"):
        bs.ScalingLaw(runs.assign(variant="v0"), group="variant", group_params=["E"])
    with pytest.raises(TypeError, match="group_params must be a non-empty list"):
        bs.ScalingLaw(runs, group="variant", group_params="E")
    with pytest.raises(ValueError, match="names a parameter twice"):
        bs.ScalingLaw(runs, group="variant", group_params=["E", "log_E"])


def test_answers_between_levels_need_a_group(runs):
    model = bs.ScalingLaw(runs, discrepancy="off")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplerWarning)
        plain = model.fit(draws=100, tune=100, chains=2, random_seed=0, progressbar=False)
    with pytest.raises(ValueError, match="no group column"):
        plain.groups([1e21])
    with pytest.raises(ValueError, match="needs a fit with a group column"):
        plain.optimal([1e21], level="v0")


def test_unknown_reference_level_is_named(fit):
    with pytest.raises(ValueError, match="levels \\['v9'\\] are not levels of group column"):
        fit.groups([1e21], reference="v9")


def test_the_distance_past_the_runs_is_each_levels_own(runs):
    """A level's point is as far past the runs as it is past that level's own runs."""
    cut = runs[~((runs["variant"] == "v1") & (runs["flops"] > 2e18))]
    model = bs.ScalingLaw(cut, group="variant", group_params=["E"], discrepancy="prior")
    point = {"params": [3.65e9], "tokens": [4.57e9], "flops": [1e20]}  # a run of v0 and v2
    assert model.discrepancy_distance(point | {"variant": ["v0"]})[0] == pytest.approx(0, abs=1e-3)
    own = model.discrepancy_distance(point | {"variant": ["v1"]})[0]
    assert own == pytest.approx(model.discrepancy_term.distance(
        point, model.discrepancy_term.ranges(cut[cut["variant"] == "v1"]))[0])
    assert own > 1.0
    assert model.discrepancy_distance(point | {"variant": ["new"]})[0] == pytest.approx(0, abs=1e-3)


def test_the_report_answers_per_level_with_the_multiplier(fit, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from bayescale.report import answer, plots

    table = answer.targets_table(fit, [1e20, 1e21])
    assert list(table["variant"]) == ["v0", "v0", "v1", "v1", "v2", "v2", "v3", "v3"]
    assert {"multiplier", "multiplier_lower", "multiplier_upper", "p_lower"} <= set(table)
    reference = table[table["variant"] == "v0"]
    np.testing.assert_allclose(reference["multiplier"], 1.0, rtol=1e-4)
    # the answer per level is that level's: higher floors, higher losses at the optimum
    at = table[table["budget"] == 1e20].set_index("variant")["loss_opt"]
    assert list(at.index[np.argsort(at.to_numpy())]) == ["v0", "v1", "v2", "v3"]
    assert table.attrs["warnings"]  # 1e21 lies past the runs: each warning names its level
    assert all(w.startswith("variant = v") for w in table.attrs["warnings"])
    text = answer.format_targets(table)
    assert "compute multiplier" in text and "v0's loss" in text
    ax = plots.plot_multiplier(fit, [1e21])
    assert len(ax.get_lines()) >= 4
    paths = answer.write_results(fit, tmp_path / "out", budgets=[1e21])
    assert "multiplier.png" in {p.name for p in paths.values()}
    assert len(pd.read_csv(paths["targets.csv"])) == 4


def test_a_recipe_takes_the_group():
    from bayescale.report.recipe import Recipe

    recipe = Recipe.read("models/porian_owt2_setups.toml")
    model = recipe.scaling_law()
    assert model.groups.column == "setup" and len(model.groups.levels) == 4
    assert model.groups.params == ("log_E", "log_A_ref", "log_B_ref", "alpha", "beta")
    assert model.noise == "normal" and model.groups.centred is False
    with pytest.raises(TypeError, match="group_params"):
        Recipe.from_dict({"data": {"dataset": "porian2024_owt2"},
                          "model": {"group": "setup", "group_params": "E"}})
    with pytest.raises(TypeError, match="group_centred must be bool, got 'no'"):
        Recipe.from_dict({"data": {"dataset": "porian2024_owt2"},
                          "model": {"group": "setup", "group_params": ["E"],
                                    "group_centred": "no"}})
    with pytest.raises(TypeError, match="group must be str, got True"):
        Recipe.from_dict({"data": {"dataset": "porian2024_owt2"}, "model": {"group": True}})


def test_groups_with_offsets_and_continuous_terms_match_pymc(runs):
    """The graph and the answers from draws agree with a group beside an offset and a
    continuous term: the log-likelihood of prior draws against PyMC's."""
    import pymc as pm

    rng = np.random.default_rng(5)
    table = runs.assign(batch=np.tile([64, 128, 256], len(runs) // 3),
                        lr=np.exp(rng.normal(-7, 0.5, len(runs))))
    model = bs.ScalingLaw(table, offsets=["batch"], continuous=["lr"], group="variant",
                          group_params=["E", "beta"], discrepancy="off")
    with model.model:
        prior = pm.sample_prior_predictive(draws=50, random_seed=1).prior.to_dataset()
    fit = bs.Fit.from_sampler(xr.DataTree.from_dict({"posterior": prior}), spec=model.spec,
                              runs=table, sampler="prior", seed=1)
    reference = pm.compute_log_likelihood(fit.idata, model=model.model,
                                          extend_inferencedata=False, progressbar=False)
    ours = fit.idata["log_likelihood"]["log_loss"]
    np.testing.assert_allclose(ours.values, reference["log_loss"].transpose(*ours.dims).values,
                               rtol=1e-9, atol=1e-6)


def test_a_law_in_compute_answers_between_levels():
    """Without an allocation the loss is the law at C; the multiplier and the report follow."""
    rng = np.random.default_rng(0)
    flops = np.geomspace(1e17, 1e20, 12)
    rows = [pd.DataFrame({"flops": flops, "variant": name,
                          "loss": (e + 20 * flops ** -a) * np.exp(0.005 * rng.standard_normal(12))})
            for name, (e, a) in {"a": (1.8, 0.05), "b": (1.9, 0.06)}.items()]
    runs = bs.prepare(pd.concat(rows, ignore_index=True))
    model = bs.ScalingLaw(runs, law="flops", group="variant", group_params=["E", "alpha"],
                          discrepancy="off")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplerWarning)
        fit = model.fit(draws=200, tune=200, chains=2, random_seed=0, progressbar=False)
    answer = fit.groups([1e19], reference="a")
    assert "params_opt" not in answer
    loss = answer["loss"].median(("chain", "draw")).values.ravel()
    truth = [1.8 + 20 * 1e19 ** -0.05, 1.9 + 20 * 1e19 ** -0.06]
    np.testing.assert_allclose(loss, truth, rtol=0.01)
    # per draw, b's law at the multiplier's compute reaches a's loss at 1e19 (the definition,
    # from the draws' law parameters and the formula written out here)
    theta = {lv: fit.model.law_theta(fit.posterior, level=lv) for lv in ("a", "b")}
    law = {lv: lambda c, t=theta[lv]: np.asarray(t["E"]) + np.asarray(t["A"]) * c ** -np.asarray(
        t["alpha"]) for lv in theta}
    multiplier = answer["multiplier"].sel(variant="b").values.reshape(law["a"](1e19).shape)
    np.testing.assert_allclose(law["b"](1e19 * multiplier), law["a"](1e19), rtol=1e-6)
    # b's loss at 1e19 is below a's: every draw's multiplier below 1, the median within a
    # factor 2 of the truth's (1.5e-3; the median 1.0e-3). Not an interval: this data set's
    # noise puts the truth above every draw (so does a fit with E, A and alpha grouped, whose
    # truth's place among the draws over data seeds 1-11 runs 0.16-0.88); the 90% interval's
    # coverage over data sets is benchmarks/groups.py's to measure.
    true_c = np.exp(np.log(20 / (truth[0] - 1.9)) / 0.06)
    assert np.all(multiplier < 1)
    assert abs(np.log(np.median(multiplier) * 1e19 / true_c)) < np.log(2)


def test_a_noise_scale_per_level():
    """``sigma`` among group_params: each level's runs scatter by their own scale; the
    graph's likelihood and the draws' agree, and a new run of the noisy level is wider."""
    import pymc as pm

    rng = np.random.default_rng(2)
    tokens = BUDGETS / (6 * PARAMS)
    truth = TRUTHS["v1"]
    mean = laws.mean("chinchilla", truth, {"params": PARAMS, "tokens": tokens})
    runs = bs.prepare(pd.concat([
        pd.DataFrame({"params": PARAMS, "tokens": tokens, "lab": name,
                      "loss": mean * np.exp(scale * rng.standard_normal(PARAMS.size))})
        for name, scale in (("quiet", 0.004), ("noisy", 0.03))], ignore_index=True))
    model = bs.ScalingLaw(runs, group="lab", group_params=["E", "sigma"], discrepancy="off",
                          noise="normal")
    assert "lab_sigma_tau" in model.priors and model.groups.noise
    with model.model:
        prior = pm.sample_prior_predictive(draws=40, random_seed=1).prior.to_dataset()
    prior_fit = bs.Fit.from_sampler(xr.DataTree.from_dict({"posterior": prior}),
                                    spec=model.spec, runs=runs, sampler="prior", seed=1)
    reference = pm.compute_log_likelihood(prior_fit.idata, model=model.model,
                                          extend_inferencedata=False, progressbar=False)
    ours = prior_fit.idata["log_likelihood"]["log_loss"]
    np.testing.assert_allclose(ours.values, reference["log_loss"].transpose(*ours.dims).values,
                               rtol=1e-9, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplerWarning)
        fit = model.fit(draws=300, tune=300, chains=2, random_seed=0, progressbar=False)
    sigma = fit.posterior["sigma"].values[..., None] * np.exp(fit.posterior["lab_sigma"].values)
    for i, level in enumerate(fit.posterior["lab"].values):
        lo, hi = np.quantile(sigma[..., i], [0.05, 0.95])
        true = {"quiet": 0.004, "noisy": 0.03}[str(level)]
        assert lo <= true <= hi, (level, lo, hi)
    point = {"params": [1e9], "tokens": [2e10]}
    quiet, noisy = (np.log(fit.predict(point | {"lab": [lv]}, kind="new_run",
                                       random_seed=0)["loss"].values).std()
                    for lv in ("quiet", "noisy"))
    assert noisy > 3 * quiet


def test_a_levels_optimum_is_as_far_past_the_runs_as_its_own_runs_make_it(runs):
    """optimal(level=...) measures the discrepancy from that level's runs, as predict does:
    a level cut to small budgets is far past its runs at a budget the others reach."""
    from bayescale.model.discrepancy import without_discrepancy

    cut = runs[~((runs["variant"] == "v1") & (runs["flops"] > 2e18))]
    model = bs.ScalingLaw(cut, group="variant", group_params=["E"], discrepancy="prior")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplerWarning)
        fit = model.fit(draws=200, tune=200, chains=2, random_seed=0, progressbar=False)
    exact = without_discrepancy(fit.posterior)
    spread = {}
    for level in ("v0", "v1"):
        bent = model.optimal(fit.posterior, np.array([1e20]), np.random.default_rng(0),
                             level=level)["loss_opt"]
        plain = model.optimal(exact, np.array([1e20]), np.random.default_rng(0),
                              level=level)["loss_opt"]
        spread[level] = np.std(np.log(bent / plain))
    scale = float(np.median(fit.posterior["discrepancy_scale"]))
    assert spread["v1"] > 0.5 * scale  # about a decade past v1's own runs
    assert spread["v1"] > 5 * spread["v0"]  # v0 has runs at 1e20
