"""Output written as a unit: a results folder swapped in whole, files replaced together.

A results folder is written into a temporary sibling (``.<name>.bayescale-tmp-<pid>``, in the
same parent) and swapped in at the end: by an atomic exchange of the two folders where Linux
offers one (``renameat2(RENAME_EXCHANGE)``), else by renaming the old folder to
``.<name>.bayescale-old-<pid>`` and the new one into place. A reader sees the old complete set
or the new complete set, never a mixture; an interrupted write (an exception, Ctrl-C) removes
its temporary folder and leaves the old one as it was. A process killed outright leaves its
siblings behind; the next write to the folder cleans them (and puts an old folder back if it
was killed between the two renames). Files that are not bayescale's outputs in the old folder
are carried into the new one.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from bayescale.inference.trees import file_mode, leftovers, temporary_name

__all__ = ["OUTPUTS", "outputs_in", "check_outputs", "recover", "staged_folder",
           "staged_files", "pause_for_tests"]

#: The names bayescale writes into a results folder: present ones need ``--force``.
OUTPUTS = frozenset({"posterior.nc", "summary.csv", "targets.csv", "report.md", "design.csv",
                     "law.png", "optimal.png", "checks.png", "ranks.png", "offsets.png",
                     "isoflop.png", "design.png", "multiplier.png", "stacked.csv", "stacked"})
#: The test-only environment variable: seconds to sleep between the files of a write.
PAUSE_VARIABLE = "BAYESCALE_TEST_PAUSE_WRITE"
#: The folders and files this process has swapped in (the command line reports them when a
#: signal arrives after one was written).
WRITTEN: list[Path] = []


def outputs_in(folder, names: Iterable[str] = OUTPUTS) -> list[str]:
    """The bayescale outputs (of ``names``) that ``folder`` holds, sorted."""
    folder = Path(folder)
    return sorted(n for n in names if (folder / n).exists()) if folder.is_dir() else []


def check_outputs(folder, *, overwrite: bool, names: Iterable[str] = OUTPUTS) -> None:
    """Clean the leftovers of killed writes to ``folder``; refuse (FileExistsError) a folder
    holding bayescale outputs unless ``overwrite``, and a path that is a file; refuse
    (ValueError) the current folder or one above it (a swap would move it away)."""
    folder = Path(os.path.realpath(folder))
    recover(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} is a file, not a folder")
    if Path.cwd() == folder or folder in Path.cwd().parents:
        raise ValueError(f"the results folder {folder} is the current folder or holds it; "
                         "give a folder of its own (--out results/NAME)")
    found = outputs_in(folder, names)
    if found and not overwrite:
        raise FileExistsError(f"{folder} already holds results ({', '.join(found)}); pass "
                              "--force (Python: overwrite=True) to overwrite")


def _sibling(folder: Path, kind: str) -> Path:
    return temporary_name(folder, kind)


def recover(target) -> None:
    """Clean what killed writes left beside ``target`` (a folder or a file): an old folder
    comes back when ``target`` is missing (killed between the two renames of a swap);
    temporary folders and files and other old folders are removed."""
    target = Path(target)
    for kind, path in leftovers(target):
        if kind == "old" and not target.exists():
            os.rename(path, target)
        elif path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the block runs (the main thread only) and deliver them
    after it: a swap of folders is never cut in half by Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda n, _f: caught.append(n))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        for number in caught[:1]:
            signal.raise_signal(number)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system or the file system cannot."""
    try:
        call = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return call(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _swap_in(new: Path, folder: Path) -> None:
    """Put the complete folder ``new`` in place of ``folder`` and remove the old one; a
    signal that arrives meanwhile is delivered once ``folder`` is whole."""
    with signals_deferred():
        if not folder.exists():
            os.rename(new, folder)
        elif _exchange(new, folder):
            shutil.rmtree(new, ignore_errors=True)  # the exchange left the old folder there
        else:
            old = _sibling(folder, "old")
            os.rename(folder, old)
            os.rename(new, folder)
            shutil.rmtree(old, ignore_errors=True)
        WRITTEN.append(folder)


def _carry(folder: Path, staging: Path) -> None:
    """Hard-link (or copy) what ``folder`` holds beside bayescale's outputs into ``staging``."""
    if not folder.is_dir():
        return
    shutil.copymode(folder, staging)
    for entry in folder.iterdir():
        if entry.name in OUTPUTS or (staging / entry.name).exists():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, staging / entry.name, symlinks=True, copy_function=_link)
        else:
            _link(entry, staging / entry.name)


def _link(source, destination) -> None:
    try:
        os.link(source, destination, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, destination, follow_symlinks=False)


@contextlib.contextmanager
def staged_folder(folder, *, overwrite: bool = False) -> Iterator[Path]:
    """Write a results folder as a unit: yields an empty temporary folder beside ``folder``;
    when the block ends normally it replaces ``folder`` whole, when it raises (Ctrl-C too)
    it is removed and ``folder`` is left as it was.

    Raises ``FileExistsError`` if ``folder`` holds bayescale outputs and ``overwrite`` is
    False, ``FileNotFoundError`` if its parent folder does not exist.
    """
    folder = Path(os.path.realpath(folder))
    check_outputs(folder, overwrite=overwrite)
    if not folder.parent.is_dir():
        raise FileNotFoundError(f"folder {folder.parent} does not exist")
    staging = _sibling(folder, "tmp")
    os.mkdir(staging)
    try:
        _carry(folder, staging)
        yield staging
        _swap_in(staging, folder)
    except BaseException:
        with signals_deferred():
            shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def staged_files(folder, names: Iterable[str], *,
                 overwrite: bool = False) -> Iterator[dict[str, Path]]:
    """Replace a few files of ``folder`` together: yields a temporary path beside each of
    ``names``; when the block ends normally each replaces its file (modes from the umask),
    when it raises they are removed and the old files stay.

    Raises ``FileExistsError`` if one of ``names`` exists and ``overwrite`` is False.
    """
    folder = Path(folder)
    names = list(names)
    for name in names:
        recover(folder / name)
    found = outputs_in(folder, names)
    if found and not overwrite:
        raise FileExistsError(f"{', '.join(str(folder / n) for n in found)} exist(s); pass "
                              "--force (Python: overwrite=True) to overwrite")
    folder.mkdir(parents=True, exist_ok=True)
    temps = {name: _sibling(folder / name, "tmp") for name in names}
    try:
        yield temps
        with signals_deferred():
            for name, temp in temps.items():
                if temp.exists():
                    os.chmod(temp, file_mode())
                    os.replace(temp, folder / name)
                    WRITTEN.append(folder / name)
    finally:
        for temp in temps.values():
            temp.unlink(missing_ok=True)


def pause_for_tests() -> None:
    """Sleep ``$BAYESCALE_TEST_PAUSE_WRITE`` seconds (tests: a signal lands inside a write)."""
    seconds = os.environ.get(PAUSE_VARIABLE)
    if seconds:
        time.sleep(float(seconds))
