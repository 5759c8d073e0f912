"""Functional forms of scaling laws, in NumPy only (no sampler needed).

Each law maps inputs (``flops``, or ``params`` and ``tokens``) and parameters to the mean loss
``mu``. The functions broadcast, so that a posterior's draws (shape ``(chain, draw, 1)``) and a
grid of points (shape ``(point,)``) combine into ``(chain, draw, point)``. They work in log space
with :func:`numpy.logaddexp` so that huge ``N`` or ``C`` never overflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Law", "LAWS", "get_law", "log_mean", "mean", "compute_optimal"]


@dataclass(frozen=True)
class Law:
    """A functional form: its name, formula, the run columns it needs and its parameters."""

    name: str
    formula: str
    inputs: tuple[str, ...]
    params: tuple[str, ...]
    #: (amplitude, exponent, input) for each power-law term
    terms: tuple[tuple[str, str, str], ...]
    irreducible: bool


#: The laws bayescale knows, by name.
LAWS: dict[str, Law] = {
    law.name: law
    for law in (
        Law("chinchilla", "L = E + A * N^-alpha + B * D^-beta", ("params", "tokens"),
            ("E", "A", "B", "alpha", "beta"),
            (("A", "alpha", "params"), ("B", "beta", "tokens")), True),
        Law("flops", "L = E + A * C^-alpha", ("flops",), ("E", "A", "alpha"),
            (("A", "alpha", "flops"),), True),
        Law("flops_pure", "L = A * C^-alpha  (no irreducible loss, E = 0)", ("flops",),
            ("A", "alpha"), (("A", "alpha", "flops"),), False),
    )
}


def get_law(name: str) -> Law:
    """The :class:`Law` called ``name``; ValueError naming the known laws otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"law must be a str, got {name!r}")
    if name not in LAWS:
        raise ValueError(f"unknown law {name!r}; known laws are {list(LAWS)}")
    return LAWS[name]


def log_mean(law: Law | str, theta: dict, inputs: dict) -> np.ndarray:
    """``log mu`` of ``law`` for parameters ``theta`` and inputs (``params``/``tokens``/``flops``).

    >>> float(np.exp(log_mean("flops", {"E": 1.0, "A": 10.0, "alpha": 0.5}, {"flops": 100.0})))
    2.0
    """
    law = get_law(law) if isinstance(law, str) else law
    parts = [np.log(np.asarray(theta[amp], float)) - np.asarray(theta[exp], float)
             * np.log(np.asarray(inputs[x], float)) for amp, exp, x in law.terms]
    if law.irreducible:
        parts.append(np.log(np.asarray(theta["E"], float)))
    out = parts[0]
    for part in parts[1:]:
        out = np.logaddexp(out, part)
    return out


def mean(law: Law | str, theta: dict, inputs: dict) -> np.ndarray:
    """The mean loss ``mu`` of ``law`` (see :func:`log_mean`)."""
    return np.exp(log_mean(law, theta, inputs))


def compute_optimal(theta: dict, flops, *, flops_per_param_token: float = 6.0) -> dict:
    """Compute-optimal allocation of the Chinchilla law at compute ``flops``.

    Minimising ``E + A N^-alpha + B D^-beta`` subject to ``C = k N D`` gives
    ``N* = G (C/k)^(beta/(alpha+beta))``, ``D* = (C/k) / N*`` with
    ``G = (alpha A / (beta B))^(1/(alpha+beta))`` (Hoffmann et al. 2022, eq. 4).

    Returns a dict with ``params_opt``, ``tokens_opt``, ``tokens_per_param`` and ``loss_opt``,
    broadcast over ``theta`` and ``flops``.
    """
    A, B = np.asarray(theta["A"], float), np.asarray(theta["B"], float)
    alpha, beta = np.asarray(theta["alpha"], float), np.asarray(theta["beta"], float)
    log_c = np.log(np.asarray(flops, float) / flops_per_param_token)
    log_g = (np.log(alpha * A) - np.log(beta * B)) / (alpha + beta)
    log_n = log_g + beta / (alpha + beta) * log_c
    log_d = log_c - log_n
    inputs = {"params": np.exp(log_n), "tokens": np.exp(log_d)}
    return {
        "params_opt": np.exp(log_n),
        "tokens_opt": np.exp(log_d),
        "tokens_per_param": np.exp(log_d - log_n),
        "loss_opt": mean("chinchilla", theta, inputs),
    }
