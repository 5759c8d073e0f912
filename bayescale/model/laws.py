"""Scaling laws as definitions: terms, their priors and their formula, written once.

A law's formula is written **once**, against an array namespace ``xp``: ``pytensor.tensor``
when :class:`bayescale.ScalingLaw` builds the PyMC graph, ``numpy`` when a fit evaluates its
draws. Both paths call the same function on the same *sampled* parameters, so the graph and
the predictions cannot drift apart.

The sampled parameters are centred on the runs: with ``z_x = log x - log x0`` (``x0`` the
geometric mean of input ``x`` over the runs), a power term ``A x^-alpha`` is sampled as
``log_A_ref - alpha z_x``, which keeps amplitude and exponent nearly independent for NUTS.
Each law also maps its sampled parameters to natural units (``natural``; recorded as
deterministics) and back (``sampled_from``), and says whether it has a compute-optimal
allocation (``optimum``; ``None`` for a law in compute alone).

Everything here is NumPy-only at import time (no sampler needed): the functions broadcast, so
draws of shape ``(chain, draw, 1)`` and points of shape ``(point,)`` give
``(chain, draw, point)``, in log space with ``logaddexp`` so that huge N or C never overflow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

__all__ = ["Law", "Power", "Irreducible", "SumLaw", "KaplanLaw", "SizedDataLaw", "LAWS",
           "DEFAULT_LAW", "get_law", "log_mean", "mean", "compute_optimal", "register_law"]

#: Prior on an exponent: LogNormal(log 0.3, 0.75), 90% mass in 0.09-1.0.
_EXPONENT_PRIOR = {"dist": "LogNormal", "mu": math.log(0.3), "sigma": 0.75}


# -- terms of a sum law: each a piece of L = sum of terms ---------------------------------------
@dataclass(frozen=True)
class Power:
    """The term ``amp * x^-exp``, sampled as ``log_<amp>_ref - exp * (log x - log x0)``."""

    amp: str
    exp: str
    input: str

    @property
    def sampled(self) -> tuple[str, ...]:
        return (f"log_{self.amp}_ref", self.exp)

    @property
    def natural_names(self) -> tuple[str, ...]:
        return (self.amp, self.exp)

    positive = property(lambda self: frozenset({self.exp}))

    def default_priors(self, log_loss: np.ndarray, n_terms: int) -> dict:
        """Its size at x0 within a factor e^2 of an equal share of the median loss."""
        share = float(np.median(log_loss) - math.log(n_terms))
        return {f"log_{self.amp}_ref": {"dist": "Normal", "mu": share, "sigma": 2.0},
                self.exp: dict(_EXPONENT_PRIOR)}

    def log_value(self, xp, p: Mapping, z: Mapping):
        return p[f"log_{self.amp}_ref"] - p[self.exp] * z[self.input]

    def natural(self, xp, p: Mapping, ref: Mapping) -> dict:
        return {self.amp: xp.exp(p[f"log_{self.amp}_ref"] + p[self.exp] * ref[self.input]),
                self.exp: p[self.exp]}

    def sampled_from(self, theta: Mapping, ref: Mapping) -> dict:
        exp = np.asarray(theta[self.exp], float)
        return {f"log_{self.amp}_ref": np.log(np.asarray(theta[self.amp], float))
                - exp * ref[self.input], self.exp: exp}


@dataclass(frozen=True)
class Irreducible:
    """The constant term ``E`` (the loss no scale removes), sampled as ``log_E``."""

    sampled = ("log_E",)
    natural_names = ("E",)
    positive = frozenset()

    def default_priors(self, log_loss: np.ndarray, n_terms: int) -> dict:
        """``log_E ~ Normal(log(min loss / 2), 1)``: the irreducible loss sits below every run."""
        return {"log_E": {"dist": "Normal", "mu": float(log_loss.min() - math.log(2)),
                          "sigma": 1.0}}

    def log_value(self, xp, p: Mapping, z: Mapping):
        return p["log_E"]

    def natural(self, xp, p: Mapping, ref: Mapping) -> dict:
        return {"E": xp.exp(p["log_E"])}

    def sampled_from(self, theta: Mapping, ref: Mapping) -> dict:
        return {"log_E": np.log(np.asarray(theta["E"], float))}


# -- laws ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Law:
    """What every law defines; see :class:`SumLaw` and :class:`KaplanLaw`.

    ``inputs`` are the run columns it needs, ``params`` its parameters in natural units,
    ``sampled`` the (centred) parameters NUTS samples, ``positive`` those of them that must be
    positive, and ``allocation`` the compute-optimal N(C) (``None``: the law has no N/D
    trade-off). ``log_mean_sampled(xp, p, z)`` is the formula, ``natural(xp, p, ref)`` the
    natural-unit parameters and ``sampled_from(theta, ref)`` its inverse, where ``z`` holds
    ``log x - ref[x]`` per input.
    """

    name: str
    formula: str
    inputs: tuple[str, ...]

    @property
    def has_optimum(self) -> bool:
        """Whether the law trades N against D at fixed compute (so N*, D* exist)."""
        return self.allocation is not None

    allocation: Callable | None = None

    def bind(self, log_reference: Mapping) -> Law:
        """This law for a fit whose inputs are centred on ``log_reference`` (the runs'
        geometric means). Most laws do not depend on it (``self``); a law whose formula
        pivots about the runs' centre (:class:`SizedDataLaw`) takes its pivot from it."""
        return self

    def log_mean_at_rows(self, p: Mapping, z: Mapping) -> np.ndarray:
        """``log_mean_sampled(np, p, z)`` at rows (``z``: an array per input), evaluated
        once at each distinct point of the rows and read at each: the same numbers at the cost
        of the points (the log-likelihood of 100,000 simulated runs lies on 1,800). Draws
        ``p`` that differ by row (a group's parameters) are evaluated at every row."""
        rows = np.column_stack([np.asarray(z[x], dtype=float).reshape(-1) for x in self.inputs])
        if len(rows) < 2 or any(np.shape(v)[-1:] not in ((), (1,)) for v in p.values()):
            return self.log_mean_sampled(np, p, z)
        points, at = np.unique(rows, axis=0, return_inverse=True)
        mean = self.log_mean_sampled(np, p, {x: points[:, i] for i, x in enumerate(self.inputs)})
        return np.broadcast_to(mean, (*np.shape(mean)[:-1], len(points)))[..., at.reshape(-1)]

    def optimum(self, theta: Mapping, flops, *, flops_per_param_token: float = 6.0,
                slope=None) -> dict:
        """``params_opt``, ``tokens_opt``, ``tokens_per_param`` and ``loss_opt`` at ``flops``.

        ``theta`` holds the natural-unit parameters (broadcasting against ``flops``).
        ``slope`` (log loss per decade of N at fixed compute, broadcasting like ``theta``):
        the optimum of the law plus ``slope * log10(N / N_law*)``, a misfit that tilts the
        isoFLOP profile (:class:`bayescale.model.terms.Discrepancy`); found by Newton steps on
        the law's profile in log10 N (finite differences), from the law's own optimum.
        """
        if self.allocation is None:
            raise ValueError(f"law {self.name!r} ({self.formula}) has no compute-optimal "
                             "allocation: it does not trade model size against tokens")
        log_c = np.log(np.asarray(flops, float) / flops_per_param_token)
        theta = {k: np.asarray(v, float) for k, v in theta.items()}
        log_n = self.allocation(theta, log_c)
        if slope is not None:
            log_n = log_n + _LN10 * _tilted_shift(self, theta, log_c, log_n,
                                                  np.asarray(slope, float))
        log_d = log_c - log_n
        return {"params_opt": np.exp(log_n), "tokens_opt": np.exp(log_d),
                "tokens_per_param": np.exp(log_d - log_n),
                "loss_opt": mean(self, theta, {"params": np.exp(log_n), "tokens": np.exp(log_d)})}


_LN10 = math.log(10.0)
#: Finite-difference step (decades of N) and Newton steps of the tilted optimum; the shift is
#: kept within :data:`_MAX_SHIFT` decades of the law's optimum.
_STEP, _NEWTON_STEPS, _MAX_SHIFT = 0.01, 6, 3.0


def _tilted_shift(law: Law, theta: Mapping, log_c, log_n, slope) -> np.ndarray:
    """Decades ``x`` from the law's optimum ``log_n`` that minimise ``f(x) + slope * x``,
    ``f`` the law's log loss along the isoFLOP profile."""
    def profile(x):
        n = log_n + _LN10 * x
        return log_mean(law, theta, {"params": np.exp(n), "tokens": np.exp(log_c - n)})

    x = np.zeros(np.broadcast_shapes(np.shape(log_n), np.shape(slope)))
    for _ in range(_NEWTON_STEPS):
        f0, up, down = profile(x), profile(x + _STEP), profile(x - _STEP)
        grad = (up - down) / (2 * _STEP) + slope
        curv = np.maximum((up + down - 2 * f0) / _STEP ** 2, 1e-6)
        x = np.clip(x - grad / curv, -_MAX_SHIFT, _MAX_SHIFT)
    return x


@dataclass(frozen=True)
class SumLaw(Law):
    """``L = sum of terms`` (power terms and, optionally, an irreducible loss)."""

    terms: tuple = ()

    @property
    def params(self) -> tuple[str, ...]:
        """Natural-unit parameters as papers list them: E, then amplitudes, then exponents."""
        names = [n for t in self.terms for n in t.natural_names]
        return tuple(sorted(names, key=lambda n: (n != "E", n in self.positive)))

    @property
    def sampled(self) -> tuple[str, ...]:
        return tuple(n for t in self.terms for n in t.sampled)

    @property
    def positive(self) -> frozenset[str]:
        return frozenset().union(*(t.positive for t in self.terms))

    def default_priors(self, log_loss: np.ndarray) -> dict:
        out: dict = {}
        for term in self.terms:
            out |= term.default_priors(log_loss, len(self.terms))
        return out

    def log_mean_sampled(self, xp, p: Mapping, z: Mapping):
        parts = [term.log_value(xp, p, z) for term in self.terms]
        out = parts[0]
        for part in parts[1:]:
            out = xp.logaddexp(out, part)
        return out

    def natural(self, xp, p: Mapping, ref: Mapping) -> dict:
        return {k: v for t in self.terms for k, v in t.natural(xp, p, ref).items()}

    def sampled_from(self, theta: Mapping, ref: Mapping) -> dict:
        return {k: v for t in self.terms for k, v in t.sampled_from(theta, ref).items()}


@dataclass(frozen=True)
class KaplanLaw(Law):
    """Kaplan et al. (2020), eq. 1.5: ``L = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D``.

    Sampled as ``log L = alpha_D * logaddexp(log_L_N / alpha_D - (alpha_N / alpha_D) z_N,
    log_L_D / alpha_D - z_D)``: ``log_L_N`` (``log_L_D``) is the log loss the N (D) part alone
    would give at the runs' geometric-mean N0 (D0), a data-scaled quantity, so that the
    exponents and the scales ``N_c = N0 exp(log_L_N / alpha_N)``, ``D_c = D0 exp(log_L_D /
    alpha_D)`` (each ~1e13 in Kaplan's fit) are not sampled on wildly different scales.
    """

    params: tuple[str, ...] = ("N_c", "D_c", "alpha_N", "alpha_D")
    sampled: tuple[str, ...] = ("log_L_N", "log_L_D", "alpha_N", "alpha_D")
    positive: frozenset[str] = frozenset({"alpha_N", "alpha_D"})

    def default_priors(self, log_loss: np.ndarray) -> dict:
        """Each part alone ~ the median loss (within e); exponents LogNormal(log 0.1, 0.75)."""
        centre = {"dist": "Normal", "mu": float(np.median(log_loss)), "sigma": 1.0}
        exponent = {"dist": "LogNormal", "mu": math.log(0.1), "sigma": 0.75}
        return {"log_L_N": dict(centre), "log_L_D": dict(centre), "alpha_N": dict(exponent),
                "alpha_D": dict(exponent)}

    def log_mean_sampled(self, xp, p: Mapping, z: Mapping):
        a_n, a_d = p["alpha_N"], p["alpha_D"]
        return a_d * xp.logaddexp(p["log_L_N"] / a_d - a_n / a_d * z["params"],
                                  p["log_L_D"] / a_d - z["tokens"])

    def natural(self, xp, p: Mapping, ref: Mapping) -> dict:
        return {"N_c": xp.exp(ref["params"] + p["log_L_N"] / p["alpha_N"]),
                "D_c": xp.exp(ref["tokens"] + p["log_L_D"] / p["alpha_D"]),
                "alpha_N": p["alpha_N"], "alpha_D": p["alpha_D"]}

    def sampled_from(self, theta: Mapping, ref: Mapping) -> dict:
        a_n, a_d = (np.asarray(theta[k], float) for k in ("alpha_N", "alpha_D"))
        return {"log_L_N": a_n * (np.log(np.asarray(theta["N_c"], float)) - ref["params"]),
                "log_L_D": a_d * (np.log(np.asarray(theta["D_c"], float)) - ref["tokens"]),
                "alpha_N": a_n, "alpha_D": a_d}


#: Prior sd of ``gamma``, the change of log beta per e-fold of N in :class:`SizedDataLaw`:
#: over a sweep's 7-9 e-folds of N (3-4 decades) beta may change by a factor of about
#: e^(+-0.4), and gamma = 0 (the Chinchilla law) is the centre.
GAMMA_SD = 0.05


@dataclass(frozen=True)
class SizedDataLaw(Law):
    """The Chinchilla law with a data exponent that changes with model size:
    ``L = E + A N^-alpha + B D^-beta (D / D_p)^-(beta(N) - beta)``, ``beta(N) = beta (N /
    N_p)^gamma``.

    Larger models gain more from more tokens than smaller ones in several sweeps (Li et al.
    2025, "Farseer"); one exponent for every size makes a law fitted on small models flatten
    too early at large ones. ``gamma = 0`` is the Chinchilla law, and at every ``gamma`` the
    law at ``N = N_p`` is the Chinchilla law of the same ``E, A, B, alpha, beta``: they read
    as Chinchilla's. The data term's exponent turns about the pivot ``(N_p, D_p)``, which a
    fit sets to its runs' geometric means (:meth:`bind`; ``(1, 1)`` for the law alone). NUTS
    samples the data term's size at the pivot (``log_B_ref = log B - beta log D_p``), which
    stays nearly independent of ``gamma``. The compute-optimal N has no closed form: Newton
    steps on the isoFLOP profile from the Chinchilla optimum of the pivot's exponent.
    """

    params: tuple[str, ...] = ("E", "A", "B", "gamma", "alpha", "beta")
    sampled: tuple[str, ...] = ("log_E", "log_A_ref", "log_B_ref", "alpha", "beta", "gamma")
    positive: frozenset[str] = frozenset({"alpha", "beta"})
    #: ``(log N_p, log D_p)``, natural logs.
    pivot: tuple[float, float] = (0.0, 0.0)

    def bind(self, log_reference: Mapping) -> SizedDataLaw:
        pivot = (float(log_reference["params"]), float(log_reference["tokens"]))
        return replace(self, pivot=pivot, allocation=partial(_sized_allocation, pivot=pivot))

    def default_priors(self, log_loss: np.ndarray) -> dict:
        """E, A, alpha, B and beta as the Chinchilla law's terms; ``gamma ~ Normal(0,
        GAMMA_SD)``."""
        out: dict = {}
        for term in _SIZED_TERMS:
            out |= term.default_priors(log_loss, len(_SIZED_TERMS))
        return out | {"gamma": {"dist": "Normal", "mu": 0.0, "sigma": GAMMA_SD}}

    @staticmethod
    def log_data_term(xp, log_b, beta, gamma, z_n, z_d):
        """``log B - beta exp(gamma z_n) z_d`` (``z``: log N, log D less the pivot's)."""
        return log_b - beta * xp.exp(gamma * z_n) * z_d

    def log_mean_sampled(self, xp, p: Mapping, z: Mapping):
        # a frame centred elsewhere than the pivot carries the pivot's offset (sampled_from)
        z_n = z["params"] - p.get("pivot_params", 0.0)
        z_d = z["tokens"] - p.get("pivot_tokens", 0.0)
        data = self.log_data_term(xp, p["log_B_ref"], p["beta"], p["gamma"], z_n, z_d)
        e, n = _SIZED_TERMS[0].log_value(xp, p, z), _SIZED_TERMS[1].log_value(xp, p, z)
        return xp.logaddexp(xp.logaddexp(e, n), data)

    def natural(self, xp, p: Mapping, ref: Mapping) -> dict:
        e, n = _SIZED_TERMS[0].natural(xp, p, ref), _SIZED_TERMS[1].natural(xp, p, ref)
        return e | {"A": n["A"], "B": xp.exp(p["log_B_ref"] + p["beta"] * self.pivot[1]),
                    "gamma": p["gamma"], "alpha": p["alpha"], "beta": p["beta"]}

    def sampled_from(self, theta: Mapping, ref: Mapping) -> dict:
        out = {k: v for t in _SIZED_TERMS[:2] for k, v in t.sampled_from(theta, ref).items()}
        beta = np.asarray(theta["beta"], float)
        return out | {"log_B_ref": np.log(np.asarray(theta["B"], float)) - beta * self.pivot[1],
                      "beta": beta,
                      "gamma": np.asarray(theta["gamma"], float),
                      "pivot_params": self.pivot[0] - ref["params"],
                      "pivot_tokens": self.pivot[1] - ref["tokens"]}


#: The Chinchilla terms :class:`SizedDataLaw` keeps as they are (E, the N term) and the data
#: term whose priors it keeps (its formula turns about the pivot instead).
_SIZED_TERMS = (Irreducible(), Power("A", "alpha", "params"), Power("B", "beta", "tokens"))

#: Newton steps (and the largest step, in e-folds of N) of :class:`SizedDataLaw`'s optimum.
_SIZED_STEPS, _SIZED_MAX_STEP, _SIZED_H = 12, 1.0, 0.01


def _sized_allocation(theta: Mapping, log_c, pivot=(0.0, 0.0)):
    """log N* of :class:`SizedDataLaw` at ``C / k = N D``: Newton steps (finite differences)
    on the log loss along the isoFLOP profile in log N, from the Chinchilla optimum of the
    same E, A, B, alpha, beta (the law at ``N = N_p``)."""
    alpha, beta, gamma = theta["alpha"], theta["beta"], theta["gamma"]
    log_n_p, log_d_p = pivot
    log_e, log_a = np.log(theta["E"]), np.log(theta["A"])
    log_b = np.log(theta["B"]) - beta * log_d_p  # the data term at the pivot

    def profile(n):
        data = SizedDataLaw.log_data_term(np, log_b, beta, gamma, n - log_n_p,
                                          log_c - n - log_d_p)
        return np.logaddexp(np.logaddexp(log_e, log_a - alpha * n), data)

    n = _chinchilla_allocation({"alpha": alpha, "beta": beta, "A": theta["A"],
                                "B": theta["B"]}, log_c)
    h = _SIZED_H
    for _ in range(_SIZED_STEPS):
        f0, up, down = profile(n), profile(n + h), profile(n - h)
        grad, curv = (up - down) / (2 * h), (up + down - 2 * f0) / h ** 2
        step = np.where(curv > 1e-9, -grad / np.maximum(curv, 1e-9), -np.sign(grad))
        n = n + np.clip(step, -_SIZED_MAX_STEP, _SIZED_MAX_STEP)
    return n


def _chinchilla_allocation(theta: Mapping, log_c):
    """log N* of ``E + A N^-alpha + B D^-beta`` at ``C / k = N D`` (Hoffmann et al. eq. 4):
    ``N* = G (C/k)^(beta/(alpha+beta))``, ``G = (alpha A / (beta B))^(1/(alpha+beta))``."""
    alpha, beta = theta["alpha"], theta["beta"]
    log_g = (np.log(alpha * theta["A"]) - np.log(beta * theta["B"])) / (alpha + beta)
    return log_g + beta / (alpha + beta) * log_c


def _kaplan_allocation(theta: Mapping, log_c):
    """log N* of Kaplan's law at ``C / k = N D``: setting d/dN of ``(N_c/N)^r + D_c N k / C``
    to zero (``r = alpha_N / alpha_D``) gives ``N*^(r+1) = r N_c^r (C/k) / D_c``."""
    r = theta["alpha_N"] / theta["alpha_D"]
    return (np.log(r) + r * np.log(theta["N_c"]) + log_c - np.log(theta["D_c"])) / (r + 1)


#: The laws bayescale knows, by name (add one with :func:`register_law`).
LAWS: dict[str, Law] = {}


def register_law(law: Law) -> Law:
    """Make ``law`` known by its name to :func:`get_law`, ScalingLaw, recipes and the CLI."""
    LAWS[law.name] = law
    return law


for _law in (
    SumLaw("chinchilla", "L = E + A * N^-alpha + B * D^-beta", ("params", "tokens"),
           _chinchilla_allocation,
           terms=(Power("A", "alpha", "params"), Power("B", "beta", "tokens"), Irreducible())),
    SumLaw("flops", "L = E + A * C^-alpha", ("flops",),
           terms=(Power("A", "alpha", "flops"), Irreducible())),
    SumLaw("flops_pure", "L = A * C^-alpha  (no irreducible loss, E = 0)", ("flops",),
           terms=(Power("A", "alpha", "flops"),)),
    KaplanLaw("kaplan", "L = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D",
              ("params", "tokens"), _kaplan_allocation),
    SizedDataLaw("chinchilla_sized",
                 "L = E + A * N^-alpha + B * D^-beta * (D / D_p)^-(beta(N) - beta), "
                 "beta(N) = beta * (N / N_p)^gamma",
                 ("params", "tokens"), partial(_sized_allocation, pivot=(0.0, 0.0))),
):
    register_law(_law)


#: The law of a scaling law whose ``law`` is not given: the one the out-of-study benchmark
#: selected (benchmarks/RESULTS.md, "The default law, and the discrepancy without its bias").
#: It is the Chinchilla law where its data exponent does not change with model size
#: (``gamma = 0``, the prior's centre).
DEFAULT_LAW = "chinchilla_sized"


def get_law(name: str) -> Law:
    """The :class:`Law` called ``name``; ValueError naming the known laws otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"law must be a str, got {name!r}")
    if name not in LAWS:
        raise ValueError(f"unknown law {name!r}; known laws are {list(LAWS)}")
    return LAWS[name]


def log_mean(law: Law | str, theta: dict, inputs: dict) -> np.ndarray:
    """``log mu`` of ``law`` for natural-unit parameters ``theta`` and inputs.

    >>> float(np.exp(log_mean("flops", {"E": 1.0, "A": 10.0, "alpha": 0.5}, {"flops": 100.0})))
    2.0
    """
    law = get_law(law) if isinstance(law, str) else law
    ref = {x: 0.0 for x in law.inputs}
    z = {x: np.log(np.asarray(inputs[x], float)) for x in law.inputs}
    return law.log_mean_sampled(np, law.sampled_from(theta, ref), z)


def mean(law: Law | str, theta: dict, inputs: dict) -> np.ndarray:
    """The mean loss ``mu`` of ``law`` (see :func:`log_mean`)."""
    return np.exp(log_mean(law, theta, inputs))


def compute_optimal(theta: dict, flops, *, flops_per_param_token: float = 6.0) -> dict:
    """Compute-optimal allocation of the Chinchilla law at compute ``flops``.

    ``N* = G (C/k)^(beta/(alpha+beta))``, ``D* = (C/k) / N*`` with
    ``G = (alpha A / (beta B))^(1/(alpha+beta))`` (Hoffmann et al. 2022, eq. 4); the same as
    ``get_law("chinchilla").optimum(theta, flops)``.

    Returns a dict with ``params_opt``, ``tokens_opt``, ``tokens_per_param`` and ``loss_opt``,
    broadcast over ``theta`` and ``flops``.
    """
    return LAWS["chinchilla"].optimum(theta, flops, flops_per_param_token=flops_per_param_token)
