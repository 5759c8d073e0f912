"""Stacking: weights that maximise the mixture's log score, and answers drawn from the mixture."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.analysis.compare import stacking_weights
from bayescale.inference.trees import set_groups
from bayescale.report.cli import main


def test_stacking_weights_maximise_the_log_score_of_the_mixture():
    rng = np.random.default_rng(0)
    lpd = rng.normal(-1, 0.5, size=(3, 40))
    lpd[2] -= 3  # a law that predicts every run worse gets no weight
    w = stacking_weights(lpd)
    assert w.sum() == pytest.approx(1) and w[2] < 1e-3

    def score(weights):
        return np.log(np.exp(lpd).T @ weights).sum()

    for other in rng.dirichlet(np.ones(3), size=200):  # no point of the simplex does better
        assert score(w) >= score(other) - 1e-6


def test_a_stack_of_one_fit_twice_is_that_fit(fake_fit):
    with pytest.warns(bs.ParetoKWarning):  # the fake posterior is no posterior of the runs
        stacked = bs.stack({"a": fake_fit, "b": fake_fit})
    assert stacked.weights.sum() == pytest.approx(1)
    mixed = stacked.optimal([1e24], random_seed=0)["params_opt"].values.ravel()
    with pytest.warns(bs.ExtrapolationWarning):  # N* at 1e24: past the runs' sizes
        alone = fake_fit.optimal([1e24])["params_opt"].values.ravel()
    assert mixed.size == alone.size and np.isin(mixed, alone).all()  # the fit's own draws


def _exact_law(fit: bs.Fit) -> bs.Fit:
    """A copy of ``fit`` without its discrepancy draws (the law taken as exact)."""
    tree = fit.idata.copy(deep=True)
    set_groups(tree, posterior=bs.discrepancy.without_discrepancy(fit.posterior))
    return bs.Fit(tree, fit.spec)


def test_the_mixture_draws_each_law_by_its_weight(chinchilla_fit, fake_fit):
    chinchilla_fit = _exact_law(chinchilla_fit)  # separated from the fake fit's draws
    stacked = bs.Stack({"real": chinchilla_fit, "fake": fake_fit},
                       pd.Series({"real": 0.25, "fake": 0.75}), None)
    loss = stacked.loss_at([1e24], kind="mean", random_seed=0)["loss"].values.ravel()
    with pytest.warns(bs.ExtrapolationWarning):  # N* at 1e24: past the runs' sizes
        real = chinchilla_fit.optimal([1e24])["loss_opt"].values.ravel()
        fake = fake_fit.optimal([1e24])["loss_opt"].values.ravel()
    cut = (real.max() + fake.min()) / 2 if real.max() < fake.min() else None
    if cut is None:
        cut = (fake.max() + real.min()) / 2
        share_real = np.mean(loss > cut)
    else:
        share_real = np.mean(loss < cut)
    assert share_real == pytest.approx(0.25, abs=0.07)
    # each mixture draw is one law's whole answer: N* D* = C / 6 draw by draw
    opt = stacked.optimal([1e24], random_seed=0)
    np.testing.assert_allclose(6 * opt["params_opt"] * opt["tokens_opt"], 1e24, rtol=1e-9)
    np.testing.assert_allclose(opt["tokens_per_param"], opt["tokens_opt"] / opt["params_opt"],
                               rtol=1e-9)


def test_cli_compare_stack_prints_the_stacked_answer(tmp_path, capsys, chinchilla_fit):
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        chinchilla_fit.save(tmp_path / name / "posterior.nc")
    assert main(["compare", str(tmp_path / "first"), str(tmp_path / "second"), "--stack",
                 "--budgets", "1e24"]) == 0
    printed = capsys.readouterr().out
    assert "Stacked answer" in printed and "N* (params)" in printed and "C = 1e+24" in printed
    assert main(["compare", str(tmp_path / "first"), "--stack"]) == 2


# -- stacking on the fits' own backtests (method="backtest": no refit) ---------------------------
@pytest.fixture(scope="module")
def backtested(chinchilla_runs, tiny):
    """The Chinchilla law and the law with a size-dependent data exponent, each fitted with
    its backtests (discrepancy="backtest") on the Chinchilla runs up to 1.3e21 FLOPs."""
    runs = chinchilla_runs[chinchilla_runs["flops"] <= 1.3e21]
    out = {}
    for law in ("chinchilla", "chinchilla_sized"):
        with pytest.warns(bs.SamplerWarning):
            out[law] = bs.ScalingLaw(runs, law=law, discrepancy="backtest").fit(**tiny)
    return out


def test_backtest_stacking_scores_the_fits_own_backtests(backtested):
    table = bs.compare(backtested, method="backtest")
    assert list(table.columns) == list(bs.analysis.compare.BACKTEST_COLUMNS)
    assert table["weight"].sum() == pytest.approx(1)
    for name, fit in backtested.items():
        held = fit.idata["backtests"].to_dataset().to_dataframe()
        # the elpd is the sum of the held-out runs' densities, each a mixture over the draws
        assert table.loc[name, "elpd"] == pytest.approx(held["log_density"].sum())
        assert table.loc[name, "n_holdout"] == len(held) > 0
    dens = np.stack([fit.idata["backtests"]["log_density"].values
                     for fit in backtested.values()])
    np.testing.assert_allclose(table.loc[list(backtested), "weight"], stacking_weights(dens),
                               atol=1e-6)
    stacked = bs.stack(backtested, method="backtest")
    assert stacked.weights.to_dict() == pytest.approx(table["weight"].to_dict())
    loss = stacked.loss_at([1e24], random_seed=0)["loss"].values
    assert np.isfinite(loss).all()


def test_backtest_stacking_needs_backtests_of_the_same_runs(backtested):
    fit = backtested["chinchilla"]
    tree = fit.idata.copy(deep=True)
    del tree["backtests"]  # as a fit with discrepancy="prior" has none
    with pytest.raises(ValueError, match="fit 'none' has none: fit it with discrepancy="):
        bs.compare({"a": fit, "none": bs.Fit(tree, fit.spec)}, method="backtest")
    with pytest.raises(ValueError, match="method='backtest' does not refit"):
        bs.compare(backtested, method="backtest", holdout=0.25)


def test_cli_compare_by_backtests_reads_them_from_the_saved_fits(backtested, tmp_path, capsys):
    paths = []
    for name, fit in backtested.items():
        paths.append(tmp_path / f"{name}.nc")
        fit.save(paths[-1])
    assert main(["compare", *map(str, paths), "--method", "backtest", "--stack",
                 "--budgets", "1e23"]) == 0
    printed = capsys.readouterr().out
    expected = bs.compare(backtested, method="backtest")
    assert "BACKTEST comparison" in printed and "Stacked answer" in printed
    for name, weight in expected["weight"].items():  # the saved backtests give the same weights
        assert f"{name} {weight:.3g}" in printed
    assert main(["compare", *map(str, paths), "--method", "backtest", "--holdout", "0.25"]) == 2
