"""Prior specifications: data-scaled defaults, validation of user priors, PyMC variables.

A prior is a plain dict ``{"dist": <PyMC distribution name>, <its parameters>...}``, e.g.
``{"dist": "LogNormal", "mu": -1.2, "sigma": 0.5}``: JSON- and TOML-friendly, so that a spec
can travel in a results file's attrs and in a recipe. User priors override the defaults by
name (``defaults | user``); unknown names are rejected with the list of valid ones.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping

from bayescale.data import lazy

pm = lazy.module("pymc")

__all__ = ["POSITIVE_DISTS", "REAL_DISTS", "check_priors", "create", "distribution"]

#: Distributions accepted for parameters that must be positive (exponents, scales, nu, tau).
POSITIVE_DISTS = frozenset({"HalfNormal", "HalfStudentT", "HalfCauchy", "LogNormal", "Gamma",
                            "InverseGamma", "Exponential", "Weibull"})
#: Distributions accepted for real-valued parameters (log amplitudes); positive ones are fine too.
REAL_DISTS = frozenset({"Normal", "StudentT", "Cauchy", "Laplace", "Logistic", "SkewNormal",
                        "TruncatedNormal", "Uniform"}) | POSITIVE_DISTS

#: The parameters of each distribution that must be positive (scales, shapes, rates, degrees of
#: freedom); PyMC accepts any value here and the sampler fails later.
_POSITIVE_PARAMS = {
    "HalfNormal": ("sigma", "tau"), "HalfStudentT": ("nu", "sigma", "lam"),
    "HalfCauchy": ("beta",), "LogNormal": ("sigma", "tau"),
    "Gamma": ("alpha", "beta", "mu", "sigma"), "InverseGamma": ("alpha", "beta", "mu", "sigma"),
    "Exponential": ("lam", "scale"), "Weibull": ("alpha", "beta"), "Normal": ("sigma", "tau"),
    "StudentT": ("nu", "sigma", "lam"), "Cauchy": ("beta",), "Laplace": ("b",),
    "Logistic": ("s",), "SkewNormal": ("sigma", "tau"), "TruncatedNormal": ("sigma", "tau"),
    "Uniform": (),
}


def check_priors(user: object, defaults: Mapping[str, dict], positive: frozenset[str],
                 optional: frozenset[str] = frozenset()) -> dict[str, dict]:
    """Merge ``user`` priors over ``defaults`` after checking names, types and distributions.
    ``optional`` names a variable that has no default prior and is in the model only when
    ``user`` gives it one (the discrepancy's bias)."""
    if user is None:
        return {name: dict(spec) for name, spec in defaults.items()}
    if not isinstance(user, Mapping):
        raise TypeError(f"priors must be a dict of name -> prior spec, got {type(user).__name__}")
    valid = set(defaults) | set(optional)
    unknown = sorted(set(user) - valid)
    if unknown:
        raise ValueError(f"priors has unknown name(s) {unknown}; valid names are {sorted(valid)}")
    merged = {name: dict(spec) for name, spec in defaults.items()}
    for name, spec in user.items():
        merged[name] = _check_spec(name, spec, name in positive)
    return merged


def _check_spec(name: str, spec: object, must_be_positive: bool) -> dict:
    if not isinstance(spec, Mapping) or "dist" not in spec:
        raise TypeError(f"prior {name!r} must be a dict with a 'dist' key, e.g. "
                        f"{{'dist': 'Normal', 'mu': 0, 'sigma': 1}}; got {spec!r}")
    dist = spec["dist"]
    allowed = POSITIVE_DISTS if must_be_positive else REAL_DISTS
    if dist not in allowed:
        kind = "positive " if must_be_positive else ""
        raise ValueError(f"prior {name!r} has dist={dist!r}; allowed for this {kind}parameter: "
                         f"{sorted(allowed)}")
    for key, value in spec.items():
        if key == "dist":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TypeError(f"prior {name!r}: parameter {key}={value!r} must be a finite number")
    accepted = _parameters(dist)
    unknown = sorted(set(spec) - {"dist"} - accepted)
    if unknown:  # PyMC 6 would silently drop them
        raise ValueError(f"prior {name!r} = {dict(spec)!r} is not a valid pymc.{dist}: "
                         f"unknown parameter(s) {unknown}; it takes {sorted(accepted)}")
    _check_support(name, spec)
    try:  # the values themselves, checked by PyMC now rather than when the graph is built
        distribution(spec)
    except (TypeError, ValueError) as err:
        raise ValueError(f"prior {name!r} = {dict(spec)!r} is not a valid "
                         f"pymc.{dist}: {err}") from None
    return dict(spec)


def _check_support(name: str, spec: Mapping) -> None:
    """Each parameter inside its support: scales, shapes, rates and nu positive; bounds
    ordered (``lower < upper``)."""
    dist = spec["dist"]
    for key in _POSITIVE_PARAMS.get(dist, ()):
        if key in spec and not spec[key] > 0:
            raise ValueError(f"prior {name!r}: pymc.{dist} parameter {key}={spec[key]!r} must "
                             "be positive")
    if "lower" in spec and "upper" in spec and not spec["lower"] < spec["upper"]:
        raise ValueError(f"prior {name!r}: pymc.{dist} needs lower < upper, got "
                         f"lower={spec['lower']!r}, upper={spec['upper']!r}")


def _parameters(dist: str) -> set[str]:
    """The named parameters of PyMC distribution ``dist`` (its ``dist`` signature)."""
    signature = inspect.signature(getattr(pm, dist).dist)
    return {p.name for p in signature.parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def distribution(spec: Mapping):
    """The unnamed PyMC distribution of ``spec`` (outside any model: to draw from it)."""
    return getattr(pm, spec["dist"]).dist(**{k: v for k, v in spec.items() if k != "dist"})


def create(name: str, spec: Mapping, **kwargs) -> pm.Distribution:
    """Create PyMC variable ``name`` from ``spec`` inside the current model context."""
    params = {k: v for k, v in spec.items() if k != "dist"}
    try:
        return getattr(pm, spec["dist"])(name, **params, **kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"prior {name!r} = {dict(spec)!r} is not a valid "
                         f"pymc.{spec['dist']}: {err}") from None
