"""Ctrl-C, SIGTERM and SIGKILL stop `bayescale fit` without losing or mixing results.

Each test runs the real command (``python -m bayescale fit``) on a tiny recipe over an earlier
results folder, signals it in one phase (compiling, sampling, writing) and checks that the
folder is byte-identical afterwards, the exit status 130 (SIGINT) or 143 (SIGTERM), and one
line on stderr. Each costs a nutpie compilation (~15 s) at most, so there are few.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import bayescale as bs
from bayescale.inference import sampling
from bayescale.report import answer
from test_folders import digest, one_small_figure, siblings  # noqa: F401 - a fixture

RECIPE = """[data]
dataset = "chinchilla"
[model]
law = "chinchilla"
discrepancy = "{discrepancy}"
[fit]
draws = 100
tune = 100
chains = 2
random_seed = 1
[targets]
budgets = [1e24]
"""
PROC = Path("/proc")
_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def no_process_outlives_its_test():
    """Kill what a failed test left running (a live Popen is a ResourceWarning, an error)."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.fixture()
def earlier(fake_fit, tmp_path) -> Path:
    """An earlier results folder (the one a signalled run must leave as it was)."""
    out = tmp_path / "results"
    answer.write_results(fake_fit, out, budgets=[1e24], title="the earlier results")
    return out


def start(tmp_path: Path, out: Path, *extra: str, discrepancy: str = "prior",
          env: dict | None = None, umask: int | None = None) -> subprocess.Popen:
    """`bayescale fit` of a tiny recipe into ``out`` (with --force), started; returns once it
    has printed its first line (the recipe is read and the model is being compiled)."""
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(RECIPE.format(discrepancy=discrepancy))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bayescale", "fit", str(recipe), "--out", str(out), "--force",
         "--no-progress", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=os.environ | (env or {}), preexec_fn=None if umask is None else lambda: os.umask(umask))
    _STARTED.append(proc)
    first = proc.stdout.readline()
    assert first.startswith("bayescale "), first + proc.stderr.read()
    return proc


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    """Wait for ``proc`` (killed if it outlasts ``timeout``); (exit status, stderr)."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode, err


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 180) -> None:
    """Poll ``condition()`` until true; fail if ``proc`` exits first or it takes too long."""
    end = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the command exited ({proc.returncode}) before {what}: "
                        f"{proc.stderr.read()[-2000:]}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail(f"no {what} within {timeout} s")
        time.sleep(0.1)


def sampling_threads(pid: int) -> int:
    """How many of the process's threads are nutpie's samplers (``nutpie-worker-*``)."""
    names = []
    for comm in (PROC / str(pid) / "task").glob("*/comm"):
        try:
            names.append(comm.read_text())
        except OSError:  # the thread ended meanwhile
            pass
    return sum(name.startswith("nutpie-worker") for name in names)


def staged(out: Path) -> list[Path]:
    """The posterior.nc of a results folder being written beside ``out``."""
    return list(out.parent.glob(f".{out.name}.bayescale-tmp-*/posterior.nc"))


def assert_stopped(status: int, err: str, number: signal.Signals, out: Path, before: dict):
    assert status == 128 + number, err
    # the phase lines ("[   0.7 s] compiling the model") say what was under way; then one line
    lines = [line for line in err.strip().splitlines() if not re.match(r"\[ *\d+\.\d s\] ", line)]
    assert len(lines) == 1 and f"interrupted by {number.name}" in lines[0], err
    assert "nothing was written" in lines[0]
    assert digest(out) == before
    assert siblings(out) == ["tiny.toml"]


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_while_compiling_stops_and_writes_nothing(earlier, tmp_path, number):
    before = digest(earlier)
    proc = start(tmp_path, earlier)
    time.sleep(1.0)  # ~2 s in: building and compiling the model
    proc.send_signal(number)
    assert_stopped(*finish(proc, timeout=60), number, earlier, before)


@pytest.mark.skipif(not (PROC / "self" / "task").is_dir(), reason="needs Linux /proc")
def test_ctrl_c_while_sampling_stops_and_writes_nothing(earlier, tmp_path):
    """nutpie catches KeyboardInterrupt and returns the draws so far: no fit is made of them."""
    before = digest(earlier)
    proc = start(tmp_path, earlier, "--draws", "50000")
    wait_for(lambda: sampling_threads(proc.pid) > 0, proc, "sampling threads")
    time.sleep(1.0)
    signalled = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert_stopped(*finish(proc, timeout=60), signal.SIGINT, earlier, before)
    assert time.monotonic() - signalled < 30  # stopped, not sampled to the end


@pytest.mark.slow
@pytest.mark.skipif(not (PROC / "self" / "task").is_dir(), reason="needs Linux /proc")
def test_ctrl_c_during_the_backtests_stops_and_writes_nothing(earlier, tmp_path):
    before = digest(earlier)
    proc = start(tmp_path, earlier, "--draws", "3000", discrepancy="backtest")
    wait_for(lambda: sampling_threads(proc.pid) > 0, proc, "the main fit's sampling")
    wait_for(lambda: sampling_threads(proc.pid) == 0, proc, "the end of the main fit")
    wait_for(lambda: sampling_threads(proc.pid) > 0, proc, "a backtest's sampling")
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    assert_stopped(*finish(proc, timeout=60), signal.SIGINT, earlier, before)


def test_ctrl_c_while_writing_leaves_the_earlier_folder_whole(earlier, tmp_path):
    before = digest(earlier)
    proc = start(tmp_path, earlier, env={"BAYESCALE_TEST_PAUSE_WRITE": "60"})
    wait_for(lambda: staged(earlier), proc, "a staged posterior.nc")
    proc.send_signal(signal.SIGINT)
    assert_stopped(*finish(proc, timeout=60), signal.SIGINT, earlier, before)


def test_sigkill_while_writing_then_the_next_run_cleans_up(earlier, tmp_path):
    before = digest(earlier)
    proc = start(tmp_path, earlier, env={"BAYESCALE_TEST_PAUSE_WRITE": "60"})
    wait_for(lambda: staged(earlier), proc, "a staged posterior.nc")
    proc.kill()
    proc.communicate(timeout=60)
    assert digest(earlier) == before  # the earlier set, whole
    assert len(siblings(earlier)) == 2  # the recipe and the killed run's staging folder
    again = start(tmp_path, earlier, umask=0o027)
    status, err = finish(again)
    assert status == 0, err
    assert siblings(earlier) == ["tiny.toml"]  # the leftovers are gone
    now = digest(earlier)
    assert {"posterior.nc", "summary.csv", "targets.csv", "report.md", "law.png"} <= set(now)
    assert all(now[name] != before[name] for name in ("posterior.nc", "report.md"))
    assert "the earlier results" not in (earlier / "report.md").read_text()
    assert bs.load(earlier / "posterior.nc").posterior.sizes["draw"] == 100
    assert {p.stat().st_mode & 0o777 for p in earlier.iterdir()} == {0o640}


# -- the Python API: an interrupted sampler raises, never returns a partial posterior ----------
@pytest.mark.parametrize(("short", "pattern"), [(7, "2 chains x 193 draws of 2 x 200"),
                                               (0, "5 of them empty")], ids=["short", "nan"])
def test_a_partial_trace_raises_sampling_interrupted(chinchilla_runs, monkeypatch, short,
                                                     pattern):
    """What nutpie returns when interrupted: fewer draws than asked, or NaN-padded chains."""
    import xarray as xr

    def interrupted(model, *, draws, chains, **kwargs):
        values = np.ones((chains, draws - short))
        values[1, values.shape[1] - 5:] = np.nan if not short else 1.0  # a chain 5 draws short
        return xr.DataTree.from_dict({
            "posterior": xr.Dataset({"alpha": (("chain", "draw"), values)}),
            "sample_stats": xr.Dataset({"diverging": (("chain", "draw"), values > 2)})})

    monkeypatch.setitem(sampling._SAMPLE, "nutpie", interrupted)
    model = bs.ScalingLaw(chinchilla_runs, law="chinchilla", discrepancy="prior")
    with pytest.raises(bs.SamplingInterrupted, match=pattern):
        model.fit(draws=200, tune=10, chains=2, random_seed=0, progressbar=False)
    assert issubclass(bs.SamplingInterrupted, KeyboardInterrupt)


#: A Python session that compiles a model, then gets a real Ctrl-C (SIGINT from a timer) 4 s
#: into a fit of 200,000 draws; it prints what the fit raised and how long it took.
_CTRL_C_SCRIPT = """
import os, signal, threading, time, warnings
# Ctrl-C as a user's session has it: a child inherits an ignored or blocked SIGINT from its
# parent, and a test runner may hold one so
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
import bayescale as bs
runs = bs.datasets.load("chinchilla")
model = bs.ScalingLaw(runs, law="chinchilla", discrepancy="prior")
settings = dict(draws=200, tune=200, chains=2, random_seed=1, progressbar=False)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    model.fit(**settings)  # compiled: the signal comes while nutpie samples
timer = threading.Timer(4.0, os.kill, (os.getpid(), signal.SIGINT))
started = time.monotonic()
timer.start()
try:
    model.fit(**(settings | {"draws": 200_000}))
    print("RETURNED")
except bs.SamplingInterrupted as err:
    print("INTERRUPTED", round(time.monotonic() - started, 1), err)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_during_a_python_fit_raises():
    """A real Ctrl-C while nutpie samples, in a fresh interpreter (a test session's own
    signal and compile state are not a user's)."""
    done = subprocess.run([sys.executable, "-c", _CTRL_C_SCRIPT], capture_output=True,
                          text=True, timeout=300, env=os.environ | {"PYTHONWARNINGS": "ignore"})
    out = done.stdout.strip().splitlines()
    assert out and out[-1].startswith("INTERRUPTED"), (done.stdout, done.stderr[-2000:])
    assert "sampling stopped early" in out[-1]
    assert float(out[-1].split()[1]) < 60
