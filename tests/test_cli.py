"""The `bayescale` command: every recipe runs; bad recipes and paths exit 2 with one line."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.report.cli import main
from bayescale.report.folders import OUTPUTS
from bayescale.report.recipe import Recipe

MODELS = Path(__file__).resolve().parents[1] / "models"
TINY = ["--draws", "100", "--tune", "100", "--chains", "2", "--seed", "3", "--no-progress"]


@pytest.mark.parametrize("recipe", sorted(MODELS.glob("*.toml")), ids=lambda p: p.stem)
def test_every_recipe_runs(recipe, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["fit", str(recipe), "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "Parameters" in printed and "Sampler diagnostics" in printed
    for name in ("posterior.nc", "summary.csv", "targets.csv", "report.md", "ranks.png"):
        assert (out / name).stat().st_size > 0, name
    # every file written is one that --force guards, and nothing is left beside the folder
    assert {p.name for p in out.iterdir()} <= OUTPUTS
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    fit = bs.load(out / "posterior.nc")
    assert (fit.posterior.sizes["chain"], fit.posterior.sizes["draw"]) == (2, 100)
    report = (out / "report.md").read_text()
    assert "Sampler diagnostics" in report
    figures = re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", report)
    main_figure = "isoflop.png" if "isoflop" in recipe.read_text() else "law.png"
    assert main_figure in figures and "ranks.png" in figures
    for name in figures:  # every figure the report links exists and is a PNG
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    # tiny fits cannot reach ESS 400: the CLI must say so, not hide it
    assert "WARNING: bulk ESS" in printed
    targets = pd.read_csv(out / "targets.csv")
    for column in (c for c in targets.columns if c.endswith("_opt") and f"{c}_lower" in targets):
        if column not in ("loss_opt", "params_opt", "tokens_opt"):  # a hyperparameter's optimum
            assert f"optimum of {column[:-4]}" in printed, column
    if "[design]" in recipe.read_text():  # the next runs, within the recipe's budget
        plan = pd.read_csv(out / "design.csv")
        assert "The next runs:" in printed and 0 < len(plan)
        assert plan["total_flops"].iloc[-1] <= Recipe.read(recipe).design["budget"]
        assert (out / "design.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        section = report.split("## The next runs")[1]  # the same runs as design.csv
        assert f"{len(plan)} runs, {plan['total_flops'].iloc[-1]:.4g} FLOPs" in section
    if "[stack]" in recipe.read_text():  # the mixture of the laws, and each law's posterior
        stack = Recipe.read(recipe).stack
        stacked = pd.read_csv(out / "stacked.csv")
        weights = stacked[[f"weight_{law}" for law in [fit.model.law.name, *stack["laws"]]]]
        assert np.allclose(weights.sum(axis=1), 1.0)
        assert list(stacked["budget"]) == Recipe.read(recipe).budgets
        assert (stacked["loss_lower"] < stacked["loss"]).all()
        assert (stacked["loss"] < stacked["loss_upper"]).all()
        assert "Stacked answer" in printed and "## Stacked answer" in report
        for law in stack["laws"]:
            assert bs.load(out / "stacked" / f"{law}.nc").model.law.name == law


def test_fit_refuses_to_overwrite_without_force(tmp_path, capsys):
    recipe = MODELS / "chinchilla.toml"
    (tmp_path / "posterior.nc").write_text("previous results")
    assert main(["fit", str(recipe), "--out", str(tmp_path), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--force" in err
    assert (tmp_path / "posterior.nc").read_text() == "previous results"


def _one_line_error(argv, capsys) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def test_missing_recipe_exits_2(tmp_path, capsys):
    line = _one_line_error(["fit", "no-such.toml", "--out", str(tmp_path)], capsys)
    assert "no-such.toml" in line


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[data]\ndataset = "chinchilla"\nbogus = 1\n', "'bogus'"),
        ('[data]\ndataset = "chinchilla"\n[modle]\nlaw = "flops"\n', "[modle]"),
        ('[data]\ndataset = "no_such_set"\n', "'no_such_set'"),
        ('[data]\ndataset = "chinchilla"\n[model]\nlaw = "hestness"\n', "'hestness'"),
        ('[data]\ndataset = "chinchilla"\n[model]\noffsets = ["lr"]\n', "'lr'"),
        ('[data]\ndataset = "chinchilla"\n[targets]\nbudgets = [1e24, -5.0]\n', "-5.0"),
        ('[data]\ndataset = "chinchilla"\n[fit]\ndraws = "many"\n', "'many'"),
        ('[data]\ndataset = "chinchilla"\n[priors]\nexponent = { dist = "Normal" }\n', "'exponent'"),
        ('[data]\ndataset = "chinchilla"\n[data\n', "not valid TOML"),
        ('[data]\ndataset = "chinchilla"\n[stack]\nlaws = ["hestness"]\n', "'hestness'"),
        ('[data]\ndataset = "chinchilla"\n[stack]\nlaws = ["chinchilla_sized"]\n', "must differ"),
        ('[data]\ndataset = "chinchilla"\n[stack]\nlaws = ["kaplan"]\nmethod = "waic"\n',
         "'waic'"),
        ('[data]\ndataset = "chinchilla"\n[model]\ndiscrepancy = "prior"\n[stack]\n'
         'laws = ["kaplan"]\n', "'prior'"),
        ('[data]\npath = "missing.csv"\n', "missing.csv"),
    ],
    ids=["unknown-key", "unknown-table", "unknown-dataset", "unknown-law", "unknown-offset",
         "negative-budget", "wrong-type", "unknown-prior", "bad-toml", "stack-unknown-law",
         "stack-own-law", "stack-unknown-method", "stack-without-backtests",
         "missing-data-file"],
)
def test_bad_recipe_exits_2_with_one_line(text, named, tmp_path, capsys):
    recipe = tmp_path / "bad.toml"
    recipe.write_text(text)
    line = _one_line_error(["fit", str(recipe), "--out", str(tmp_path / "out"), *TINY], capsys)
    assert named in line


def test_csv_recipe_with_column_map_and_bad_values(tmp_path, capsys):
    (tmp_path / "runs.csv").write_text("N,C,val\n1e8,1e18,3.0\n2e8,4e18,abc\n4e8,1e19,2.6\n")
    recipe = tmp_path / "r.toml"
    recipe.write_text('[data]\npath = "runs.csv"\ncolumns = { params = "N", flops = "C", '
                      'loss = "val" }\n')
    line = _one_line_error(["fit", str(recipe), "--out", str(tmp_path / "o"), *TINY], capsys)
    assert "'val'" in line and "abc" in line


def test_predict_from_saved_posterior(tmp_path, capsys, chinchilla_fit):
    path = tmp_path / "fit.nc"
    chinchilla_fit.save(path)
    assert main(["predict", str(path), "--budgets", "1e24"]) == 0
    printed = capsys.readouterr().out
    assert "C = 1e+24" in printed and "D*/N*" in printed
    line = _one_line_error(["predict", str(path), "--budgets", "0"], capsys)
    assert "budgets" in line and "0.0" in line
    (tmp_path / "junk.nc").write_text("not netcdf")
    line = _one_line_error(["predict", str(tmp_path / "junk.nc"), "--budgets", "1e24"], capsys)
    assert "junk.nc" in line


def test_datasets_lists_attribution(capsys):
    assert main(["datasets"]) == 0
    printed = capsys.readouterr().out
    for name in ("chinchilla", "cs336_isoflops", "cs336_api_2024", "olmo_ladder"):
        assert name in printed
    assert main(["datasets", "olmo_ladder"]) == 0
    printed = capsys.readouterr().out
    assert "Apache-2.0" in printed and "c4_en_CE" in printed
    line = _one_line_error(["datasets", "nope"], capsys)
    assert "'nope'" in line


def test_predict_points_csv(tmp_path, capsys, chinchilla_fit):
    path = tmp_path / "fit.nc"
    chinchilla_fit.save(path)
    (tmp_path / "configs.csv").write_text("params,tokens\n7e10,1.4e12\n1e9,2e10\n")
    out = tmp_path / "pred.csv"
    assert main(["predict", str(path), "--points", str(tmp_path / "configs.csv"),
                 "--kind", "mean", "--out", str(out)]) == 0
    assert "loss_lower" in capsys.readouterr().out
    table = pd.read_csv(out)
    assert list(table.columns) == ["params", "tokens", "loss", "loss_lower", "loss_upper"]
    assert (table["loss_lower"] < table["loss"]).all() and (table["loss"] < table["loss_upper"]).all()
    # the mean law at 70B x 1.4T, computed from the posterior by hand
    # times exp(past * s (z + t x)), past = decades from the nearest run, jointly in N,
    # D, C, and x = decades of N from the law's N* at C (Hoffmann et al. eq. 4)
    post, runs = chinchilla_fit.posterior, chinchilla_fit.runs
    a, b = post["alpha"], post["beta"]
    n_opt = ((a * post["A"] / (b * post["B"])) ** (1 / (a + b))
             * (7e10 * 1.4e12) ** (b / (a + b)))
    past = min(max(abs(np.log10(7e10 / r.params)), abs(np.log10(1.4e12 / r.tokens)),
                   abs(np.log10(6 * 7e10 * 1.4e12 / r.flops))) for r in runs.itertuples())
    by_hand = ((post["E"] + post["A"] * 7e10 ** -post["alpha"]
                + post["B"] * 1.4e12 ** -post["beta"])
               * np.exp(past * (post["discrepancy_scale"] * (
                   post["discrepancy_z"] + post["discrepancy_tilt"] * np.log10(7e10 / n_opt))))
               ).median()
    assert table.loc[0, "loss"] == pytest.approx(float(by_hand), rel=1e-9)
    (tmp_path / "bad.csv").write_text("params,tokens\n7e10,-1\n")
    line = _one_line_error(["predict", str(path), "--points", str(tmp_path / "bad.csv")], capsys)
    assert "'tokens'" in line and "-1" in line


def test_compare_loo_of_saved_fits(tmp_path, capsys, chinchilla_fit):
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        chinchilla_fit.save(tmp_path / name / "posterior.nc")
    assert main(["compare", str(tmp_path / "first"), str(tmp_path / "second")]) == 0
    printed = capsys.readouterr().out
    assert "LOO comparison" in printed and "first" in printed and "second" in printed
    rows = [line.split() for line in printed.splitlines() if line.startswith(("first", "second"))]
    assert rows[0][2] == rows[1][2]  # the same posterior twice: equal elpd
    line = _one_line_error(["compare", str(tmp_path / "first"), "--holdout", "0.5"], capsys)
    assert "--holdout" in line


def test_compare_ranks_the_kaplan_law_beside_chinchilla_and_flops(tmp_path, capsys):
    """The three recipes of the Chinchilla runs, fitted through the CLI and ranked by LOO."""
    folders = []
    for stem in ("chinchilla", "chinchilla_flops", "chinchilla_kaplan"):
        folders.append(tmp_path / stem)
        assert main(["fit", str(MODELS / f"{stem}.toml"), "--out", str(folders[-1]), *TINY]) == 0
    capsys.readouterr()
    assert main(["compare", *map(str, folders)]) == 0
    printed = capsys.readouterr().out
    ranked = [line.split()[0] for line in printed.splitlines()
              if line.startswith(("chinchilla", "chinchilla_flops", "chinchilla_kaplan"))]
    assert sorted(ranked) == ["chinchilla", "chinchilla_flops", "chinchilla_kaplan"]
    # with an irreducible loss and the N/D split, the Chinchilla law wins by a wide margin
    # (measured at these tiny settings: elpd 851 against 686 for flops and 634 for Kaplan)
    assert ranked[0] == "chinchilla"


OFFSETS_RECIPE = """
[data]
dataset = "porian2024_owt2"
[model]
law = "chinchilla"
discrepancy = "prior"
offsets = ["decay"]
[targets]
budgets = [1e21, 1e22]
"""


@pytest.fixture(scope="module")
def offsets_results(tmp_path_factory):
    """`bayescale fit` of a recipe with an offset column: (its folder, what it printed)."""
    folder = tmp_path_factory.mktemp("offsets")
    (folder / "offsets.toml").write_text(OFFSETS_RECIPE)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
        status = main(["fit", str(folder / "offsets.toml"), "--out", str(folder / "out"), *TINY])
    assert status == 0
    return folder / "out", printed.getvalue()


def test_with_offsets_terminal_csv_and_report_give_one_answer_for_a_named_level(offsets_results):
    out, printed = offsets_results
    targets = pd.read_csv(out / "targets.csv")
    report = (out / "report.md").read_text()
    level = targets["level"].iloc[0]
    assert re.fullmatch(r"decay=(kaplan|chinchilla|const)", level)
    assert f"at level           {level}" in printed and level in report
    for _, row in targets.iterrows():
        block = printed.split(f"C = {row['budget']:.3g} FLOPs\n")[1]
        line = next(s for s in block.splitlines() if s.strip().startswith("loss at optimum"))
        numbers = [float(x) for x in re.findall(r"[0-9.]+(?:e[+-]?\d+)?", line)]
        assert numbers == pytest.approx([row["loss_opt"], row["loss_opt_lower"],
                                         row["loss_opt_upper"]], rel=1e-3)
        # the report's table has the same row, to its 4 significant digits
        shown = _markdown_rows(report, "budget")[f"{row['budget']:.4g}"]
        assert shown["level"] == level
        assert [shown[c] for c in ("loss_opt", "loss_opt_lower", "loss_opt_upper")] == [
            f"{row[c]:.4g}" for c in ("loss_opt", "loss_opt_lower", "loss_opt_upper")]
    assert "past the runs" in printed


def _markdown_rows(text: str, first: str) -> dict[str, dict[str, str]]:
    """The rows of the markdown table whose first column is ``first``, by that column."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first} |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
        rows[cells[first]] = cells
    return rows


def test_predict_names_answers_past_the_runs_in_one_line_each(fake_fit, tmp_path, capsys):
    fake_fit.save(tmp_path / "fit.nc")
    pd.DataFrame({"params": [4e8, 1e7], "tokens": [8e9, 1.6e12]}).to_csv(tmp_path / "p.csv",
                                                                        index=False)
    assert main(["predict", str(tmp_path / "fit.nc"), "--points", str(tmp_path / "p.csv")]) == 0
    captured = capsys.readouterr()
    warned = [line for line in captured.out.splitlines() if line.startswith("WARNING:")]
    assert any(line.startswith("WARNING: 1 of 2 points have tokens_per_param past the runs' "
                               "range") and "1.6e+05 (row 1)" in line for line in warned), warned
    assert captured.out.splitlines()[0].startswith(f"{tmp_path / 'fit.nc'}: law `chinchilla`")
    assert "Warning" not in captured.err and ".py:" not in captured.err
    assert main(["predict", str(tmp_path / "fit.nc"), "--budgets", "1e24"]) == 0
    captured = capsys.readouterr()
    (line,) = [s for s in captured.out.splitlines() if s.startswith("WARNING:")]
    assert line.startswith("WARNING: at C = 1e+24 FLOPs the answer lies past the runs: N* ")
    assert "Warning" not in captured.err and ".py:" not in captured.err



def _command(*args: str) -> subprocess.CompletedProcess:
    """``python -m bayescale ARGS`` with its output buffered (as into a file or a pipe)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run([sys.executable, "-m", "bayescale", *args], capture_output=True,
                          text=True, env=env)


def test_the_command_ends_with_its_status_and_its_whole_output(tmp_path):
    """The console script ends the process without the interpreter's teardown (a second at
    the end of a fit): its output must still be whole and its status the command's."""
    listed = _command("datasets")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split()[0] for line in lines[:-2]] == list(bs.datasets.list()["name"])
    assert lines[-1].startswith("`bayescale datasets NAME` shows")
    missing = _command("fit", str(tmp_path / "none.toml"), "--out", str(tmp_path / "out"))
    assert missing.returncode == 2
    assert missing.stderr == f"bayescale fit: error: no recipe file at {tmp_path / 'none.toml'}\n"


def test_output_into_a_closed_pipe_ends_quietly_with_sigpipes_status(monkeypatch):
    from bayescale.report import cli

    def broken():
        raise BrokenPipeError(32, "Broken pipe")

    ended = []
    monkeypatch.setattr(cli, "main", broken)
    monkeypatch.setattr(cli.atexit, "_run_exitfuncs", lambda: None)  # not this session's
    monkeypatch.setattr(cli.os, "_exit", ended.append)
    cli.run()
    assert ended == [141]
