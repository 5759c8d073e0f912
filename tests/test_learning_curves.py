"""The learning-curve family: its table, its schedule term, recovery of a known truth.

The recovery test simulates 9 runs (3 sizes x 3 lengths, cosine schedules to 0.1 x peak,
40 checkpoints each, fitted from 30% of each run on, 12 per run) from a known chinchilla law
plus ``h (c0 + c1 z) + q z^2``, ``z = log(T/N) - log 20`` (T the final tokens), with c0 =
0.03, c1 = 0.01, q = 0.004, run offsets of sd 0.005 and Normal noise 0.002 on log loss. One
run is cut at half its tokens (its schedule's end known). The data and sampler seeds are fixed; the 90% intervals of c0, c1 and q, and that of the cut
run's final loss, must hold the truth, and the law with the term must beat the law without it
on the checkpoints before the decay (their median absolute error).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.model.curves import RIDGE_PARAMS

TRUTH = {"E": 1.8, "A": 400.0, "alpha": 0.34, "B": 1500.0, "beta": 0.3}
ANNEAL, SLOPE, LENGTH = 0.03, 0.01, 0.004


def _lr(tokens, final):
    return 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * np.clip(tokens / final, 0, 1)))


def _simulated(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for n in (2e7, 6e7, 2e8):
        for mult in (5, 20, 80):
            final = mult * n
            offset = rng.normal(0, 0.005)
            for t in np.geomspace(0.05 * final, final, 40):
                law = (TRUTH["E"] + TRUTH["A"] / n ** TRUTH["alpha"]
                       + TRUTH["B"] / t ** TRUTH["beta"])
                left = _lr(t, final) - 0.1
                ratio = np.log(final / n) - np.log(20.0)
                log_loss = (np.log(law) + left * (ANNEAL + SLOPE * ratio) + LENGTH * ratio**2
                            + offset + rng.normal(0, 0.002))
                rows.append({"params": n, "tokens": t, "loss": float(np.exp(log_loss)),
                             "run": f"{n:.0e}-{mult}x", "lr": _lr(t, final) * 3e-3,
                             "final_T": final, "lr_end": 3e-4,
                             "true_final": law * np.exp(LENGTH * ratio**2 + offset)})
    return bs.prepare(pd.DataFrame(rows))


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    return _simulated()


@pytest.fixture(scope="module")
def curves_fit(simulated):
    """The recovery fit: the run 2e+08-80x cut at half its tokens."""
    cut = simulated[(simulated["run"] != "2e+08-80x")
                    | (simulated["tokens"] <= 0.5 * simulated["final_T"])]
    table = bs.learning_curves(cut, final_tokens="final_T", final_lr="lr_end")
    model = bs.LearningCurves(table, discrepancy="off")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplerWarning)  # tiny fits: low ESS by design
        return model.fit(draws=300, tune=400, chains=2, random_seed=5, progressbar=False)


# -- the table ---------------------------------------------------------------------------------
def test_learning_curves_table_on_the_olmo_ladder():
    curves = bs.datasets.load("olmo_ladder_curves")
    table = bs.learning_curves(curves, per_run=8)
    assert table["curve"].nunique() == 30
    assert table.groupby("curve").size().max() <= 9  # 8 evenly spaced, plus the last
    assert table["fraction"].min() >= 0.3 - 1e-9
    ends = table.sort_values("tokens").groupby("curve").tail(1)
    assert np.allclose(ends["fraction"], 1.0) and np.allclose(ends["lr_left"], 0.0)
    # at 30% of a cosine schedule to 0.1 x peak, 0.9 * (1 + cos(0.3 pi)) / 2 is left
    first = table.sort_values("tokens").groupby("curve").head(1)
    expected = 0.9 * 0.5 * (1 + np.cos(np.pi * (first["tokens"] - first["params"])
                                       / (first["final_tokens"] - first["params"])))
    # (within 1e-3: the peak is the largest rate at a logged checkpoint, not the exact peak)
    assert np.allclose(first["lr_left"], expected, atol=1e-3)


def test_olmo_ladder_schedule_numbers():
    """The ladder's configuration: peak 0.0047 (N/108M)^-1/3 / 4, warmup N, end 0.1 x peak."""
    n = 190354176.0
    peak = 9.727e-4  # 0.0047 * 1.7625^(-1/3) / 4, by hand
    lr = bs.datasets.olmo_ladder_lr(n, np.array([n / 2, n, 40 * n]), 40 * n)
    assert lr == pytest.approx([peak / 2, peak, 0.1 * peak], rel=1e-3)


@pytest.mark.parametrize("change, match", [
    (lambda t: t.drop(columns="lr"), "'lr'"),
    (lambda t: t.assign(lr=-1.0), "'lr'"),
    (lambda t: t.assign(lr=np.nan), "'lr'"),
    (lambda t: t.assign(lr="fast"), "'lr'"),
])
def test_learning_curves_refuses_bad_tables(simulated, change, match):
    with pytest.raises(ValueError, match=match):
        bs.learning_curves(change(simulated.copy()))


def test_an_unfinished_run_needs_its_final_lr(simulated):
    cut = simulated[simulated["tokens"] < 0.9 * simulated["final_T"]]
    with pytest.raises(ValueError, match="final_lr"):
        bs.learning_curves(cut, final_tokens="final_T")
    table = bs.learning_curves(cut, final_tokens="final_T", final_lr="lr_end")
    assert float(table["lr_left"].min()) > 0.0  # no run has reached the end of its schedule


def test_learning_curves_refuses_bad_arguments(simulated):
    with pytest.raises(ValueError, match="per_run"):
        bs.learning_curves(simulated, per_run=1)
    with pytest.raises(ValueError, match="final_lr"):
        bs.learning_curves(simulated, final_lr=-1.0)
    with pytest.raises(TypeError, match="DataFrame"):
        bs.learning_curves(simulated.to_dict())


def test_learning_curves_family_refuses_bad_input(simulated):
    table = bs.learning_curves(simulated, final_tokens="final_T", final_lr="lr_end")
    with pytest.raises(ValueError, match="lr_left"):
        bs.LearningCurves(table.drop(columns="lr_left"))
    with pytest.raises(ValueError, match="curve"):
        bs.LearningCurves(table, offsets=["curve"])
    with pytest.raises(ValueError, match="params and tokens"):
        bs.LearningCurves(table, law="flops")
    with pytest.raises(TypeError, match="DataFrame"):
        bs.LearningCurves([1, 2])


# -- the fit -----------------------------------------------------------------------------------
def test_schedule_term_and_a_cut_run_are_recovered(curves_fit, simulated):
    summary = curves_fit.summary(prob=0.9)
    # the truth's c0 at the model's reference length m (the checkpoints' mean log T/N)
    at_reference = ANNEAL + SLOPE * (curves_fit.model.log_tpp_reference - np.log(20.0))
    for name, truth in (("anneal", at_reference), ("anneal_slope", SLOPE),
                        ("length_curvature", LENGTH)):
        assert summary.loc[name, "lower"] <= truth <= summary.loc[name, "upper"], name
    assert set(RIDGE_PARAMS) <= set(curves_fit.posterior.data_vars)
    cut = simulated[simulated["run"] == "2e+08-80x"].tail(1)
    out = bs.final_losses(curves_fit, cut.assign(final_tokens=cut["final_T"], curve=cut["run"]),
                          random_seed=1)
    assert bool(out["seen"].iloc[0])
    # the cut run's noisy final loss (its last simulated checkpoint, never fitted)
    final = cut["loss"].iloc[0]
    assert out["lower"].iloc[0] <= final <= out["upper"].iloc[0]
    assert out["decades_tokens"].iloc[0] == pytest.approx(np.log10(2.0), abs=0.05)


def test_schedule_term_explains_checkpoints_before_the_decay(curves_fit):
    runs = curves_fit.runs
    early = runs[runs["lr_left"] > 0.3]
    with_term = curves_fit.predict(early, kind="mean")["loss"].median(("chain", "draw"))
    without = curves_fit.predict(early.drop(columns="lr_left"), kind="mean")["loss"].median(
        ("chain", "draw"))
    err_with = np.median(np.abs(np.log(with_term.values / early["loss"].to_numpy())))
    err_without = np.median(np.abs(np.log(without.values / early["loss"].to_numpy())))
    assert err_with < 0.005 < err_without


def test_learning_curves_fit_round_trips(curves_fit, tmp_path):
    path = tmp_path / "curves.nc"
    curves_fit.save(path)
    again = bs.load(path)
    assert again.spec["model"] == "learning_curves"
    points = {"params": [1e8], "tokens": [1e9]}  # inside the runs: no ExtrapolationWarning
    a = curves_fit.predict(points)["loss"].values
    b = again.predict(points)["loss"].values
    assert np.allclose(a, b)


def test_plot_curves_draws_each_runs_fitted_curve(curves_fit):
    from bayescale.report import plots

    table = curves_fit.runs
    ax = plots.plot_curves(curves_fit, table)
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert len(dashed) == table["curve"].nunique()
    # each dashed line follows its run's checkpoints within the noise (0.2%) and the offsets
    for line, (_, one) in zip(dashed, table.sort_values(["run", "tokens"]).groupby("run",
                                                                                  sort=False)):
        assert np.allclose(line.get_ydata(), one["loss"], rtol=0.01)


def test_run_offsets_are_not_hyperparameters(curves_fit):
    """Reports, recommendations and designs rank hyperparameters, not each run's offset."""
    assert curves_fit.hyperparameter_offsets == []
    assert "curve" in curves_fit.spec["offsets"]  # the model still has the per-run offsets
    with pytest.warns(bs.ExtrapolationWarning):  # D* at 1e20: past the runs' tokens
        recommendation = curves_fit.recommend(1e20)
    assert "curve" not in set(recommendation.levels["column"])
