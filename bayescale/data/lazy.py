"""Imports on demand: heavy libraries are imported by the first code that uses them.

PyMC, PyTensor, nutpie, ArviZ, matplotlib and SciPy take seconds to import together; loading a
saved fit, printing ``--help`` or answering from draws needs none of them. A module that uses
one of them writes ``pm = lazy.module("pymc")`` where it would write ``import pymc as pm``:
the name is bound at once and the library is imported on the first attribute looked up
through it (``pm.Model``), by whichever code gets there first. The package root exports its
API the same way (:func:`exports`).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator, Mapping

__all__ = ["module", "exports", "stubs_hidden"]


class _Module:
    """A stand-in for module ``name``, imported on the first attribute looked up on it."""

    __slots__ = ("_name", "_module")

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_module", None)

    def __getattr__(self, attr: str):
        found = self._module
        if found is None:
            found = importlib.import_module(self._name)
            object.__setattr__(self, "_module", found)
        return getattr(found, attr)

    def __setattr__(self, attr: str, value) -> None:
        raise AttributeError(f"cannot set {attr!r} on the deferred import of {self._name!r}")

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<module {self._name!r} imported on demand ({state})>"


def module(name: str) -> _Module:
    """Module ``name`` (``"pymc"``, ``"scipy.stats"``), imported on first attribute access."""
    return _Module(name)


def exports(package: str, attributes: Mapping[str, str],
            modules: Mapping[str, str] | None = None) -> tuple[Callable, Callable]:
    """A package's ``__getattr__`` and ``__dir__`` (PEP 562) for its public names: each of
    ``attributes`` mapped to the module that defines it (``{"ScalingLaw":
    "bayescale.model.scaling"}``), each of ``modules`` to the module it is (``{"laws":
    "bayescale.model.laws"}``). A name is imported when first asked for, then kept in the
    package's namespace."""
    namespace = importlib.import_module(package).__dict__
    modules = dict(modules or {})

    def __getattr__(name: str):
        if name in attributes:
            value = getattr(importlib.import_module(attributes[name]), name)
        elif name in modules:
            value = importlib.import_module(modules[name])
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(attributes) | set(modules))

    return __getattr__, __dir__


@contextlib.contextmanager
def stubs_hidden(*names: str) -> Iterator[None]:
    """Within the block, modules ``names`` that another library registered to be imported on
    first use (``importlib.util.LazyLoader`` stubs in ``sys.modules``, not yet loaded) are
    out of ``sys.modules``; put back after. arviz_base registers ``jax`` so; matplotlib asks
    ``sys.modules["jax"].Array`` of every list it is given to draw, which would import JAX
    (about a second) to learn that a list is not a JAX array."""
    hidden = {}
    for name in names:
        found = sys.modules.get(name)
        if type(found).__name__ == "_LazyModule":  # importlib.util's unloaded stub
            hidden[name] = sys.modules.pop(name)
    try:
        yield
    finally:
        for name, stub in hidden.items():
            sys.modules.setdefault(name, stub)
