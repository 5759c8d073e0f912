"""Nothing runs that should not: every check that can fail runs before the work, bad tables
are named, and a degenerate answer is never printed as an answer."""

from __future__ import annotations

import warnings
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.data.runs import snap_budgets
from bayescale.inference.diagnostics import MIN_TOTAL_DRAWS
from bayescale.report.answer import format_targets, targets_table
from bayescale.report.cli import main
from conftest import fake_posterior, with_sampled

MODELS = Path(__file__).resolve().parents[1] / "models"
BASE = {"params": [1e8, 2e8, 4e8, 8e8], "tokens": [2e9, 4e9, 8e9, 1.6e10],
        "loss": [3.4, 3.1, 2.9, 2.6]}


class Sampled(Exception):
    """Raised by the stand-in sampler: the checks let the fit through to sampling."""


@pytest.fixture
def no_sampling(monkeypatch):
    """Sampling raises :class:`Sampled`: a check that comes after it shows up as that."""
    def refuse(*args, **kwargs):
        raise Sampled

    monkeypatch.setattr("bayescale.model.family.sample", refuse)


def _one_line(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err.strip()


# 2: checks before sampling --------------------------------------------------------------------
@pytest.mark.parametrize(("draws", "chains", "named"), [
    (20, 1, "draws=20 with chains=1"), (12, 2, "draws=12 with chains=2"),
    (3, 16, "draws=3 per chain"), (99999999999999999, 4, "draws=99999999999999999.*memory"),
    (2**63, 4, "draws must be an integer"),
])
def test_fit_refuses_draws_before_sampling(chinchilla_runs, no_sampling, draws, chains, named):
    model = bs.ScalingLaw(chinchilla_runs, discrepancy="off")
    with pytest.raises(ValueError, match=named):
        model.fit(draws=draws, chains=chains, tune=10, progressbar=False)


@pytest.mark.parametrize(("draws", "chains"), [(13, 2), (MIN_TOTAL_DRAWS, 1), (4, 8), (1000, 4)])
def test_enough_draws_reach_the_sampler(chinchilla_runs, no_sampling, draws, chains):
    model = bs.ScalingLaw(chinchilla_runs, discrepancy="off")
    with pytest.raises(Sampled):
        model.fit(draws=draws, chains=chains, tune=10, progressbar=False)


def test_the_minimum_is_what_psis_needs():
    """PSIS-LOO on fewer than MIN_TOTAL_DRAWS draws fails (the fit's report calls it)."""
    import arviz_stats as azs

    rng = np.random.default_rng(0)
    for n, ok in ((MIN_TOTAL_DRAWS - 1, False), (MIN_TOTAL_DRAWS, True)):
        tree = az.from_dict({"posterior": {"a": rng.normal(size=(1, n))},
                             "log_likelihood": {"y": rng.normal(size=(1, n, 3))}})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if ok:
                azs.loo(tree, var_name="y")
            else:
                with pytest.raises(ValueError, match="n_draws_tail"):
                    azs.loo(tree, var_name="y")


@pytest.mark.parametrize(("spec", "named"), [
    ({"dist": "LogNormal", "mu": -1.2, "sigma": -0.5}, "'alpha'.*sigma=-0.5"),
    ({"dist": "Gamma", "alpha": 2.0, "beta": 0.0}, "'alpha'.*beta=0.0"),
    ({"dist": "HalfNormal", "sigma": -1.0}, "'alpha'.*sigma=-1.0"),
    ({"dist": "Weibull", "alpha": -1.0, "beta": 1.0}, "'alpha'.*alpha=-1.0"),
])
def test_priors_outside_their_support_are_refused_when_built(chinchilla_runs, spec, named):
    with pytest.raises(ValueError, match=named):
        bs.ScalingLaw(chinchilla_runs, priors={"alpha": spec})


@pytest.mark.parametrize(("spec", "named"), [
    ({"dist": "StudentT", "nu": 0.0, "mu": 0.0, "sigma": 1.0}, "nu=0.0"),
    ({"dist": "Uniform", "lower": 1.0, "upper": -1.0}, "lower < upper"),
    ({"dist": "Laplace", "mu": 0.0, "b": -2.0}, "b=-2.0"),
])
def test_real_priors_outside_their_support_are_refused(chinchilla_runs, spec, named):
    with pytest.raises(ValueError, match=f"'log_E'.*{named}"):
        bs.ScalingLaw(chinchilla_runs, priors={"log_E": spec})


@pytest.mark.parametrize(("extra", "named"), [
    (["--draws", "20", "--chains", "1"], "chains=1"),
    (["--draws", "12", "--chains", "2"], "draws=12"),
    (["--draws", "99999999999999999", "--chains", "2"], "draws=99999999999999999"),
    (["--draws", "50", "--chains", "1"], "chains=1"),
])
def test_the_cli_refuses_draws_before_writing_anything(tmp_path, capsys, no_sampling, extra,
                                                       named):
    out = tmp_path / "out"
    line = _one_line(["fit", str(MODELS / "chinchilla.toml"), "--out", str(out), *extra,
                      "--no-progress"], capsys)
    assert named in line
    assert not out.exists()


def test_the_cli_refuses_a_prior_outside_its_support(tmp_path, capsys, no_sampling):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[data]\ndataset = "chinchilla"\n[priors]\n'
                      'alpha = { dist = "LogNormal", mu = -1.2, sigma = -0.5 }\n')
    line = _one_line(["fit", str(recipe), "--out", str(tmp_path / "x")], capsys)
    assert "'alpha'" in line and "sigma=-0.5" in line


# 3: prepare names what is wrong ------------------------------------------------------------------
def test_repeated_column_names():
    df = pd.concat([pd.DataFrame(BASE), pd.DataFrame({"loss": [1.0, 2.0, 3.0, 4.0]})], axis=1)
    with pytest.raises(ValueError, match=r"repeated column name\(s\) \['loss'\]"):
        bs.prepare(df)


def test_multiindex_columns():
    df = pd.DataFrame(BASE)
    df.columns = pd.MultiIndex.from_tuples([("a", "params"), ("a", "tokens"), ("b", "loss")])
    with pytest.raises(TypeError, match="MultiIndex columns"):
        bs.prepare(df)


def test_an_integer_too_large_for_a_float():
    df = pd.DataFrame(BASE | {"params": pd.Series([1e8, 10**400, 4e8, 8e8], dtype=object)})
    with pytest.raises(ValueError, match=r"column 'params' \(params\) .* 401 digits at row 1"):
        bs.prepare(df)


def test_complex_columns_are_refused():
    df = pd.DataFrame(BASE | {"tokens": np.array(BASE["tokens"]) + 1j})
    with pytest.raises(TypeError, match=r"column 'tokens' \(tokens\) must hold real numbers"):
        bs.prepare(df)


def test_flops_far_from_6nd_are_warned_about_by_run():
    flops = 6 * np.array(BASE["params"]) * np.array(BASE["tokens"])
    flops[2] *= 1000
    with pytest.warns(bs.DataWarning, match=r"more than a factor 2 in 1 run\(s\): 2 \(1e\+03x\)"):
        bs.prepare(pd.DataFrame(BASE | {"flops": flops}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bs.prepare(pd.DataFrame(BASE | {"flops": flops / [1, 1, 1000, 1] * 1.5}))


def test_budgets_equal_up_to_rounding_are_one_budget():
    flops = [1e20, 1e20 * (1 + 1e-12), 4e20, 4e20 * (1 - 1e-12)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.DataWarning)
        runs = bs.prepare(pd.DataFrame({"params": BASE["params"], "flops": flops,
                                        "loss": BASE["loss"]}))
    assert runs["flops"].nunique() == 2
    assert snap_budgets(np.array([1.0, 1.0 + 2e-9])).tolist() == [1.0, 1.0 + 2e-9]


def test_a_derived_flops_of_inf_is_refused():
    df = pd.DataFrame(BASE | {"params": [1e200, 2e8, 4e8, 8e8], "tokens": [1e200, 4e9, 8e9,
                                                                           1.6e10]})
    with pytest.raises(ValueError, match=r"derived column 'flops' .* inf at row 0"):
        bs.prepare(df)


# 4: degenerate answers ----------------------------------------------------------------------------
def test_all_equal_losses_are_refused(chinchilla_runs):
    runs = chinchilla_runs.assign(loss=3.0)
    with pytest.raises(ValueError, match=r"column 'loss' \(loss\) takes a single value"):
        bs.ScalingLaw(runs)
    with pytest.raises(ValueError, match="'loss'"):
        bs.IsoFlop(bs.datasets.load("cs336_isoflops").assign(loss=2.0))


@pytest.mark.parametrize("budget", [5e-324, 0.5, 1e-300])
def test_budgets_below_one_flop_are_refused(fake_fit, budget):
    with pytest.raises(ValueError, match=rf"budgets must hold at least 1 FLOP, got {budget!r}"):
        fake_fit.optimal([1e24, budget])


@pytest.mark.parametrize(("points", "column"), [
    ({"params": [7e10, 1e-300], "tokens": [1.4e12, 1e-300]}, "params"),
    ({"params": [7e10, 1e8], "tokens": [1.4e12, 1e-300]}, "tokens"),
    ({"flops": [1e24, 0.5]}, "flops"),
])
def test_points_below_one_are_refused(fake_fit, points, column):
    with pytest.raises(ValueError, match=rf"points column '{column}' must be at least 1; row 1"):
        fake_fit.predict(points)


@pytest.fixture(scope="module")
def degenerate_fit(chinchilla_runs):
    """A fake posterior whose draws of alpha + beta near 0 put N*, D* out of float range."""
    spec = bs.ScalingLaw(chinchilla_runs, law="chinchilla", discrepancy="off").spec
    draws = fake_posterior()
    draws["alpha"][:, :30] = draws["beta"][:, :30] = 1e-3
    idata = az.from_dict({"posterior": with_sampled(draws, spec)})
    return bs.Fit.from_sampler(idata, spec=spec, runs=chinchilla_runs, sampler="fake", seed=0)


def test_non_finite_optimum_draws_are_warned_with_their_fraction(degenerate_fit):
    with pytest.warns(bs.ExtrapolationWarning), pytest.warns(bs.DegenerateWarning) as record:
        degenerate_fit.optimal([1e24])
    messages = [str(w.message) for w in record]
    assert "tokens_opt at budget 1e+24 FLOPs: 60.0% of the 100 posterior draws are not " \
           "finite" in " | ".join(messages)
    assert not any(m.startswith("params_opt") for m in messages)  # N* underflows, finitely


def test_a_degenerate_answer_reads_not_finite(degenerate_fit):
    with pytest.warns(bs.DegenerateWarning):
        text = format_targets(targets_table(degenerate_fit, [1e24]))
    assert "not finite" in text
    assert "nan" not in text.lower().replace("not finite", "") and "inf" not in text.replace(
        "not finite", "")


def test_the_cli_prints_a_warning_line_not_nan(degenerate_fit, tmp_path, capsys):
    path = tmp_path / "fit.nc"
    degenerate_fit.save(path)
    assert main(["predict", str(path), "--budgets", "1e24"]) == 0
    printed = capsys.readouterr().out
    assert "WARNING: tokens_opt at budget 1e+24 FLOPs: 60.0%" in printed
    answer = "\n".join(line for line in printed.split("interval]:")[1].splitlines()
                       if not line.startswith("WARNING:")).replace("not finite", "")
    assert "D* (tokens)" in answer
    assert "nan" not in answer.lower() and "inf" not in answer
    line = _one_line(["predict", str(path), "--budgets", "5e-324"], capsys)
    assert "at least 1 FLOP" in line and "5e-324" in line


# 5: the output path is checked first ------------------------------------------------------------
def test_predict_out_in_a_missing_folder_exits_2_before_any_work(fake_fit, tmp_path, capsys):
    path = tmp_path / "fit.nc"
    fake_fit.save(path)
    (tmp_path / "p.csv").write_text("params,tokens\n7e10,1.4e12\n")
    missing = tmp_path / "nonexistent" / "dir" / "x.csv"
    line = _one_line(["predict", str(path), "--points", str(tmp_path / "p.csv"), "--out",
                      str(missing)], capsys)
    assert str(missing) in line and "does not exist" in line
    # before any work: even before the posterior is read
    line = _one_line(["predict", str(tmp_path / "none.nc"), "--points", "p.csv", "--out",
                      str(missing)], capsys)
    assert str(missing.parent) in line
    line = _one_line(["predict", str(path), "--points", str(tmp_path / "p.csv"), "--out",
                      str(tmp_path)], capsys)
    assert "is a folder" in line
