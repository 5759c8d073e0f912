"""A results folder is written as a unit: all old or all new, never mixed, never half-written;
bayescale's outputs are not overwritten without --force; modes follow the umask."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bayescale as bs
from bayescale.report import answer, folders
from bayescale.report.cli import main

MODELS = Path(__file__).resolve().parents[1] / "models"


def digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file in ``folder`` (hidden ones too), by name."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def siblings(folder: Path) -> list[str]:
    """What lies beside ``folder`` in its parent, apart from ``folder`` itself."""
    return sorted(p.name for p in folder.parent.iterdir() if p != folder)


def dead_pid() -> int:
    """The id of a process that has exited."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.fixture(autouse=True)
def one_small_figure(monkeypatch):
    """The real figures cost seconds each (test_cli draws them): one small one here."""
    import matplotlib.pyplot as plt

    def small():
        figure, ax = plt.subplots(figsize=(1, 1))
        ax.plot([0, 1])
        return figure

    monkeypatch.setattr(answer, "figure_makers", lambda *args: {"law.png": small})


@pytest.fixture()
def results(fake_fit, tmp_path) -> Path:
    """A results folder written by :func:`write_results` in a parent of its own."""
    out = tmp_path / "parent" / "results"
    out.parent.mkdir()
    answer.write_results(fake_fit, out, budgets=[1e24], title="first")
    return out


def test_write_results_writes_a_complete_set_and_nothing_beside(results):
    names = set(digest(results))
    assert {"posterior.nc", "summary.csv", "targets.csv", "report.md", "law.png"} <= names
    assert names <= folders.OUTPUTS  # every output is one that --force guards
    assert siblings(results) == []
    assert isinstance(bs.load(results / "posterior.nc"), bs.Fit)


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
def test_overwrite_replaces_the_whole_set_and_keeps_other_files(fake_fit, results, monkeypatch,
                                                                exchange):
    (results / "design.csv").write_text("a design of the old posterior\n")  # stale after a refit
    (results / "notes.txt").write_text("mine\n")
    if not exchange:
        monkeypatch.setattr(folders, "_exchange", lambda a, b: False)
    answer.write_results(fake_fit, results, budgets=[2e24], title="second", overwrite=True)
    assert "second" in (results / "report.md").read_text()
    assert "2e+24" in (results / "targets.csv").read_text()
    assert (results / "notes.txt").read_text() == "mine\n"
    assert not (results / "design.csv").exists()
    assert siblings(results) == []


@pytest.fixture(scope="module")
def other_fit(chinchilla_runs) -> bs.Fit:
    """Another fake fit of the Chinchilla runs: other draws, so other bytes in every file."""
    import arviz as az

    from conftest import fake_posterior, with_sampled

    spec = bs.ScalingLaw(chinchilla_runs, law="chinchilla").spec
    idata = az.from_dict({"posterior": with_sampled(fake_posterior(seed=1), spec)})
    return bs.Fit.from_sampler(idata, spec=spec, runs=chinchilla_runs, sampler="fake", seed=1)


def test_an_interrupted_write_leaves_the_old_folder_as_it_was(other_fit, results, monkeypatch):
    before = digest(results)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(answer, "targets_table", interrupted)  # after posterior.nc and summary
    with pytest.raises(KeyboardInterrupt):
        answer.write_results(other_fit, results, budgets=[2e24], overwrite=True)
    assert digest(results) == before
    assert siblings(results) == []


def _summary_and_report(tmp_path):
    """A results folder holding only an old summary.csv and report.md (no posterior.nc)."""
    out = tmp_path / "results"
    out.mkdir()
    (out / "summary.csv").write_text("old summary\n")
    (out / "report.md").write_text("# old report\n")
    return out


def test_any_bayescale_output_needs_overwrite(fake_fit, tmp_path):
    out = _summary_and_report(tmp_path)
    before = digest(out)
    with pytest.raises(FileExistsError, match="report.md, summary.csv.*overwrite=True"):
        answer.write_results(fake_fit, out, budgets=[1e24])
    assert digest(out) == before


def test_the_cli_refuses_a_folder_with_only_a_summary_and_a_report(tmp_path, capsys):
    out = _summary_and_report(tmp_path)
    before = digest(out)
    assert main(["fit", str(MODELS / "chinchilla.toml"), "--out", str(out), "--draws", "50",
                 "--tune", "50", "--chains", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--force" in err[0] and "summary.csv" in err[0]
    assert digest(out) == before


def test_modes_follow_the_umask(fake_fit, tmp_path):
    out = tmp_path / "results"
    previous = os.umask(0o027)
    try:
        answer.write_results(fake_fit, out, budgets=[1e24])
    finally:
        os.umask(previous)
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert set(modes.values()) == {0o640}, modes
    assert out.stat().st_mode & 0o777 == 0o750


def test_leftovers_of_a_killed_write_are_cleaned_and_an_old_folder_restored(results, fake_fit):
    before = digest(results)
    pid = dead_pid()
    # killed between the two renames of a swap: the old folder aside, the target missing
    os.rename(results, results.parent / f".results.bayescale-old-{pid}")
    staging = results.parent / f".results.bayescale-tmp-{pid}"
    staging.mkdir()
    (staging / "posterior.nc").write_text("half a new set")
    folders.recover(results)
    assert digest(results) == before
    assert siblings(results) == []
    # a staging folder of a live process (another write under way) is left alone
    alive = results.parent / f".results.bayescale-tmp-{os.getppid()}"
    alive.mkdir()
    folders.recover(results)
    assert alive.is_dir()


def test_the_next_write_cleans_leftovers(results, fake_fit):
    pid = dead_pid()
    for kind in ("tmp", "old"):
        (results.parent / f".results.bayescale-{kind}-{pid}").mkdir()
    (results.parent / f".report.md.bayescale-tmp-{pid}").write_text("partial")
    answer.write_results(fake_fit, results, budgets=[1e24], overwrite=True)
    assert siblings(results) == [f".report.md.bayescale-tmp-{pid}"]  # not this folder's


def test_predict_out_and_design_refuse_to_overwrite_without_force(fake_fit, tmp_path, capsys):
    fake_fit.save(tmp_path / "posterior.nc")
    (tmp_path / "configs.csv").write_text("params,tokens\n7e10,1.4e12\n")
    (tmp_path / "pred.csv").write_text("old predictions\n")
    argv = ["predict", str(tmp_path / "posterior.nc"), "--points", str(tmp_path / "configs.csv"),
            "--out", str(tmp_path / "pred.csv")]
    assert main(argv) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "pred.csv").read_text() == "old predictions\n"
    previous = os.umask(0o022)
    try:
        assert main([*argv, "--force"]) == 0
    finally:
        os.umask(previous)
    assert "loss_lower" in (tmp_path / "pred.csv").read_text()
    assert (tmp_path / "pred.csv").stat().st_mode & 0o777 == 0o644
    (tmp_path / "design.csv").write_text("old design\n")
    assert main(["design", str(tmp_path / "posterior.nc"), "--budget", "1e20",
                 "--grid-budgets", "1e20", "--out", str(tmp_path)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "design.csv").read_text() == "old design\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_the_results_folder_cannot_be_the_current_folder(fake_fit, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="current folder"):
        answer.write_results(fake_fit, ".", budgets=[1e24])


def test_rank_plots_are_drawn_where_the_diagnostics_find_a_problem_or_when_asked(
        fake_fit, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    asked = []

    def figures(fit, budgets, prob, ranks):
        asked.append(ranks)
        return {"ranks.png": lambda: plt.subplots(figsize=(1, 1))[0]} if ranks else {}

    monkeypatch.setattr(answer, "figure_makers", figures)
    cases = [([], None, False), (["bulk ESS 12 < 400: run more draws"], None, True),
             ([], True, True), (["bulk ESS 12 < 400: run more draws"], False, False)]
    for i, (problems, ranks, drawn) in enumerate(cases):
        monkeypatch.setattr(fake_fit, "diagnostic_problems", lambda: problems)
        answer.write_results(fake_fit, tmp_path / str(i), budgets=[1e24], ranks=ranks)
        assert asked[-1] is drawn, (problems, ranks)
        report = (tmp_path / str(i) / "report.md").read_text()
        assert ("bayescale fit --ranks" in report) is (not drawn and not problems)
        assert (tmp_path / str(i) / "ranks.png").exists() is drawn
