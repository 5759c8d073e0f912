"""Kaplan's views (plots.plot_params, plots.plot_curves) on a fake posterior: no sampling.

The overlaid law is checked against the chinchilla formula evaluated here, per draw, from the
fake posterior's parameters.
"""

from __future__ import annotations

import arviz as az
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import bayescale as bs  # noqa: E402
from bayescale.report import plots  # noqa: E402
from conftest import with_sampled  # noqa: E402


def _formula_median(fit: bs.Fit, params, tokens) -> np.ndarray:
    post = {k: fit.posterior[k].values.reshape(-1, 1) for k in ("E", "A", "B", "alpha", "beta")}
    loss = (post["E"] + post["A"] * np.asarray(params) ** -post["alpha"]
            + post["B"] * np.asarray(tokens) ** -post["beta"])
    return np.median(loss, axis=0)


@pytest.fixture(scope="module")
def curves() -> pd.DataFrame:
    """Two sizes x two runs, 12 checkpoints each, 1000 tokens per step."""
    rows = []
    for params in (1e8, 4e8):
        for length in (1e9, 4e9):
            for step in np.linspace(length / 12, length, 12) / 1000:
                tokens = step * 1000
                rows.append({"params": params, "tokens": tokens, "step": step,
                             "loss": 1.8 + 480 * params ** -0.35 + 2000 * tokens ** -0.37
                             + 0.05 * (1 - tokens / length),
                             "run": f"{params:g}-{length:g}"})
    return bs.prepare(pd.DataFrame(rows))


def test_plot_params_axes_and_png(fake_fit, tmp_path):
    ax = plots.plot_params(fake_fit, levels=4)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "parameters" in ax.get_xlabel() and "loss" in ax.get_ylabel()
    assert "FLOPs" in ax.figure.axes[-1].get_ylabel()  # the colorbar
    assert len(ax.get_lines()) == 4
    assert ax.collections[-1].get_offsets().shape[0] == len(fake_fit.runs)
    ax.figure.savefig(tmp_path / "params.png")
    assert (tmp_path / "params.png").stat().st_size > 10_000
    plt.close(ax.figure)


def test_plot_params_curves_are_the_law_at_fixed_compute(fake_fit):
    runs = fake_fit.runs
    ax = plots.plot_params(fake_fit, runs, levels=2)
    compute = 6 * runs["params"] * runs["tokens"]
    for line, budget in zip(ax.get_lines(), (compute.min(), compute.max())):
        n, loss = line.get_data()
        np.testing.assert_allclose(loss, _formula_median(fake_fit, n, budget / (6 * n)),
                                   rtol=1e-10)
    plt.close(ax.figure)


def test_plot_params_draws_the_runs_it_is_given(fake_fit):
    some = fake_fit.runs.iloc[:7]
    ax = plots.plot_params(fake_fit, some)
    assert ax.collections[-1].get_offsets().shape[0] == 7
    plt.close(ax.figure)


def test_plot_curves_one_line_per_run_and_the_law_per_size(fake_fit, curves, tmp_path):
    ax = plots.plot_curves(fake_fit, curves)
    solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(solid) == 4 and len(dashed) == 2
    for line, params in zip(dashed, (1e8, 4e8)):
        tokens, loss = line.get_data()
        assert tokens.min() == pytest.approx(1e9 / 12) and tokens.max() == pytest.approx(4e9)
        np.testing.assert_allclose(loss, _formula_median(fake_fit, params, tokens), rtol=1e-10)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "tokens" in ax.get_xlabel() and "parameters" in ax.figure.axes[-1].get_ylabel()
    ax.figure.savefig(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    plt.close(ax.figure)


def test_plot_curves_against_steps(fake_fit, curves):
    ax = plots.plot_curves(fake_fit, curves, x="step")
    assert "step" in ax.get_xlabel()
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    steps, loss = dashed[0].get_data()
    np.testing.assert_allclose(loss, _formula_median(fake_fit, 1e8, steps * 1000), rtol=1e-10)
    plt.close(ax.figure)


def test_kaplan_views_refuse_bad_input(fake_fit, curves, chinchilla_runs):
    with pytest.raises(TypeError, match="fit must be a bayescale.Fit, got str"):
        plots.plot_params("fit")
    with pytest.raises(ValueError, match="prob must be a number strictly between 0 and 1"):
        plots.plot_curves(fake_fit, curves, prob=90)
    with pytest.raises(ValueError, match=r"this view needs column 'wallclock', which the run table lacks"):
        plots.plot_curves(fake_fit, curves, x="wallclock")
    with pytest.raises(TypeError, match="runs must be a pandas DataFrame, got list"):
        plots.plot_curves(fake_fit, [1, 2])
    with pytest.raises(ValueError, match="levels must be a positive integer, got 0"):
        plots.plot_params(fake_fit, levels=0)
    spec = bs.ScalingLaw(chinchilla_runs, law="flops").spec
    draws = {"E": np.ones((1, 5)), "A": np.ones((1, 5)), "alpha": np.ones((1, 5)) / 10,
             "sigma": np.ones((1, 5)) / 100, "nu": np.ones((1, 5))}
    idata = az.from_dict({"posterior": with_sampled(draws, spec)})
    flops_fit = bs.Fit.from_sampler(idata, spec=spec, runs=chinchilla_runs, sampler="fake", seed=0)
    with pytest.raises(ValueError, match="needs a law in N and D.*'flops'"):
        plots.plot_params(flops_fit)


def test_plot_law_has_a_top_axis_in_decades_past_the_largest_run(fake_fit):
    ax = plots.plot_law(fake_fit, [5.88e23])
    reach = [child for child in ax.child_axes
             if child.get_xlabel() == "decades past the largest run"]
    assert len(reach) == 1
    ticks = reach[0].get_xticks()
    labels = [t.get_text() for t in reach[0].get_xticklabels()]
    top = fake_fit.runs["flops"].max()
    assert labels[list(np.round(np.log10(ticks / top))).index(0)] == "0"
    assert labels[list(np.round(np.log10(ticks / top))).index(2)] == "+2"
    plt.close(ax.figure)


# -- layout: no text over other text ------------------------------------------------------------
def _text_clashes(fig) -> list[str]:
    """Each title, the suptitle and the figure legends whose rendered extent (matplotlib's
    tight bbox) overlaps another axes' tight bbox (its ticks, labels, title) or another text."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    texts = [(f"title {ax.get_title()!r}", ax.title.get_window_extent(renderer), ax)
             for ax in axes if ax.get_title()]
    if fig._suptitle is not None:
        texts.append(("suptitle", fig._suptitle.get_window_extent(renderer), None))
    texts += [("figure legend", legend.get_window_extent(renderer), None)
              for legend in fig.legends]
    clashes = []
    for name, box, owner in texts:
        clashes += [f"{name} overlaps the axes titled {ax.get_title()!r}" for ax in axes
                    if ax is not owner and box.overlaps(ax.get_tightbbox(renderer))]
        clashes += [f"{name} overlaps {other}" for other, other_box, other_owner in texts
                    if other != name and (owner is None or other_owner is not owner)
                    and box.overlaps(other_box)]
    return clashes


def test_ranks_show_every_scalar_parameter_without_overlapping_text(fake_fit):
    fig = plots.plot_ranks(fake_fit)
    reported = [v for v, da in fake_fit.model.summary_variables(fake_fit.posterior).items()
                if da.ndim == 2]
    titled = [ax.get_title().split()[0] for ax in fig.axes if ax.get_title()]
    assert titled == reported and {"sigma", "nu"} <= set(titled)
    assert all(ax.get_ylabel() == "draws per bin" for ax in fig.axes[::3])
    assert [t.get_text() for t in fig.legends[0].get_texts()][-2:] == ["chain 0", "chain 1"]
    assert _text_clashes(fig) == []
    plt.close(fig)


def test_the_layout_check_sees_a_title_on_the_row_above():
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(3, 2.2))
    top.set_xlabel("a long label\nover two lines")
    bottom.set_title("a title\nover\nthree lines")
    assert _text_clashes(fig)
    plt.close(fig)


@pytest.mark.parametrize("draw", [
    lambda fit: plots.plot_law(fit, [1e24], prob=0.9).figure,
    lambda fit: plots.plot_optimal(fit, [1e24], prob=0.9).figure,
], ids=["law", "optimal"])
def test_figures_have_no_overlapping_text(fake_fit, draw):
    fig = draw(fake_fit)
    assert _text_clashes(fig) == []
    plt.close(fig)


def test_plot_law_keeps_its_legend_off_the_curves_and_tells_the_bands_apart(fake_fit):
    ax = plots.plot_law(fake_fit, [5.88e23, 1e24], prob=0.9)
    ax.figure.canvas.draw()
    renderer = ax.figure.canvas.get_renderer()
    legend = ax.get_legend()
    assert not legend.get_window_extent(renderer).overlaps(ax.patch.get_window_extent(renderer))
    labels = [t.get_text() for t in legend.get_texts()]
    assert "90% interval of a new run's loss" in labels and "90% interval of the mean loss" in labels
    plt.close(ax.figure)


def test_checks_and_ranks_of_a_real_fit_have_no_overlapping_text(chinchilla_fit):
    for fig in (plots.plot_checks(chinchilla_fit), plots.plot_ranks(chinchilla_fit)):
        assert _text_clashes(fig) == []
        for ax in fig.axes:  # legends below the axes, off the curves
            legend = ax.get_legend()
            if legend is not None and ax.get_title().startswith("LOO-PIT"):
                renderer = fig.canvas.get_renderer()
                assert not legend.get_window_extent(renderer).overlaps(
                    ax.patch.get_window_extent(renderer))
        plt.close(fig)


def test_plot_optimal_marks_the_runs_own_profile_minima(chinchilla_fit):
    """N* answers follow the runs' isoFLOP minima: the figure shows them, one marker each."""
    minima = chinchilla_fit.model.profile_minima(chinchilla_fit.posterior)
    assert len(minima) >= 3
    ax = plots.plot_optimal(chinchilla_fit, [1e24], prob=0.9)
    label = "N* of the runs' own isoFLOP profiles"
    marked = [c for c in ax.collections if c.get_label() == label]
    assert len(marked) == 1 and len(marked[0].get_offsets()) == len(minima)
    np.testing.assert_allclose(np.asarray(marked[0].get_offsets())[:, 1], minima["params_opt"])
    plt.close(ax.figure)
