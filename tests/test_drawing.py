"""The figure worker: a second process draws the view's first figure of a results folder.

The worker draws from the saved ``posterior.nc`` what the command would draw from the fit in
memory (the same PNG, byte for byte); where it fails or is gone the command draws the figure
itself; the warnings it meets are issued by the command with their own category; it dies
with the command that started it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

import bayescale as bs
from bayescale.report import answer
from bayescale.report.drawing import FigureWorker


def _written(fit, out: Path, worker) -> dict[str, bytes]:
    paths = answer.write_results(fit, out, budgets=[1e24], title="t", worker=worker)
    return {name: path.read_bytes() for name, path in paths.items()
            if name.endswith(".png") or name == "report.md"}


def test_the_worker_draws_the_figure_the_command_would(fake_fit, tmp_path):
    worker = FigureWorker.start()
    assert worker is not None  # the test machine has two cores or more
    away = _written(fake_fit, tmp_path / "worker", worker)
    assert worker._process.returncode == 0  # it answered and ended
    here = _written(fake_fit, tmp_path / "here", None)
    assert list(away) == list(here)
    assert {"law.png", "optimal.png", "checks.png"} <= set(here)
    for name in here:
        assert away[name] == here[name], name


def test_a_worker_that_is_gone_leaves_the_figure_to_the_command(fake_fit, tmp_path):
    worker = FigureWorker.start()
    worker._process.kill()
    worker._process.wait()
    away = _written(fake_fit, tmp_path / "gone", worker)
    here = _written(fake_fit, tmp_path / "here", None)
    assert away["law.png"] == here["law.png"]


def _replying(reply: dict) -> FigureWorker:
    """A worker whose process reads the request and answers ``reply``."""
    code = f"import sys; sys.stdin.readline(); print({json.dumps(json.dumps(reply))})"
    return FigureWorker(subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True))


def _ask(worker: FigureWorker, tmp_path) -> list[str] | None:
    assert worker.request(tmp_path / "posterior.nc", tmp_path, names=["law.png"],
                          budgets=[1e24], prob=0.9)
    with worker:
        return worker.answer()


def test_a_worker_that_fails_answers_none(tmp_path):
    assert _ask(_replying({"error": "OSError: no space left"}), tmp_path) is None
    assert _ask(_replying({"not": "an answer"}), tmp_path) is None
    assert _ask(_replying(["law.png"]), tmp_path) is None


def test_the_workers_warnings_are_the_commands_with_their_category(tmp_path):
    reply = {"figures": ["law.png"],
             "warnings": [["bayescale.model.reach", "ExtrapolationWarning", "far past the runs"],
                          ["no.such.module", "Nothing", "plain"]]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _ask(_replying(reply), tmp_path) == ["law.png"]
    got = [(w.category, str(w.message)) for w in caught]
    assert got == [(bs.ExtrapolationWarning, "far past the runs"), (UserWarning, "plain")]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_the_worker_dies_with_the_command():
    code = ("from bayescale.report.drawing import FigureWorker\nimport time\n"
            "w = FigureWorker.start()\nprint(w._process.pid, flush=True)\ntime.sleep(60)")
    command = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pid = int(command.stdout.readline())
    assert _alive(pid)  # importing matplotlib and the plots: a second or more
    command.send_signal(signal.SIGKILL)
    command.wait()
    command.stdout.close()
    deadline = time.monotonic() + 0.8  # an orphan would import on, then read its input's end
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status and os.path.exists(f"/proc/{pid}")
