"""The command line's phase lines: what it is doing, and since when, on stderr.

Each phase (:func:`bayescale.inference.progress.phase`) prints one plain line, ``[  12.3 s]
compiling the model``, indented by its depth (a phase that is usually short, such as loading
the runs, only once it has run 2 s), the same on a terminal and when the output is
redirected (no cursor movement, so a log file reads as the terminal did). On a terminal,
nutpie's own progress bar shows the sampling in between.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["PhaseLines"]


class PhaseLines:
    """A phase listener that prints ``[elapsed] what`` lines to ``stream`` (stderr)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.started = time.monotonic()

    def __call__(self, what: str, depth: int) -> None:
        self.line(what, depth)

    def line(self, what: str, depth: int = 0) -> None:
        """One line: the seconds since the command began, then ``what`` indented by ``depth``."""
        stream = self.stream if self.stream is not None else sys.stderr
        print(f"[{time.monotonic() - self.started:6.1f} s] {'  ' * depth}{what}", file=stream,
              flush=True)
