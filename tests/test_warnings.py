"""Every warning bayescale issues points at the caller's line, however deep it arose."""

from __future__ import annotations

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
    points = pd.DataFrame({"params": [1e9, 7e10], "tokens": [2e10, 1.4e12]})
    table = bs.interval(fake_fit.predict(points), prob=0.9)
    assert list(table.columns[:5]) == ["variable", "point", "params", "tokens", "flops"]
    np.testing.assert_array_equal(table["params"], points["params"])
    np.testing.assert_array_equal(table["tokens"], points["tokens"])
    np.testing.assert_allclose(table["flops"], 6 * points["params"] * points["tokens"])
    assert (table["lower"] < table["median"]).all() and (table["median"] < table["upper"]).all()
