"""Phases of long work (compiling, sampling, backtests, refits, writing), told to listeners.

The library is silent by itself: :func:`phase` marks where a phase begins and calls the
listeners installed by :func:`listening` (the command line's phase lines on stderr). Phases
nest (a backtest's compiling and sampling sit inside it); each listener is told the depth.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

__all__ = ["phase", "listening"]

#: Listeners: ``listener(what, depth)`` at the start of each phase.
_LISTENERS: list[Callable[[str, int], None]] = []
_LOCAL = threading.local()


@contextlib.contextmanager
def phase(what: str, *, after: float = 0.0) -> Iterator[None]:
    """Mark the work inside the ``with`` block as the phase ``what`` ("compiling the model").

    The listeners hear of it at its start, or with ``after`` > 0, only once it has run that
    many seconds (for phases usually short, such as loading a table, and that may end in a
    user's error: nothing is told of them when they end sooner).
    """
    depth = getattr(_LOCAL, "depth", 0)
    listeners = list(_LISTENERS)

    def announce() -> None:
        for listener in listeners:
            listener(what, depth)

    timer = None
    if listeners and after > 0:
        timer = threading.Timer(after, announce)
        timer.daemon = True
        timer.start()
    else:
        announce()
    _LOCAL.depth = depth + 1
    try:
        yield
    finally:
        _LOCAL.depth = depth
        if timer is not None:
            timer.cancel()


@contextlib.contextmanager
def listening(listener: Callable[[str, int], None]) -> Iterator[None]:
    """Call ``listener(what, depth)`` at the start of every phase inside the block."""
    _LISTENERS.append(listener)
    try:
        yield
    finally:
        _LISTENERS.remove(listener)
