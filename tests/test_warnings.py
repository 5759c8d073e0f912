"""Every warning bayescale issues points at the caller's line, however deep it arose."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale as bs


def test_a_data_warning_points_at_the_call(chinchilla_runs):
    runs = chinchilla_runs[["params", "tokens", "loss"]].assign(
        flops=6 * chinchilla_runs["params"] * chinchilla_runs["tokens"])
    runs.loc[runs.index[0], "flops"] *= 10  # one run's compute a factor 10 off 6 N D
    with pytest.warns(bs.DataWarning, match="differs from 6") as seen:
        bs.prepare(runs)
    assert [w.filename for w in seen] == [__file__]


def test_sampler_warnings_point_at_the_call(chinchilla_fit):
    with pytest.warns(bs.SamplerWarning, match="ESS") as seen:
        chinchilla_fit.warn_diagnostics()
    assert [w.filename for w in seen] == [__file__]


def test_a_fit_that_warns_points_at_the_fit_call(tiny):
    runs = bs.simulate(budgets=(1e16, 3e16, 1e17), runs_per_budget=6, random_seed=4)
    model = bs.ScalingLaw(runs[["params", "tokens", "flops", "loss"]], law="chinchilla",
                          discrepancy="prior")
    with pytest.warns(bs.SamplerWarning) as seen:
        model.fit(**tiny)
    assert {w.filename for w in seen if w.category is bs.SamplerWarning} == {__file__}


def test_interval_keeps_the_points_columns(fake_fit):
    points = pd.DataFrame({"params": [1e9, 1e10], "tokens": [2e10, 2e11]})  # inside the runs
    table = bs.interval(fake_fit.predict(points), prob=0.9)
    assert list(table.columns[:5]) == ["variable", "point", "params", "tokens", "flops"]
    np.testing.assert_array_equal(table["params"], points["params"])
    np.testing.assert_array_equal(table["tokens"], points["tokens"])
    np.testing.assert_allclose(table["flops"], 6 * points["params"] * points["tokens"])
    assert (table["lower"] < table["median"]).all() and (table["median"] < table["upper"]).all()


def test_an_optimum_past_the_runs_is_named_at_the_call(fake_fit, chinchilla_runs):
    with pytest.warns(bs.ExtrapolationWarning) as seen:
        opt = fake_fit.optimal([1e24])
    n_star = float(opt["params_opt"].median())
    assert n_star > chinchilla_runs["params"].max()  # the case the warning is for
    (message,) = [str(w.message) for w in seen if w.category is bs.ExtrapolationWarning]
    assert f"N* {n_star:.3g}" in message
    assert f"params ({chinchilla_runs['params'].min():.3g}-" \
           f"{chinchilla_runs['params'].max():.3g})" in message
    assert {w.filename for w in seen} == {__file__}


def test_a_point_past_the_runs_is_named_and_one_inside_is_not(fake_fit, chinchilla_runs):
    inside = chinchilla_runs.iloc[[10]][["params", "tokens"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fake_fit.predict(inside)
    with pytest.warns(bs.ExtrapolationWarning) as seen:
        fake_fit.predict({"params": [4e8, 1e7], "tokens": [8e9, 1.6e12]})
    messages = [str(w.message) for w in seen]
    assert any(m.startswith("1 of 2 points have tokens_per_param past the runs' range ")
               and m.endswith(": 1.6e+05 (row 1); there the prediction rests on the law's "
                              "form alone") for m in messages), messages
    assert any("1 of 2 points have params past" in m and "1e+07 (row 1)" in m
               for m in messages), messages
    assert {w.filename for w in seen} == {__file__}


def test_a_point_far_from_every_run_jointly_is_named_though_inside_each_range():
    """Small models trained long and large models trained briefly: a large model trained long
    lies inside the runs' range of N, of D and of D/N taken alone, yet two decades from every
    run (as the CS336 answers at 3e17 FLOPs lie from its grid)."""
    from bayescale.model.reach import JOINT_DECADES, point_messages

    runs = bs.prepare(pd.DataFrame({"params": [1e6, 1e8, 1e6], "tokens": [1e10, 1e8, 1e8],
                                    "loss": [3.0, 3.5, 4.0]}))
    points = pd.DataFrame({"params": [1e8, 3e6, 1e7], "tokens": [1e10, 3e9, 1e9]})
    (message,) = point_messages(runs, points)
    assert JOINT_DECADES == 1.0
    assert message.startswith("2 of 3 points lie 1 decade or more from every run's params and "
                              "tokens taken together")
    assert "N 1e+08 with D 1e+10 (2.00 decades; row 0)" in message
    assert "N 1e+07 with D 1e+09 (1.00 decades; row 2)" in message
    assert "row 1" not in message  # 0.52 decades from the run at (1e6, 1e10)
    # a point outside a range is named for that range only, not twice
    (outside,) = point_messages(runs, pd.DataFrame({"params": [1e9], "tokens": [1e10]}))
    assert outside.startswith("1 of 1 points have params past the runs' range")


def test_answers_inside_the_package_do_not_warn_but_the_table_says(fake_fit):
    from bayescale.report.answer import targets_table

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = targets_table(fake_fit, [1e24])
    assert any("N* " in w and "past the runs" in w for w in table.attrs["warnings"])


def _largest_shifted(runs: pd.DataFrame, factor: float) -> tuple[pd.DataFrame, int]:
    """``runs`` with the loss of the top tenth by params multiplied by ``factor``."""
    runs = runs.copy()
    largest = runs["params"] >= runs["params"].quantile(0.9)
    runs.loc[largest, "loss"] *= factor
    return runs, int(largest.sum())


def test_a_heavy_tail_that_sets_aside_the_largest_runs_is_named(chinchilla_fit):
    """The real Chinchilla runs: a few outliers, none of them a kind of run, so no warning.
    The same runs with the largest tenth 10% above the law (25 noise scales at sigma 0.4%):
    the fit's Student-t would read them as broken runs, and the message names them; under
    normal noise the check does not apply."""
    from bayescale.model.noise import misfit_message, set_aside

    model, post = chinchilla_fit.model, chinchilla_fit.posterior
    aside = set_aside(model, post)
    assert aside.shape == (len(model.runs),) and 0 < aside.sum() < 0.1 * aside.size
    assert misfit_message(model, post) is None
    runs, m = _largest_shifted(model.runs, 1.1)
    message = misfit_message(model.with_runs(runs), post)
    assert message is not None and f"sets aside {m} of the {m} runs with the largest params" in message
    normal = bs.ScalingLaw(runs, law="chinchilla", noise="normal", discrepancy="off")
    assert set_aside(normal, post) is None and misfit_message(normal, post) is None


def test_a_fit_whose_heavy_tail_sets_aside_the_largest_runs_warns(chinchilla_runs, tiny):
    runs, m = _largest_shifted(chinchilla_runs, 1.1)
    model = bs.ScalingLaw(runs, law="chinchilla", discrepancy="prior")
    with pytest.warns((bs.MisfitWarning, bs.SamplerWarning)) as seen:
        fit = model.fit(**tiny)
    misfit = [w for w in seen if w.category is bs.MisfitWarning]
    assert len(misfit) == 1 and misfit[0].filename == __file__
    assert f"sets aside {m} of the {m} runs with the largest params" in str(misfit[0].message)
    assert fit.misfit == str(misfit[0].message)  # what the CLI and report.md print
