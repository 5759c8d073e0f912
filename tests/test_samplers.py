"""Every NUTS backend runs the same model and is reproducible by its random_seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayescale as bs

TRUTH = {"E": 2.0, "A": 30.0, "alpha": 0.15}


@pytest.fixture(scope="module")
def flops_runs() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    flops = np.repeat(np.geomspace(1e17, 1e21, 6), 4)
    loss = (TRUTH["E"] + TRUTH["A"] * flops ** -TRUTH["alpha"]) * np.exp(
        0.01 * rng.standard_normal(flops.size))
    return bs.prepare(pd.DataFrame({"flops": flops, "loss": loss}))


@pytest.mark.parametrize("sampler", ["pymc", "numpyro"])
def test_backend_runs_and_is_reproducible(flops_runs, sampler):
    model = bs.ScalingLaw(flops_runs, law="flops", noise="normal")
    settings = {"draws": 100, "tune": 150, "chains": 2, "random_seed": 4, "sampler": sampler,
                "progressbar": False}
    with pytest.warns(bs.SamplerWarning):  # 200 draws cannot reach ESS 400
        first = model.fit(**settings)
    with pytest.warns(bs.SamplerWarning):
        second = model.fit(**settings)
    assert first.posterior.attrs["sampler"] == sampler
    for name in ("E", "A", "alpha", "sigma"):
        assert first.posterior[name].dims == ("chain", "draw")
        assert np.array_equal(first.posterior[name].values, second.posterior[name].values), name
    assert first.idata.log_likelihood["log_loss"].dims == ("chain", "draw", "run")
    # a crude check that the backend samples the right posterior: 24 runs with 1% noise pin
    # the loss at the largest budget to well within 2% of the truth
    top = flops_runs["flops"].max()
    predicted = float(first.predict({"flops": [top]})["loss"].median())
    assert predicted == pytest.approx(TRUTH["E"] + TRUTH["A"] * top ** -TRUTH["alpha"], rel=0.02)


def test_nutpie_reuses_a_compiled_model_for_new_losses_of_the_same_design(flops_runs,
                                                                            monkeypatch):
    """A second fit of the same design with other losses skips nutpie's compilation, and its
    draws equal those of a fresh compilation (the swap of data is exact)."""
    from bayescale.inference import sampling

    calls = []
    compile_model = sampling.compile_pymc_model
    monkeypatch.setattr(sampling, "compile_pymc_model",
                        lambda model: calls.append(1) or compile_model(model))
    priors = bs.ScalingLaw(flops_runs, law="flops", noise="normal", discrepancy="prior").priors
    other = flops_runs.assign(loss=flops_runs["loss"] * np.exp(
        0.01 * np.random.default_rng(5).standard_normal(len(flops_runs))))
    settings = {"draws": 100, "tune": 150, "chains": 2, "random_seed": 4, "progressbar": False}

    def fit(runs):
        with pytest.warns(bs.SamplerWarning):  # 200 draws cannot reach ESS 400
            return bs.ScalingLaw(runs, law="flops", noise="normal", priors=priors,
                                 discrepancy="prior").fit(**settings)

    sampling.clear_compile_cache()
    first, reused = fit(flops_runs), fit(other)
    assert len(calls) == 1
    sampling.clear_compile_cache()
    fresh = fit(other)
    assert len(calls) == 2
    assert np.array_equal(reused.posterior["E"].values, fresh.posterior["E"].values)
    assert not np.array_equal(first.posterior["E"].values, reused.posterior["E"].values)
    assert np.array_equal(reused.idata.observed_data["log_loss"].values, np.log(other["loss"]))


def test_nutpie_reuses_a_compiled_model_for_another_run_table_of_the_same_structure(
        flops_runs, monkeypatch):
    """A fit of fewer runs with its own data-scaled default priors and references (a
    backtest's fit) reuses the compilation of the whole table's model: the draws equal those
    of a fresh compilation, which starts the chains from the same initial point."""
    from bayescale.inference import sampling

    calls = []
    compile_model = sampling.compile_pymc_model
    monkeypatch.setattr(sampling, "compile_pymc_model",
                        lambda model: calls.append(1) or compile_model(model))
    below = flops_runs[flops_runs["flops"] < flops_runs["flops"].max()]
    settings = {"draws": 100, "tune": 150, "chains": 2, "random_seed": 4, "progressbar": False}

    def fit(runs):
        model = bs.ScalingLaw(runs, law="flops", discrepancy="prior")
        with pytest.warns(bs.SamplerWarning):  # 200 draws cannot reach ESS 400
            return model, model.fit(**settings)

    sampling.clear_compile_cache()
    (whole, _), (part, reused) = fit(flops_runs), fit(below)
    assert len(calls) == 1 and whole.compile_key() == part.compile_key()
    assert whole.priors["log_E"] != part.priors["log_E"]  # data-scaled: swapped in as data
    sampling.clear_compile_cache()
    _, fresh = fit(below)
    assert len(calls) == 2
    for name in ("E", "A", "alpha", "sigma", "nu"):
        assert np.array_equal(reused.posterior[name].values, fresh.posterior[name].values), name


def test_a_family_whose_graph_holds_constants_keys_its_compilation_by_its_runs(flops_runs):
    """A graph that takes values of its run table as constants (learning curves' schedule
    term) keys its compilation by those values; a scaling law's key is its structure."""
    from bayescale.model.curves import LearningCurves

    below = flops_runs.iloc[:-3]
    law = lambda runs: bs.ScalingLaw(runs, law="flops", discrepancy="prior")  # noqa: E731
    assert law(flops_runs).compile_key() == law(below).compile_key()
    assert law(flops_runs).compile_key() != bs.ScalingLaw(flops_runs, law="flops",
                                                          noise="normal").compile_key()
    assert not LearningCurves.graph_from_data


def _result_with_divergences(where: str):
    """A posterior of 4 x 250 draws of two group scales and a law parameter, with 40 divergent
    draws placed either at the smallest values of ``batch_size_tau`` or at random."""
    import arviz as az

    from bayescale.inference.diagnostics import PosteriorResult

    rng = np.random.default_rng(0)
    shape = (4, 250)
    post = {"batch_size_tau": np.exp(rng.normal(-5, 1.5, shape)),
            "num_heads_tau": np.exp(rng.normal(-4, 0.5, shape)),
            "alpha": rng.normal(0.34, 0.01, shape)}
    flat = np.zeros(post["alpha"].size, dtype=bool)
    if where == "neck":
        flat[np.argsort(post["batch_size_tau"].ravel())[:40]] = True
    else:
        flat[rng.choice(flat.size, 40, replace=False)] = True
    result = PosteriorResult()
    result.idata = az.from_dict({"posterior": post,
                                 "sample_stats": {"diverging": flat.reshape(shape)}})
    return result


def test_diagnostics_name_the_group_scale_whose_funnel_holds_the_divergences():
    problems = _result_with_divergences("neck").diagnostic_problems()
    hints = [p for p in problems if "lowest quarter" in p]
    assert len(hints) == 1 and "40 of the 40 divergent draws" in hints[0]
    assert "batch_size_tau" in hints[0] and "num_heads_tau" not in hints[0]
    # spread at random, about a quarter fall in any scale's lowest quarter: no funnel is named
    problems = _result_with_divergences("random").diagnostic_problems()
    assert problems[0].startswith("40 divergent transitions")
    assert not any("lowest quarter" in p for p in problems)
