"""The command line stops on SIGINT (Ctrl-C) and SIGTERM in every phase, writing nothing.

While :func:`stop_on_signals` is active, either signal raises ``KeyboardInterrupt`` in the main
thread wherever it is (compiling, sampling, backtests, writing), and the signal is remembered:
a sampler that catches ``KeyboardInterrupt`` and returns early is caught by
:func:`check` (or by :class:`bayescale.inference.sampling.SamplingInterrupted`), and the command
exits with :func:`exit_status` (128 + the signal: 130, 143).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["stop_on_signals", "check", "exit_status", "signal_name", "SIGNALS"]

#: The signals that stop a command.
SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []


def _stop(number: int, _frame) -> None:
    _received.append(number)
    raise KeyboardInterrupt(signal.Signals(number).name)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` while the block runs (the main thread
    only; elsewhere the block runs with the handlers it has)."""
    _received.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, _stop) for number in SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a signal arrived that something swallowed."""
    if _received:
        raise KeyboardInterrupt(signal_name())


def signal_name() -> str:
    """The name of the signal that stopped the command (SIGINT for a plain Ctrl-C)."""
    return signal.Signals(_received[-1] if _received else signal.SIGINT).name


def exit_status() -> int:
    """128 + the number of the signal that stopped the command (130 for SIGINT, 143 for
    SIGTERM)."""
    return 128 + (_received[-1] if _received else signal.SIGINT)
