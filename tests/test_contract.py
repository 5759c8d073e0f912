"""Contract tests: the same properties checked for every model family x law.

Each case is a model of a registered family; the "fit" is a posterior of prior draws (no NUTS)
except where the property is about sampling (refit, leave-future-out), which use tiny fits.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pymc as pm  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

import bayescale as bs  # noqa: E402
from bayescale.report import plots  # noqa: E402
from bayescale.report import answer as report  # noqa: E402
from bayescale.model.discrepancy import attach  # noqa: E402
from bayescale.model.registry import families  # noqa: E402

#: Every registered family x each of its variants (``Family.variants``: every law, the
#: discrepancy on and off), on the family's own example runs (``Family.example``).
CASES = [(name, options) for name, cls in families().items() for options in cls.variants()]
IDS = [":".join([name, *(str(v) for v in options.values())]) for name, options in CASES]


def _draws(model) -> xr.Dataset:
    """80 prior draws in 2 chains of 40; a model with flat coordinates (the learning curves'
    ridge) has no prior draws, so a tiny NUTS fit gives its draws."""
    if any(isinstance(v.owner.op, type(pm.Flat.rv_op)) for v in model.model.free_RVs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bs.SamplerWarning)
            fit = type(model).from_spec(model.spec.replace(discrepancy="off"), model.runs).fit(
                draws=40, tune=100, chains=2, random_seed=1, progressbar=False)
        return fit.posterior.drop_attrs()
    with model.model:
        prior = pm.sample_prior_predictive(draws=80, random_seed=1).prior.to_dataset()
    halves = [prior.isel(chain=0, draw=slice(40 * i, 40 * (i + 1))).assign_coords(draw=range(40))
              for i in range(2)]
    return xr.concat(halves, dim="chain").assign_coords(chain=[0, 1])


@pytest.fixture(scope="module", params=CASES, ids=IDS)
def case(request):
    """(model, a Fit of 40 prior draws in 2 chains, with the discrepancy's draws where the
    model has one) for one family x variant."""
    name, options = request.param
    model = families()[name].example(**options)
    prior = _draws(model)
    if "budget" in prior.dims:
        prior = prior.assign_coords(budget=model.budgets)
    fit = bs.Fit.from_sampler(xr.DataTree.from_dict({"posterior": prior}), spec=model.spec,
                              runs=model.runs, sampler="prior", seed=1)
    if model.discrepancy != "off":
        fit = attach(fit, model, sampler="nutpie", target_accept=0.9)
        assert "discrepancy_scale" in fit.posterior
    return model, fit


def test_log_likelihood_equals_pymc(case):
    model, fit = case
    # PyMC's reference cannot convert a model with starting values (the learning curves'
    # ridge has them); they change where NUTS starts, not the likelihood
    model.model.rvs_to_initial_values = dict.fromkeys(model.model.rvs_to_initial_values)
    reference = pm.compute_log_likelihood(fit.idata, model=model.model,
                                          extend_inferencedata=False, progressbar=False)
    ours = fit.idata["log_likelihood"]["log_loss"]
    np.testing.assert_allclose(ours.values, reference["log_loss"].transpose(*ours.dims).values,
                               rtol=1e-9, atol=1e-6)


def test_save_then_load_gives_the_same_fit(case, tmp_path):
    _, fit = case
    fit.save(tmp_path / "fit.nc")
    back = bs.load(tmp_path / "fit.nc")
    assert type(back.model) is type(fit.model) and back.spec == fit.spec
    xr.testing.assert_identical(back.posterior, fit.posterior)
    with np.errstate(over="ignore", invalid="ignore"):  # prior draws of Kaplan's N_c: inf
        pd.testing.assert_frame_equal(back.summary(), fit.summary())
    points = fit.runs.iloc[:3]
    xr.testing.assert_allclose(back.predict(points, kind="new_run", random_seed=2),
                               fit.predict(points, kind="new_run", random_seed=2))


def test_from_spec_gives_the_same_compile_key(case):
    model, fit = case
    again = type(model).from_spec(fit.spec, fit.runs)
    assert again.compile_key() == model.compile_key()
    assert fit.model.compile_key() == model.compile_key()


def test_loo_comparison_runs(case):
    _, fit = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ParetoKWarning)  # prior draws: LOO is rough
        table = bs.compare({"a": fit, "b": fit}, method="loo")
    assert list(table.index) and table["elpd"].iloc[0] == table["elpd"].iloc[1]


def test_checks_ranks_and_targets_plot(case):
    model, fit = case
    for figure in (plots.plot_checks(fit), plots.plot_ranks(fit)):
        assert figure.axes
        plt.close(figure)
    table = report.targets_table(fit, [1e21])
    rows = 1 if model.groups is None else len(model.groups.levels)  # a row per level
    assert len(table) == rows and (table.filter(like="loss").to_numpy() > 0).all()
    # how far the answer reaches: decades past the largest run, in C (and N*, D*)
    runs = fit.runs
    assert table.loc[0, "decades_flops"] == pytest.approx(np.log10(1e21 / runs["flops"].max()))
    if "params_opt" in table:
        assert table.loc[0, "decades_params"] == pytest.approx(
            np.log10(table.loc[0, "params_opt"] / runs["params"].max()))
    assert "past the runs" in report.format_targets(table)


def test_a_fit_answers_what_its_model_allows(case):
    model, fit = case
    if model.has_optimum:
        with warnings.catch_warnings():  # 1e21 lies past some examples' runs: a warning
            warnings.simplefilter("ignore", bs.ExtrapolationWarning)
            opt = fit.optimal([1e21], random_seed=0)
        np.testing.assert_allclose(opt["params_opt"] * opt["tokens_opt"] * 6, 1e21, rtol=1e-9)
    else:
        with pytest.raises(ValueError, match="no compute-optimal allocation|optimal\\(\\) needs"):
            fit.optimal([1e21])


@pytest.mark.parametrize("family, options", [("isoflop", {}), ("scaling_law", {"law": "kaplan"})],
                         ids=["isoflop", "kaplan"])
def test_refit_and_leave_future_out_run(family, options):
    """refit, fit_many and LFO rebuild any family from its spec (tiny fits), discrepancy
    included (the families' defaults: prior draws for IsoFLOP, backtests for a scaling law)."""
    kwargs = {"draws": 60, "tune": 60, "chains": 2, "random_seed": 0, "progressbar": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplerWarning)
        model = families()[family].example(**options)
        runs = model.runs
        fit = model.fit(**kwargs)
        again = bs.refit(fit, runs)
        many = bs.fit_many({"model": model, "pair": (fit.spec, runs)}, **kwargs)
        table = bs.compare({"one": fit}, method="lfo", holdout=0.3, **kwargs)
    assert "discrepancy_scale" in fit.posterior
    assert type(again.model) is type(fit.model) and again.spec == fit.spec
    for other in many.values():  # same design, same seed: the same draws
        xr.testing.assert_identical(other.posterior["a" if family == "isoflop" else "alpha_N"],
                                    fit.posterior["a" if family == "isoflop" else "alpha_N"])
    assert table.loc["one", "n_holdout"] > 0 and np.isfinite(table.loc["one", "elpd"])


def test_the_spec_is_typed_and_round_trips_through_json(case):
    import json

    from bayescale.model.spec import spec_from_dict

    model, fit = case
    assert type(fit.spec) is type(model).spec_class and fit.spec.model == model.family
    assert fit.spec.version == bs.model.fit.FORMAT_VERSION
    back = spec_from_dict(json.loads(json.dumps(fit.spec.to_dict())))
    assert back == fit.spec and type(back) is type(fit.spec)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['bogus'\]"):
        spec_from_dict(fit.spec.to_dict() | {"bogus": 1})
    with pytest.raises(ValueError, match="unknown model family 'gp'"):
        spec_from_dict(fit.spec.to_dict() | {"model": "gp"})


def test_a_family_registers_by_being_defined():
    """Defining a Family subclass with a name and a spec class registers it: a spec of that
    name then loads as its typed spec, and nothing else lists the family."""
    from dataclasses import dataclass

    from bayescale.model.family import Family
    from bayescale.model.registry import FAMILIES, family_of
    from bayescale.model.spec import Spec, spec_from_dict

    @dataclass(frozen=True, eq=False)
    class ToySpec(Spec):
        model: ClassVar[str] = "toy_family"

    try:
        class Toy(Family):
            family = "toy_family"
            spec_class = ToySpec

        assert families()["toy_family"] is Toy and family_of({"model": "toy_family"}) is Toy
        spec = spec_from_dict({"model": "toy_family", "noise": "normal", "priors": {},
                               "user_priors": {}})
        assert type(spec) is ToySpec and spec.discrepancy == "off"
        with pytest.raises(ValueError, match="needs a spec_class whose model is 'other_family'"):
            class Other(Family):
                family = "other_family"
                spec_class = ToySpec
        with pytest.raises(ValueError, match="already registered"):
            class Clash(Family):
                family = "scaling_law"
                spec_class = type(bs.ScalingLaw.example().spec)
    finally:
        FAMILIES.pop("toy_family", None)
        FAMILIES.pop("other_family", None)
    assert families()["scaling_law"] is bs.ScalingLaw
