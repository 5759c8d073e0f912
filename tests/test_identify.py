"""Optima that the runs near the top budget do not bracket are named (no sampling: fake fits)."""

from __future__ import annotations

import arviz as az
import numpy as np

import bayescale as bs
from bayescale.model.identify import _one_sided, unidentified
from conftest import fake_posterior, with_sampled


def _fake_fit(runs):
    spec = bs.ScalingLaw(runs, law="chinchilla", discrepancy="off").spec
    idata = az.from_dict({"posterior": with_sampled(fake_posterior(), spec)})
    return bs.Fit.from_sampler(idata, spec=spec, runs=runs, sampler="fake", seed=0)


def _small_at_the_top(runs):
    """The runs below 1e20 FLOPs, with only models under 3e8 parameters above 2e19 FLOPs
    (Epoch's law puts N* at about 5e8 there)."""
    runs = runs[runs["flops"] < 1e20]
    return runs[(runs["flops"] < 2e19) | (runs["params"] < 3e8)].reset_index(drop=True)


def test_isoflop_profiles_at_the_top_bracket_n_star(chinchilla_runs):
    assert unidentified(_fake_fit(chinchilla_runs)) == []


def test_only_small_models_near_the_top_budget_leave_n_star_unidentified(chinchilla_runs):
    (message,) = unidentified(_fake_fit(_small_at_the_top(chinchilla_runs)))
    assert message.startswith("N* is not identified by the runs near the top budget")
    assert "have params below the law's optimum" in message


def test_one_sided_names_the_side_and_the_edge():
    budgets = np.array([1e20])
    assert _one_sided("N*", "params", np.array([1.0, 3.0]), np.array([2.0, 2.0]), budgets) == []
    (above,) = _one_sided("N*", "params", np.array([3.0, 5.0]), np.array([2.0, 2.0]), budgets)
    assert "above the law's optimum" in above and "smallest 3 against 2" in above
    assert "at 1e+20 FLOPs" in above


def test_targets_table_carries_the_warning(chinchilla_runs):
    from bayescale.report.answer import format_targets, targets_table

    table = targets_table(_fake_fit(_small_at_the_top(chinchilla_runs)), [1e23])
    assert table["warning"].str.startswith("N* is not identified").all()
    assert "WARNING: N* is not identified" in format_targets(table)
    clean = targets_table(_fake_fit(chinchilla_runs), [1e23])
    assert not clean["warning"].str.contains("not identified").any()
    assert "not identified" not in format_targets(clean)
