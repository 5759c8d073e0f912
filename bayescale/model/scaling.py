"""ScalingLaw: the PyMC model of a run table under a law, with latent hyperparameter offsets.

For run i with hyperparameter levels h(i)::

    log L_i = log mu(N_i, D_i, C_i; theta) + sum_k u_k[h_k(i)]
              + sum_h kappa_h (log x_h(i) - log x_h*(C_i))^2 + eps_i
    u_k     ~ ZeroSumNormal(tau_k)                        (partial pooling, sum_j u_k[j] = 0)
    log x_h*(C) = m_h + g_h (log C - log C0)              (the optimum moves with compute)
    eps_i   ~ StudentT(nu, 0, sigma)  (or Normal(0, sigma) with noise="normal"; with
              noise="skewed", Normal(0, sigma) + Exponential(mean shortfall))

``u_k`` are the latent offsets of categorical hyperparameters (``offsets=``); the quadratic
penalty is for continuous ones whose best value moves with scale (``continuous=``, e.g. the
learning rate), with the optimum's scaling law learned jointly with the loss law.

The offsets of a column sum to zero over its levels. A common shift of all of them is the same
as a shift of the law's level, which the likelihood cannot tell apart; Normal(0, tau) offsets
leave that ridge to the prior and NUTS crawls along it. With the sum fixed, the law describes
the average of the observed levels, and a new level's offset is drawn with sd
``tau * sqrt(1 + 1/k)`` (k levels): the DESIGN model's ``u ~ Normal(0, tau)`` seen from the
observed levels' mean, so predictions are those of the unconstrained model. The offsets of a
column whose every level has at least :data:`CENTRED_MIN_RUNS` runs are sampled centred (the
data pin each level, and ``u = tau * z`` would tie ``z`` to ``tau``); the others non-centred
(``u = tau * z``, ``z ~ ZeroSumNormal(1)``), where the prior dominates.

Each power-law term ``A * X^-alpha`` is sampled as ``log_A_ref - alpha * (log X - log X0)``,
where ``X0`` is the geometric mean of X over the runs: centring makes the amplitude and the
exponent nearly independent, which is what lets NUTS move freely. ``A`` itself is recorded as
a deterministic, ``A = exp(log_A_ref + alpha * log X0)``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pandas as pd

from bayescale.data import lazy
from bayescale.model import laws as _laws
from bayescale.model import priors as _priors
from bayescale.model.laws import DEFAULT_LAW, Law, get_law
from bayescale.data.runs import (check_duplicates, check_loss_varies, check_positive_column,
                                 check_table, plain, require_columns, run_flops,
                                 with_float_columns)
from bayescale.model.family import NOISES, Family
from bayescale.model.groups import LawGroups, law_groups
from bayescale.model.points import points_table
from bayescale.model.profiles import MIN_PROFILES, allocation_shift, profile_optima
from bayescale.inference.sampling import SAMPLERS
from bayescale.model.spec import ScalingLawSpec
from bayescale.model.terms import ContinuousOptimum, Offsets, law_at_points
from bayescale.model.discrepancy import LEARNED, discrepancy_draws

pm = lazy.module("pymc")
pt = lazy.module("pytensor.tensor")

__all__ = ["ScalingLaw", "NOISES", "SAMPLERS"]

#: Offsets whose every level has at least this many runs are sampled centred (see above).
CENTRED_MIN_RUNS = 20


class ScalingLaw(Family):
    """A Bayesian scaling law for a table of training runs.

    Parameters
    ----------
    runs
        A run table (see :func:`bayescale.prepare`): the columns the law needs (``params`` and
        ``tokens`` for ``chinchilla``, ``flops`` for ``flops``) and ``loss``.
    law
        ``"chinchilla_sized"`` (default: the Chinchilla law with a data exponent ``beta (N /
        N_p)^gamma`` that may change with model size, ``gamma ~ Normal(0, 0.05)``; at
        ``gamma = 0`` and at ``N = N_p``, the runs' centre, it is the Chinchilla law of the
        same E, A, B, alpha, beta), ``"chinchilla"`` (E + A N^-alpha + B D^-beta),
        ``"flops"`` (E + A C^-alpha), ``"flops_pure"`` (A C^-alpha) or ``"kaplan"``; see
        :data:`bayescale.model.laws.LAWS` and :data:`bayescale.model.laws.DEFAULT_LAW`.
    offsets
        Columns of categorical hyperparameters (batch size, learning rate, ...) that get a
        latent offset on log loss per level, pooled with scale ``<column>_tau``; a column's
        offsets sum to zero, so the law is that of the average observed level.
    continuous
        Columns of positive continuous hyperparameters (learning rate, batch size, aspect
        ratio) whose best value may move with compute: each adds
        ``<col>_kappa * (log x - <col>_opt_ref - <col>_opt_slope * (log C - log C0))^2`` to the
        log loss, so the posterior holds the optimum's scaling law ``x*(C)``.
    priors
        Overrides of the default priors by name, each ``{"dist": <PyMC name>, **parameters}``.
        :meth:`default_priors` lists the names and the data-scaled defaults.
    noise
        ``"student_t"`` (robust, default), ``"normal"`` or ``"skewed"``: the distribution of
        log-loss noise. ``"skewed"`` is Normal seed noise plus an exponential ``shortfall``
        (ExGaussian): a run can miss the law upward when it is under-tuned (learning rate,
        schedule, shape), never much downward, so the law (``kind="mean"``) is fitted to the
        well-tuned edge of the runs, and a new run (``kind="new_run"``) is a run like the
        fitted ones: seed noise plus the shortfall they showed.
    group, group_params
        A run column (dataset, architecture, tokenizer, optimizer, study) whose levels get
        their own values of the law parameters ``group_params`` names (natural or sampled
        names: ``["E", "alpha", "beta"]``; ``"sigma"`` for a noise scale per level), partially
        pooled about the population, the law of
        the average observed level (:mod:`bayescale.model.groups`); a level the fit has not
        seen is drawn from the population. :func:`bayescale.model.groups.group_draws` gives
        the answers between levels (loss, N*, D*, the compute multiplier).
    group_centred
        How the levels' deviations are sampled: ``None`` (default) centred when every level
        holds at least :data:`CENTRED_MIN_RUNS` runs, else non-centred; ``True`` or ``False``
        forces it. Non-centred suits levels whose runs pin their law only loosely, where the
        spread between levels may be near 0 (divergences in the lowest quarter of a
        ``<group>_<param>_tau`` say so); centred suits levels each pinned by its runs.
    discrepancy
        The law's misfit past the runs (:class:`bayescale.model.terms.Discrepancy`: ``d * s *
        z`` on log loss, ``d`` the decades from the nearest run, zero on the runs).
        ``"backtest"`` (default): the scale ``s`` is learned from backtests of this sweep
        (fits below 0.5 and 1 decade under the largest budget predicting the runs above: two
        more fits) under its prior ``discrepancy_scale`` (by default learned from real
        sweeps); ``"prior"``: from that prior alone (no extra fit); ``"off"``: the law taken
        as exact past the data. A bias per decade, ``d * (b + s * z)``, is learned too when
        ``priors`` give ``discrepancy_bias`` a prior (none by default).

    Raises
    ------
    TypeError, ValueError
        For a run table, law, offset column, prior or noise that cannot be used; the message
        names the argument or column and the value.

    Examples
    --------
    >>> import bayescale as bs
    >>> model = bs.ScalingLaw(bs.datasets.load("chinchilla"), law="chinchilla")
    >>> sorted(model.priors)  # doctest: +NORMALIZE_WHITESPACE
    ['alpha', 'beta', 'discrepancy_scale', 'log_A_ref', 'log_B_ref', 'log_E', 'nu', 'sigma']
    """

    def __init__(self, runs: pd.DataFrame, *, law: str = DEFAULT_LAW,
                 offsets: Sequence[str] | None = None,
                 continuous: Sequence[str] | None = None, priors: dict | None = None,
                 noise: str = "student_t", discrepancy: str = "backtest",
                 group: str | None = None, group_params: Sequence[str] | None = None,
                 group_centred: bool | None = None) -> None:
        self.law: Law = get_law(law)
        self._set_options(noise, discrepancy)
        self.runs = _check_runs(runs, self.law)
        self.offsets = _check_offsets(self.runs, offsets)
        self.levels = {col: _levels(self.runs[col]) for col in self.offsets}
        self.centred = tuple(col for col in self.offsets
                             if self.runs[col].value_counts().min() >= CENTRED_MIN_RUNS)
        self.continuous = _check_continuous(self.runs, continuous, self.offsets)
        self.group_params = list(group_params or [])
        self.group_centred = group_centred
        self.groups = _check_groups(self.runs, self.law, group, group_params,
                                    (*self.offsets, *self.continuous), group_centred)
        used = {*self.law.inputs, *self.continuous} | ({"flops"} if self.continuous else set())
        self.log_reference = {x: float(np.mean(np.log(self.runs[x]))) for x in sorted(used)}
        self.law = self.law.bind(self.log_reference)  # a law pivoting about the runs' centre
        self.priors = self._checked_priors(priors)
        self.user_priors = dict(priors or {})

    family = "scaling_law"
    spec_class = ScalingLawSpec

    @classmethod
    def variants(cls) -> list[dict]:
        """Every law with the law taken as exact, and a law in N and D and one in compute
        with the discrepancy."""
        laws = _laws.LAWS
        return [*({"law": name, "discrepancy": "off"} for name in laws),
                {"law": "chinchilla", "discrepancy": "prior"},
                {"law": "flops", "discrepancy": "prior"},
                {"law": "chinchilla", "discrepancy": "prior", "group": "setup",
                 "group_params": ["E", "alpha"]}]

    @classmethod
    def example(cls, **options) -> ScalingLaw:
        """A simulated sweep of 6 budgets (1e17-1e20 FLOPs) x 5 sizes about the compute-optimal
        N of a Chinchilla law (E = 1.8, A = 400, B = 2000, alpha = 0.34, beta = 0.36), 2% noise
        on the loss (seed 0); a ``setup`` column splits it into two levels (``a``, ``b``) of
        the same law."""
        from bayescale.data.runs import prepare

        rng = np.random.default_rng(0)
        budgets = np.repeat(np.geomspace(1e17, 1e20, 6), 5)
        params = np.sqrt(budgets / 120.0) * np.tile(np.geomspace(1 / 4, 4, 5), 6)
        tokens = budgets / (6 * params)
        loss = _laws.mean("chinchilla", {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34,
                                         "beta": 0.36}, {"params": params, "tokens": tokens})
        runs = prepare(pd.DataFrame({"params": params, "tokens": tokens,
                                     "loss": loss * np.exp(0.02 * rng.standard_normal(30)),
                                     "setup": np.tile(["a", "b"], 15)}))
        return cls(runs, **options)
    #: whether a new level's offset is seen from the observed levels' mean (sd tau sqrt(1 +
    #: 1/k)); False only when answering for a bayescale 0.1 fit made before offsets summed to 0
    offsets_sum_to_zero = True

    def answer_as(self, spec) -> ScalingLaw:
        self.offsets_sum_to_zero = bool(spec.get("offsets_sum_to_zero", True))
        return self

    @staticmethod
    def options(spec) -> dict:
        """The constructor keywords recorded in a scaling-law spec."""
        out = {"law": spec["law"], "offsets": list(spec.get("offsets") or []) or None,
               "continuous": list(spec.get("continuous") or []) or None,
               "priors": dict(spec.get("user_priors") or {}) or None,
               "noise": spec.get("noise", "student_t"),
               "discrepancy": spec.get("discrepancy", "off")}
        if spec.get("group"):
            out |= {"group": spec["group"], "group_params": list(spec["group_params"]),
                    "group_centred": spec.get("group_centred")}
        return out

    # -- structure ---------------------------------------------------------------------------
    def default_priors(self) -> dict[str, dict]:
        """The default priors, scaled to this run table.

        - the law's own (see :mod:`bayescale.model.laws`): for a sum law ``log_E ~ Normal(log(min
          loss / 2), 1)``, each term's size at the runs' geometric-mean N, D or C
          ``~ Normal(log(median loss / number of terms), 2)`` and exponents
          ``~ LogNormal(log 0.3, 0.75)`` (90% prior mass in 0.09-1.0).
        - ``sigma ~ HalfNormal(sd of log loss)``; ``nu ~ Gamma(2, 0.1)`` (Juarez & Steel 2010).
        - each hyperparameter term's (see :mod:`bayescale.model.terms`): ``<offset>_tau ~
          HalfNormal(0.1)``; ``<col>_kappa ~ HalfNormal(0.1)``, ``<col>_opt_ref ~ Normal(mean
          log x, 2 sd log x + 0.5)``, ``<col>_opt_slope ~ Normal(0, 0.5)``.
        - with a discrepancy, ``discrepancy_scale`` (log loss per decade past the runs):
          :data:`bayescale.model.discrepancy.DEFAULT_SCALE_PRIOR`, and ``discrepancy_bias``
          (its mean per decade): :data:`bayescale.model.discrepancy.DEFAULT_BIAS_PRIOR`.
        """
        log_loss = np.log(self.runs["loss"].to_numpy())
        out = self.law.default_priors(log_loss) | self._noise_priors(np.std(log_loss))
        for term in self.terms:
            out |= term.default_priors(self.runs)
        if self.groups is not None:
            out |= self.groups.default_priors()
        return out | self._discrepancy_priors()

    @property
    def terms(self) -> tuple:
        """The hyperparameter terms: offsets first, then continuous optima."""
        return (*(Offsets(c, tuple(self.levels[c]), c in self.centred, self.offsets_sum_to_zero)
                  for c in self.offsets),
                *(ContinuousOptimum(c, self.log_reference.get("flops", 0.0))
                  for c in self.continuous))

    def _positive(self) -> frozenset[str]:
        groups = self.groups.positive if self.groups is not None else frozenset()
        return super()._positive() | self.law.positive | groups

    @property
    def spec(self) -> ScalingLawSpec:
        """The model's full specification (typed, JSON-serialisable): travels with every fit."""
        return ScalingLawSpec(
            law=self.law.name, noise=self.noise, offsets=list(self.offsets),
            continuous=list(self.continuous),
            levels={col: [plain(v) for v in lv] for col, lv in self.levels.items()},
            centred_offsets=list(self.centred), priors=self.priors,
            user_priors=self.user_priors, log_reference=self.log_reference,
            flops_per_param_token=self.flops_per_param_token, discrepancy=self.discrepancy,
            **({"group": self.groups.column, "group_params": list(self.group_params),
                "group_levels": [plain(v) for v in self.groups.levels],
                "group_centred": self.group_centred}
               if self.groups is not None else {}))

    #: Every value the graph takes from the run table (inputs, references, the data-scaled
    #: priors' parameters, offset levels, the observed losses) is held in a few ``pm.Data``
    #: containers, so that one compiled model serves every run table of the same structure
    #: (:meth:`compile_key`): the backtests reuse the sweep's compilation. A family whose
    #: graph holds other constants sets this False and compiles per run table.
    graph_from_data: ClassVar[bool] = True
    #: The ``pm.Data`` of the graph's scalars (the priors' parameters in
    #: :meth:`_prior_parameters` order, then the references ``log x0`` of the centred
    #: columns) and of the centred columns at the runs (one row per column): two containers
    #: besides the losses and one per hyperparameter column, because nutpie's compilation
    #: takes longer with each (about 0.3 s).
    SCALAR_DATA, CENTRED_DATA = "graph_scalars", "log_centred"

    def compile_key(self) -> str:
        """A hash of the graph's structure: the law, the noise, the hyperparameter terms and
        their number of levels, each prior's distribution; not the values the run table
        gives it (:attr:`graph_from_data`), which :meth:`fit` swaps into a compilation of
        the same structure."""
        if not self.graph_from_data:
            return super().compile_key()
        structure = {"family": self.family, "law": self.law.name, "noise": self.noise,
                     "offsets": {c: len(self.levels[c]) for c in self.offsets},
                     "centred": list(self.centred), "continuous": list(self.continuous),
                     "groups": None if self.groups is None else
                     [self.groups.column, len(self.groups.levels), list(self.groups.grouped),
                      self.groups.centred],
                     "priors": [[name, spec["dist"], key] for name, spec, key, _
                                in self._prior_parameters()]}
        return hashlib.sha256(json.dumps(structure, sort_keys=True).encode()).hexdigest()

    def _prior_parameters(self) -> list[tuple[str, dict, str, float]]:
        """(name, prior, parameter, value) of every prior parameter in the graph (the
        discrepancy's priors are not: it is learned after the fit)."""
        return [(name, spec, key, float(value)) for name, spec in sorted(self.priors.items())
                if name not in LEARNED for key, value in spec.items() if key != "dist"]

    def _centred_columns(self) -> list[str]:
        """The columns the graph takes centred on their log reference: the law's inputs, and
        compute where continuous hyperparameters' optima move with it."""
        extra = ["flops"] if self.continuous and "flops" not in self.law.inputs else []
        return [*self.law.inputs, *extra]

    def _coords(self) -> dict:
        groups = {} if self.groups is None else {self.groups.column: list(self.groups.levels)}
        return ({"run": _run_coords(self.runs.index)} | {c: lv for c, lv in self.levels.items()}
                | groups)

    def _mean_graph(self):
        """The law at the runs: its inputs centred on their references, held with the priors'
        parameters in the ``pm.Data`` containers of :attr:`graph_from_data`."""
        runs, law, columns = self.runs, self.law, self._centred_columns()
        given = [v for *_, v in self._prior_parameters()] if self.graph_from_data else []
        scalars = pm.Data(self.SCALAR_DATA, [*given, *(self.log_reference[x] for x in columns)])
        values = np.stack([np.log(runs[x].to_numpy(dtype=float)) - self.log_reference[x]
                           for x in columns])
        centred = pm.Data(self.CENTRED_DATA, values)
        self._columns = {x: (scalars[len(given) + i], centred[i]) for i, x in enumerate(columns)}
        p = self._law_parameters()
        ref = {x: self._columns[x][0] for x in law.inputs}
        for name, value in law.natural(pt, p, ref).items():
            if name not in p:
                pm.Deterministic(name, value)
        if self.groups is not None:  # each run's level's parameters
            p = self.groups.graph(self, p)
            return law.log_mean_sampled(pt, p, {x: self._columns[x][1] for x in law.inputs})
        return law_at_points(law, p, values[:len(law.inputs)])  # without groups

    def graph_column(self, name: str):
        """Column ``name`` at the runs, centred on its log reference, in the graph (the law's
        inputs, and compute where continuous optima move with it)."""
        return self._columns[name][1]

    def prior(self, name: str, **kwargs):
        """Variable ``name`` under its prior (inside the model context), the prior's
        parameters read from the ``pm.Data`` :data:`SCALAR_DATA` where the graph is built
        from data (:attr:`graph_from_data`)."""
        spec = self.priors[name]
        if not self.graph_from_data:
            return _priors.create(name, spec, **kwargs)
        data = pm.modelcontext(None)[self.SCALAR_DATA]
        at = {(n, key): i for i, (n, _, key, _) in enumerate(self._prior_parameters())}
        return _priors.create(name, {"dist": spec["dist"]} | {
            key: data[at[name, key]] for key in spec if key != "dist"}, **kwargs)

    def _law_parameters(self) -> dict:
        """The law's sampled parameters in the graph (a family may sample them otherwise)."""
        return {name: self.prior(name) for name in self.law.sampled}

    # -- answers from draws (the same terms as the graph, on NumPy arrays) ------------------
    @property
    def theta_names(self) -> tuple[str, ...]:
        return self.law.params

    def points(self, points) -> pd.DataFrame:
        return points_table(points, self.law.inputs, self.flops_per_param_token,
                            why=f"law {self.law.name!r}")

    def mean_draws(self, posterior, table: pd.DataFrame, rng) -> np.ndarray:
        """The law's log mean per draw and row of ``table``."""
        p = {k: posterior[k].values[..., None] for k in self.law.sampled}
        if self.groups is not None:
            p = self.groups.draws(posterior, p, table, rng)
        z = {x: np.log(table[x].to_numpy(dtype=float)) - self.log_reference[x]
             for x in self.law.inputs}
        return self.law.log_mean_at_rows(p, z)  # each distinct point once

    def law_theta(self, posterior, *, level=None, rng=None) -> dict[str, np.ndarray]:
        """The law's natural-unit parameters per draw, shape (chain, draw, 1): the
        population's (``level`` None: the average observed level of a group column), or a
        level's (a level the fit has not seen: a fresh draw from the population, by ``rng``)."""
        if level is None or self.groups is None:
            return {k: posterior[k].values[..., None] for k in self.law.params}
        p = {k: posterior[k].values[..., None] for k in self.law.sampled}
        rng = np.random.default_rng(0) if rng is None else rng
        p = self.groups.apply(np, p, self.groups.deviations(
            posterior, self.groups.index([level]), rng))
        ref = {x: self.log_reference[x] for x in self.law.inputs}
        return {k: np.asarray(v) for k, v in self.law.natural(np, p, ref).items()}

    @property
    def tilts(self) -> bool:
        return self.law.has_optimum

    def _run_sigma(self, sigma):
        """With ``sigma`` grouped, each run's level's noise scale."""
        if self.groups is None or not self.groups.noise:
            return sigma
        return self.groups.run_sigma(self, sigma)

    def noise_model(self, posterior, table=None):
        """The noise (:meth:`bayescale.model.family.Family.noise_model`); with ``sigma``
        grouped, each row's level's scale (a new level's, or a table without the column: the
        population's)."""
        noise = super().noise_model(posterior, table)
        if self.groups is None or not self.groups.noise:
            return noise
        factor = self.groups.sigma_factor(posterior, table)
        return type(noise)(noise.sigma * factor, noise.nu, noise.shortfall)

    def discrepancy_distance(self, points) -> np.ndarray | float:
        """Decades from the nearest run; with a group column, from the nearest run of the
        point's own level (another level's runs at that scale check the shared law, not this
        level's deviations from it); a level the fit has not seen, from any run."""
        out = super().discrepancy_distance(points)
        if self.groups is None or self.groups.column not in points:
            return out
        column, term = self.groups.column, self.discrepancy_term
        out = np.array(out, dtype=float)
        values = np.asarray(points[column])
        for level in self.groups.levels:
            mask = values == level
            if mask.any():
                own = self.runs[self.runs[column] == level]
                sub = {c: np.asarray(points[c])[mask] for c in term.columns if c in points}
                out[mask] = term.distance(sub, term.ranges(own))
        return out

    def _across(self, posterior, points) -> np.ndarray | float:
        """Decades of N from the law's compute-optimal size at each point's compute, per
        draw: where the tilt of the discrepancy acts (0 for a law without an allocation, a
        point without a size, or a fit without the tilt)."""
        if (not self.law.has_optimum or "discrepancy_tilt" not in posterior
                or "params" not in points):
            return 0.0
        n = np.asarray(points["params"], dtype=float)
        flops = (np.asarray(points["flops"], dtype=float) if "flops" in points
                 else self.flops_per_param_token * n * np.asarray(points["tokens"], float))
        theta = {k: posterior[k].values[..., None] for k in self.law.params}
        log_n_opt = self.law.allocation(theta, np.log(flops / self.flops_per_param_token))
        return (np.log(n) - log_n_opt) / math.log(10)

    @property
    def has_optimum(self) -> bool:
        return self.law.has_optimum

    def optimal(self, posterior, budgets: np.ndarray, rng, *,
                level=None) -> dict[str, np.ndarray]:
        """N*, D*, D*/N* and the loss at the optimum per draw and budget. With the
        discrepancy's tilt, N* is the optimum of the law plus the misfit's slope across sizes
        at the law's own optimum (``d s t`` per decade of N, :meth:`bayescale.model.laws.Law.
        optimum`), so past the runs N* is as uncertain as the law's shape there. Where the runs
        hold isoFLOP profiles, N* also moves by the drift of the profiles' own minima from the
        law's N* (:mod:`bayescale.model.profiles`); the loss at the optimum stays the law's
        minimum. With a group column, ``level`` picks a level's law (the population's
        without), and the profiles are that level's runs' (none for the population)."""
        theta = self.law_theta(posterior, level=level, rng=rng)
        k = self.flops_per_param_token
        log_c = np.log(np.asarray(budgets, float) / k)
        slope = None
        if "discrepancy_tilt" in posterior:  # the tilt's distance, at the law's own N*
            log_n = self.law.allocation(theta, log_c)
            draws = discrepancy_draws(posterior)
            d = self.discrepancy_distance(self._at_level(
                {"params": np.exp(log_n), "tokens": np.exp(log_c - log_n),
                 "flops": np.broadcast_to(budgets, log_n.shape)}, level))
            slope = d * draws["scale"] * draws["tilt"]
        out = self.law.optimum(theta, budgets, flops_per_param_token=k, slope=slope)
        at = self._at_level({"params": out["params_opt"], "tokens": out["tokens_opt"],
                             "flops": np.broadcast_to(budgets, out["loss_opt"].shape)}, level)
        # the terms at the optimum: offsets at the average level, continuous hyperparameters
        # at their optimum (both absent from ``at``), a family's own terms as they are there
        out["loss_opt"] = out["loss_opt"] * np.exp(self.term_draws(posterior, at, rng)
                                                   + self.discrepancy_draws(posterior, at))
        if "discrepancy_scale" in posterior and self.profiles_measure_allocation:
            shift = self._profile_shift(posterior, theta, budgets, rng, level)
            out["params_opt"] = out["params_opt"] * 10.0 ** shift
            out["tokens_opt"] = np.exp(log_c) / out["params_opt"]
            out["tokens_per_param"] = out["tokens_opt"] / out["params_opt"]
        return out

    def _at_level(self, points: dict, level) -> dict:
        """``points`` of one level of the group column (its distance past the runs is from
        that level's runs); unchanged without a level."""
        if level is None or self.groups is None:
            return points
        shape = np.shape(points["flops"])
        return points | {self.groups.column: np.full(shape, level, dtype=object)}

    #: whether the runs' isoFLOP profiles measure the law's allocation (runs trained to their
    #: budget; a learning curve's points are not)
    profiles_measure_allocation = True

    def profile_minima(self, posterior, level=None) -> pd.DataFrame:
        """The runs' own isoFLOP minima (:func:`bayescale.model.profiles.profile_optima`):
        ``flops``, ``params_opt``, ``runs``; empty where the runs hold no profile or are not
        trained to their budget. Runs with hyperparameter terms enter with the terms' median
        removed."""
        if (not self.profiles_measure_allocation or not self.law.has_optimum
                or (self.groups is not None and level is None)):
            return super().profile_minima(posterior)
        runs = self.runs.assign(flops=run_flops(self.runs))
        if self.groups is not None:  # a level's own runs
            runs = runs[runs[self.groups.column] == level]
        loss = runs["loss"].to_numpy(float)
        if self.offsets or self.continuous:
            terms = self.term_draws(posterior, runs, np.random.default_rng(0))
            loss = loss / np.exp(np.median(np.reshape(terms, (-1, len(runs))), axis=0))
        return profile_optima(runs, loss)

    def _profile_shift(self, posterior, theta, budgets, rng, level=None) -> np.ndarray:
        """Decades to add to the law's log10 N* per draw and budget, measured by the runs'
        isoFLOP profiles (:mod:`bayescale.model.profiles`); zeros without enough profiles.
        The losses of runs with hyperparameter terms are taken at the terms' median removed."""
        found = self.profile_minima(posterior, level)
        shape = np.broadcast_shapes(theta[self.law.params[0]].shape[:-1] + (1,),
                                    (np.size(budgets),))
        if len(found) < MIN_PROFILES:
            return np.zeros(shape)
        law_at = self.law.optimum(theta, found["flops"].to_numpy(),
                                  flops_per_param_token=self.flops_per_param_token)["params_opt"]
        shift = allocation_shift(np.log10(law_at).reshape(-1, len(found)),
                                 np.log10(found["params_opt"].to_numpy()),
                                 found["flops"].to_numpy(), budgets, rng)
        return shift.reshape(shape)

    def summary_variables(self, posterior):
        """The law's parameters in natural units (E, A, B, alpha, beta), the noise (sigma,
        nu), for each offset column its scale ``<col>_tau`` and its offsets (one row per
        level), and for each continuous hyperparameter its curvature ``<col>_kappa`` and the
        optimum's law ``log x*(C) = <col>_opt_ref + <col>_opt_slope (log C - log C0)``.
        With seed replicates (:func:`bayescale.replicates`), two more rows name the variance
        components: ``sigma_seed`` (= ``sigma``, the scatter between seeds of one
        configuration) and ``sigma_misfit`` (= ``<col>_tau``, the configurations' offsets).
        A family's own terms follow theirs (:attr:`terms`)."""
        names = [*self.law.params, *self._NOISE_PARAMS[self.noise]]
        names += self._discrepancy_summary(posterior)
        for term in self.terms:
            names += term.summary_names()
        if self.groups is not None:
            names += self.groups.names
        post = posterior[names]
        column = self.runs.attrs.get("replicates")
        if column in self.offsets:
            at = len(self.law.params) + len(self._NOISE_PARAMS[self.noise])
            names[at:at] = ["sigma_seed", "sigma_misfit"]
            post = post.assign(sigma_seed=post["sigma"], sigma_misfit=post[f"{column}_tau"])
        return post[names]

    def predict_attrs(self) -> dict:
        return {"law": self.law.name}

    def describe(self) -> str:
        """One line: the law, the noise and the hyperparameter terms."""
        hyper = [*self.offsets, *self.continuous]
        groups = ("" if self.groups is None else f"; law parameters {self.group_params} by "
                  f"`{self.groups.column}` ({len(self.groups.levels)} levels, pooled)")
        return (f"law `{self.law.name}`: {self.law.formula}; noise `{self.noise}` on "
                f"log loss; hyperparameters {hyper or 'none'}{groups}; discrepancy past the "
                f"runs `{self.discrepancy}`")

    def describe_short(self) -> str:
        return f"law={self.law.name!r} offsets={list(self.offsets)}"


# -- validation ------------------------------------------------------------------------------
def _check_runs(runs: object, law: Law) -> pd.DataFrame:
    check_table(runs, argument="runs", why=" (see bayescale.prepare)")
    if len(runs) < 2:
        raise ValueError(f"runs has {len(runs)} row(s); a scaling law needs at least 2 runs")
    why = f"law {law.name!r}"
    if law.inputs == ("params", "tokens") and "flops" in runs.columns and (
            "params" not in runs.columns or "tokens" not in runs.columns):
        raise ValueError(f"{why} needs params and tokens (N and D), but the run table has only "
                         "flops; use law='flops' or give params/tokens to bayescale.prepare")
    require_columns(runs, [*law.inputs, "loss"], why=why)
    present = [c for c in ("params", "tokens", "flops", "loss") if c in runs.columns]
    values = {col: check_positive_column(runs, col, argument=col) for col in present}
    check_loss_varies(values["loss"])
    check_duplicates(runs)
    runs = with_float_columns(runs, values)
    k = float(runs.attrs.get("flops_per_param_token", 6.0))
    budgets = np.unique(values["flops"] if "flops" in values
                        else k * values["params"] * values["tokens"])
    if budgets.size < 2:
        raise ValueError(f"runs span a single compute budget (flops={budgets[0]:.3g}); "
                         "extrapolating in compute needs runs at 2 or more budgets")
    for x in law.inputs:
        if np.unique(runs[x]).size < 2:
            raise ValueError(f"column {x!r} takes a single value ({runs[x].iloc[0]:.3g}); "
                             f"law {law.name!r} needs it to vary")
    return runs


def _hyperparameter_columns(runs: pd.DataFrame, columns: object, argument: str,
                            taken: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Checks shared by ``offsets=`` and ``continuous=``: a list of distinct columns of the
    run table, none of them a law input (or already ``taken``), each taking 2+ values."""
    if columns is None:
        return ()
    if isinstance(columns, str) or not isinstance(columns, Sequence):
        raise TypeError(f"{argument} must be a list of column names, got {columns!r}")
    if len(set(columns)) != len(columns):
        raise ValueError(f"{argument} lists a column twice: {list(columns)}")
    for col in columns:
        if col not in runs.columns:
            raise ValueError(f"{argument} names column {col!r}, which the run table lacks; "
                             f"it has {list(runs.columns)}")
        if col == "run":
            raise ValueError(f"{argument} cannot include 'run': a fit's observations live on "
                             "the 'run' dimension; copy the column under another name "
                             "(bs.checkpoints adds it as 'curve')")
        if col in ("params", "tokens", "flops", "loss") or col in taken:
            raise ValueError(f"{argument} cannot include {col!r}: it is a law input"
                             + (" or an offset" if taken else ""))
        kind = {"offsets": "offset column", "group": "group column"}.get(argument,
                                                                        "continuous column")
        if runs[col].isna().any():
            raise ValueError(f"{kind} {col!r} has missing values")
        if runs[col].nunique() < 2:
            raise ValueError(f"{kind} {col!r} has a single level "
                             f"({plain(runs[col].iloc[0])!r}); it needs at least 2 levels")
    return tuple(columns)


def _check_groups(runs: pd.DataFrame, law: Law, group: object, group_params: object,
                  taken: tuple[str, ...], centred: object = None) -> LawGroups | None:
    """The group column's law parameters (None without a group); a TypeError or ValueError
    naming the argument and the value. ``centred`` None: the run-count rule."""
    if group is None:
        for name, value in (("group_params", group_params or None), ("group_centred", centred)):
            if value is not None:
                raise ValueError(f"{name}={value!r} needs a group column (group=...)")
        return None
    if not isinstance(group, str):
        raise TypeError(f"group must be a column name, got {group!r}")
    (column,) = _hyperparameter_columns(runs, [group], "group", taken=taken)
    fewest = int(runs[column].value_counts().min())
    return law_groups(column, tuple(_levels(runs[column])), law, group_params,
                      fewest >= CENTRED_MIN_RUNS if centred is None else centred)


def _check_offsets(runs: pd.DataFrame, offsets: object) -> tuple[str, ...]:
    return _hyperparameter_columns(runs, offsets, "offsets")


def _check_continuous(runs: pd.DataFrame, continuous: object,
                      offsets: tuple[str, ...]) -> tuple[str, ...]:
    columns = _hyperparameter_columns(runs, continuous, "continuous", taken=offsets)
    for col in columns:
        check_positive_column(runs, col, argument="continuous")
    if columns and "flops" not in runs.columns:
        raise ValueError("continuous hyperparameters need a flops column (their optimum moves "
                         "with compute)")
    return columns


def _levels(series: pd.Series) -> list:
    values = series.unique().tolist()
    try:
        return sorted(values)
    except TypeError:
        kinds = sorted({type(v).__name__ for v in values})
        raise TypeError(f"column {series.name!r} mixes values that cannot be ordered as "
                        f"levels ({', '.join(kinds)}): e.g. {values[:4]!r}") from None


def _run_coords(index: pd.Index) -> list:
    return index.tolist() if index.is_unique else list(range(len(index)))

