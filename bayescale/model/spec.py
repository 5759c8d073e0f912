"""Typed, versioned model specifications: what a fit records of its model.

A spec is a frozen dataclass per family: the family's options (what the user chose) and what
was derived from the run table (priors, reference points, levels, budgets). It travels as JSON
in a results file's attrs (with a hash :func:`bayescale.load` checks), and rebuilds the model
(:meth:`bayescale.model.family.Family.from_spec`); each family names its spec class
(``spec_class``), and :func:`spec_from_dict` finds it in the registry of families
(:mod:`bayescale.model.registry`). A spec also reads as a read-only mapping
(``spec["law"]``, ``spec.get("offsets")``, ``dict(spec)``) so that plain dicts of the same keys,
such as a spec loaded from JSON, are accepted wherever a spec is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from bayescale.model.laws import DEFAULT_LAW

__all__ = ["Spec", "ScalingLawSpec", "LearningCurvesSpec", "IsoFlopSpec", "SPEC_VERSION",
           "spec_from_dict"]

#: Version of the spec's layout (and of the results files that carry it).
SPEC_VERSION = 2


@dataclass(frozen=True, eq=False)  # equality: the mapping's (a dict of the same keys is equal)
class Spec(Mapping):
    """The fields every family's spec has."""

    model: ClassVar[str]
    noise: str
    priors: dict
    user_priors: dict
    flops_per_param_token: float = 6.0
    version: int = SPEC_VERSION
    #: the law's misfit past the runs (``backtest``, ``prior`` or ``off``); a fit made before
    #: the discrepancy term answers as the model taken as exact
    discrepancy: str = "off"

    # -- read-only mapping view --------------------------------------------------------------
    def __getitem__(self, key: str):
        if key == "model":
            return self.model
        if key not in self._keys():
            raise KeyError(key)
        return getattr(self, key)

    def _keys(self) -> list[str]:
        return ["model", *(f.name for f in dataclasses.fields(self)
                           if getattr(self, f.name) is not None)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (what a results file stores)."""
        return {key: self[key] for key in self}

    def replace(self, **changes) -> Spec:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, eq=False)  # equality: the mapping's (a dict of the same keys is equal)
class ScalingLawSpec(Spec):
    """A :class:`bayescale.ScalingLaw`: the law, its hyperparameter terms and their levels."""

    model: ClassVar[str] = "scaling_law"
    law: str = DEFAULT_LAW
    offsets: list = field(default_factory=list)
    continuous: list = field(default_factory=list)
    levels: dict = field(default_factory=dict)
    offsets_sum_to_zero: bool = True
    centred_offsets: list = field(default_factory=list)
    log_reference: dict = field(default_factory=dict)
    replicates: str | None = None
    #: a group column whose levels have their own law parameters (bayescale.model.groups)
    group: str | None = None
    group_params: list | None = None
    group_levels: list | None = None
    #: how the group's deviations are sampled: True centred, False non-centred, None the rule
    group_centred: bool | None = None


@dataclass(frozen=True, eq=False)  # equality: the mapping's (a dict of the same keys is equal)
class LearningCurvesSpec(ScalingLawSpec):
    """A :class:`bayescale.LearningCurves`: a scaling law's spec and the schedule term's
    reference (the mean log tokens per parameter of the checkpoints)."""

    model: ClassVar[str] = "learning_curves"
    law: str = "chinchilla"
    log_tokens_per_param_reference: float = 0.0


@dataclass(frozen=True, eq=False)  # equality: the mapping's (a dict of the same keys is equal)
class IsoFlopSpec(Spec):
    """A :class:`bayescale.IsoFlop`: the fitted budgets and the reference point."""

    model: ClassVar[str] = "isoflop"
    budgets: list = field(default_factory=list)
    log_flops_reference: float = 0.0
    log_params_reference: float = 0.0


def spec_from_dict(data: Mapping) -> Spec:
    """The typed spec of ``data`` (a dict as stored in a results file); a ValueError names an
    unknown family or key."""
    if isinstance(data, Spec):
        return data
    from bayescale.model.registry import spec_class  # the registry imports the families

    values = dict(data)
    name = values.pop("model", "scaling_law")
    cls = spec_class(name)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"a {name} spec has unknown key(s) {unknown}; it has {sorted(known)}")
    return cls(**values)
