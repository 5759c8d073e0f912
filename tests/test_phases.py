"""Phase lines: `bayescale fit` (with backtests) and `compare --method lfo` say what they are
doing, on a terminal (a pseudo-terminal, with nutpie's bar) and with redirected output (plain
lines, no bar)."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bayescale.inference.progress import listening, phase
from bayescale.inference.sampling import clear_compile_cache
from bayescale.report.cli import main

RECIPE = Path(__file__).resolve().parents[1] / "models" / "chinchilla.toml"
TINY = ["--draws", "100", "--tune", "100", "--chains", "2", "--seed", "3"]
LINE = re.compile(r"\[ *\d+\.\d s\] ( *)(.+)$")

FIT_PHASES = ["compiling the model", "sampling: 2 chains x 100 tuning",
              "backtest 1 of 2:", "backtest 2 of 2:", "learning the discrepancy",
              "writing "]
LFO_PHASES = ["refit 1 of 1: 'out'", "backtest 1 of 2:", "sampling: "]


def _phases(text: str) -> list[str]:
    """The phase lines of ``text``, each stripped of its time (indentation kept)."""
    out = []
    for line in text.replace("\r\n", "\n").split("\n"):
        match = LINE.search(line.strip("\r"))
        if match:
            out.append(match.group(1) + match.group(2))
    return out


def _in_order(found: list[str], expected: list[str]) -> bool:
    """Each of ``expected`` starts some line of ``found``, in that order."""
    lines = iter(s.strip() for s in found)
    return all(any(line.startswith(e) for line in lines) for e in expected)


def test_phases_nest_and_reach_every_listener():
    heard = []
    with listening(lambda what, depth: heard.append((what, depth))):
        with phase("outer"):
            with phase("inner"):
                pass
        with phase("after"):
            pass
    with phase("unheard"):
        pass
    assert heard == [("outer", 0), ("inner", 1), ("after", 0)]


def test_a_short_phase_announced_after_a_delay_is_not_heard():
    heard = []
    with listening(lambda what, depth: heard.append(what)):
        with phase("short", after=5):
            pass
        with phase("long", after=0.05):
            time.sleep(0.5)
    assert heard == ["long"]


def test_redirected_output_gets_plain_phase_lines(tmp_path, capfd):
    clear_compile_cache()  # a model compiled by an earlier test would skip "compiling"
    out = tmp_path / "out"
    assert main(["fit", str(RECIPE), "--out", str(out), *TINY]) == 0
    fit_err = capfd.readouterr().err
    assert main(["compare", str(out), "--method", "lfo", "--draws", "100", "--chains", "2",
                 "--seed", "3"]) == 0
    lfo_err = capfd.readouterr().err
    for err, expected in ((fit_err, FIT_PHASES), (lfo_err, LFO_PHASES)):
        assert _in_order(_phases(err), expected), err
        assert "\x1b[" not in err and "\r" not in err  # no bar, no cursor movement
    assert any(line.startswith("  compiling") or line.startswith("  sampling")
               for line in _phases(fit_err))  # a backtest's fit, nested under it


def _on_a_terminal(argv: list[str], timeout: float = 600) -> str:
    """Run ``python -m bayescale ARGV`` with stdout and stderr on a pseudo-terminal."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "bayescale", *argv], stdout=slave,
                            stderr=slave, stdin=subprocess.DEVNULL, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=timeout) == 0, b"".join(chunks)[-2000:]
    return b"".join(chunks).decode(errors="replace")


def test_a_terminal_gets_phase_lines_and_the_sampling_bar(tmp_path):
    out = tmp_path / "out"
    shown = _on_a_terminal(["fit", str(RECIPE), "--out", str(out), *TINY])
    assert _in_order(_phases(shown), FIT_PHASES), shown[-3000:]
    assert "Progress" in shown and "Draws" in shown  # nutpie's bar, on a terminal only
    shown = _on_a_terminal(["compare", str(out), "--method", "lfo", "--draws", "100",
                            "--chains", "2", "--seed", "3"])
    assert _in_order(_phases(shown), LFO_PHASES), shown[-3000:]
    assert "LFO comparison" in shown
