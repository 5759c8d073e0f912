"""The one registry of model families, filled when a family class is defined.

A family (a subclass of :class:`bayescale.model.family.Family` that sets ``family``, its name,
and ``spec_class``, its typed spec) is registered by defining it: nothing else lists the
families. A fit names its family in ``spec["model"]``; :func:`family_of` and
:func:`spec_class` find the class and its spec by that name. The modules of
:mod:`bayescale.model` are imported on first use, so that a results file can be read before
any of them is, and a new family in that package is found without being listed anywhere.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from pathlib import Path

__all__ = ["FAMILIES", "add", "families", "family_of", "spec_class"]

#: The registered families, by name (complete once :func:`families` has run).
FAMILIES: dict[str, type] = {}
_LOADED = False


def add(cls: type) -> type:
    """Register ``cls`` under ``cls.family`` (called by ``Family.__init_subclass__``); a
    ValueError for a name already taken by another class or a spec of another family."""
    name = cls.family
    if FAMILIES.get(name, cls) is not cls and FAMILIES[name].__qualname__ != cls.__qualname__:
        raise ValueError(f"model family {name!r} is already registered by "
                         f"{FAMILIES[name].__qualname__}")
    if getattr(cls.spec_class, "model", None) != name:
        raise ValueError(f"family {name!r} needs a spec_class whose model is {name!r}, got "
                         f"{cls.spec_class.__name__} (model {cls.spec_class.model!r})")
    FAMILIES[name] = cls
    return cls


def families() -> dict[str, type]:
    """Every registered family, by name: bayescale's own (every module of
    :mod:`bayescale.model`, imported once) and any defined since."""
    global _LOADED
    if not _LOADED:  # the modules beside this one: bayescale.model's
        for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
            importlib.import_module(f"{__package__}.{info.name}")
        _LOADED = True
    return FAMILIES


def family_of(spec: Mapping | str) -> type:
    """The family class named by ``spec`` (a spec, whose ``model`` names it, a scaling law's
    when absent; or the name itself); a ValueError naming the known families."""
    name = spec if isinstance(spec, str) else spec.get("model", "scaling_law")
    known = families()
    if name not in known:
        raise ValueError(f"unknown model family {name!r}; known families are {list(known)}")
    return known[name]


def spec_class(name: str) -> type:
    """The typed spec class of family ``name`` (:mod:`bayescale.model.spec`)."""
    return family_of(name).spec_class
