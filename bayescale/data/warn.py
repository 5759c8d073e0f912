"""Warnings that point at the caller's line, not at bayescale's own files.

Every warning the package issues goes through :func:`warn`, which skips the frames inside the
package (``warnings.warn``'s ``skip_file_prefixes``, Python 3.12): the warning's filename and
line are those of the first frame outside bayescale, the user's call, however deep in the
package the warning arose.
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["warn", "called_from_outside", "PACKAGE_PREFIXES"]

#: The package folder, as written and resolved (frames whose file lies under it are skipped).
PACKAGE_PREFIXES = tuple(dict.fromkeys(
    os.path.dirname(os.path.dirname(p)) + os.sep
    for p in (os.path.abspath(__file__), os.path.realpath(__file__))))


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` at the first frame outside the package."""
    warnings.warn(message, category, skip_file_prefixes=PACKAGE_PREFIXES)


def called_from_outside() -> bool:
    """Whether the function calling this was itself called from outside the package (the
    user's code), not by bayescale on its way to another answer (a plot's grid, a report)."""
    return not sys._getframe(2).f_code.co_filename.startswith(PACKAGE_PREFIXES)
