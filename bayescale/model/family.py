"""The model base every family derives from: options, the graph, NUTS, the noise, and the
discrepancy past the runs.

A *family* (:class:`bayescale.ScalingLaw`, :class:`bayescale.IsoFlop`, ...) turns a run table
and its options into a PyMC model: its mean (the law) plus a list of terms
(:mod:`bayescale.model.terms`), each written once for the graph and for the draws, plus the
noise. It is rebuilt from the spec a fit stores (:meth:`Family.from_spec`), and it answers
questions from posterior draws in NumPy: the log mean loss of any table of points, the
parameters worth summarising, the compute-optimal allocation where it has one. Every family
carries the law's misfit past the runs (``discrepancy=``; :mod:`bayescale.model.discrepancy`).
:class:`bayescale.Fit`, comparison, refits, calibration, reports and the CLI ask a fit's
family, through the capabilities defined here with the defaults of a family that lacks them;
none of them knows which family it is.

Defining a subclass with a class attribute ``family`` (its name) and ``spec_class`` (its typed
spec, :mod:`bayescale.model.spec`) registers it (:mod:`bayescale.model.registry`): a new
family is its own module and its spec, nothing else.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.data import lazy
from bayescale.data.warn import called_from_outside, warn
from bayescale.model import discrepancy as _discrepancy
from bayescale.model import priors as _priors
from bayescale.model import registry
from bayescale.model.fit import Fit
from bayescale.inference.diagnostics import check_draw_counts
from bayescale.inference.sampling import check_memory, check_sampler_arguments, sample
from bayescale.model.noise import MisfitWarning, Noise
from bayescale.model.terms import ContinuousOptimum, Discrepancy, Offsets

pm = lazy.module("pymc")

__all__ = ["Family", "NOISES", "OBSERVED"]

NOISES = ("student_t", "normal", "skewed")
#: Name of the ``pm.Data`` holding the observed log losses: an input a compiled model swaps
#: when it is reused for another run table (see :meth:`Family.compile_key`, ``graph_data``).
OBSERVED = "log_loss_observed"
#: Draws x runs evaluated at once when computing the log-likelihood (about 160 MB each).
CHUNK_ELEMENTS = 20_000_000


class Family:
    """What every model family shares: options, priors, the graph, NUTS, and the noise.

    Subclasses set ``family`` and ``spec_class`` (which registers them), validate the runs in
    ``__init__`` (setting ``runs``, ``noise``, ``discrepancy``, ``priors`` and
    ``user_priors``), and define :meth:`spec`, :meth:`options`, :meth:`_coords`,
    :meth:`_mean_graph`, :meth:`mean_draws`, :meth:`points`, :meth:`summary_variables`,
    :meth:`describe` and :meth:`describe_short`; terms on the mean come from :attr:`terms`.
    """

    family: ClassVar[str]
    spec_class: ClassVar[type]
    #: the report's main view of this family's fits (a name the report layer maps to its
    #: figures: ``law`` or ``isoflop``)
    report_view: ClassVar[str] = "law"
    #: the parameters of the noise on log loss, by noise
    _NOISE_PARAMS = {"student_t": ("sigma", "nu"), "normal": ("sigma",),
                     "skewed": ("sigma", "shortfall")}

    runs: pd.DataFrame
    noise: str
    priors: dict
    user_priors: dict
    #: the law's misfit past the runs: ``backtest``, ``prior`` or ``off``
    discrepancy: str = "off"

    def _set_options(self, noise: str, discrepancy: str) -> None:
        """Check and set the options every family has (a ValueError naming a bad one)."""
        if noise not in NOISES:
            raise ValueError(f"noise must be one of {list(NOISES)}, got {noise!r}")
        if discrepancy not in _discrepancy.DISCREPANCIES:
            raise ValueError(f"discrepancy must be one of {list(_discrepancy.DISCREPANCIES)}, "
                             f"got {discrepancy!r}")
        self.noise, self.discrepancy = noise, discrepancy

    @classmethod
    def variants(cls) -> list[dict]:
        """Constructor options that between them build every distinct graph of this family
        (each law, the discrepancy on and off): what the contract tests run for every
        registered family (``tests/test_contract.py``)."""
        return [{"discrepancy": "off"}, {"discrepancy": "prior"}]

    @classmethod
    def example(cls, **options) -> Family:
        """A model of this family with ``options`` on a small run table it takes (bundled or
        simulated): what the docs and the contract tests build."""
        raise NotImplementedError

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "family" in cls.__dict__:  # a family of its own, not a helper subclass
            registry.add(cls)

    # -- capabilities: what a family has, with the defaults of one that has none ---------------
    #: categorical columns with latent offsets, and continuous hyperparameter columns
    offsets: tuple[str, ...] = ()
    continuous: tuple[str, ...] = ()
    #: a group column's per-level law parameters (:class:`bayescale.model.groups.LawGroups`)
    groups = None

    @property
    def hyperparameter_offsets(self) -> tuple[str, ...]:
        """The offset columns that are hyperparameters (what reports and designs rank)."""
        return self.offsets

    @property
    def terms(self) -> tuple:
        """The terms on the log mean besides the family's own mean
        (:class:`bayescale.model.terms.Term`); none here."""
        return ()

    def term(self, kind: type, column: str):
        """The term of ``kind`` on ``column`` (a ValueError naming the columns that have one)."""
        found = {t.column: t for t in self.terms if isinstance(t, kind)}
        if column not in found:
            raise ValueError(f"{self.describe_short()} has no {kind.__name__} term on column "
                             f"{column!r}; it has them on {list(found)}")
        return found[column]

    def offset_variable(self, column: str) -> str:
        """The posterior variable of the offsets of ``column`` (one value per level)."""
        return self.term(Offsets, column).variable

    def log_optimum(self, posterior, column: str, log_flops: np.ndarray) -> np.ndarray:
        """log x*(C) of continuous hyperparameter ``column`` per draw: (chain, draw, n)."""
        return self.term(ContinuousOptimum, column).log_optimum_draws(posterior, log_flops)

    # -- structure ---------------------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: Mapping, runs: pd.DataFrame) -> Family:
        """The model of ``spec``'s options on ``runs`` (data-scaled defaults recomputed)."""
        runs = runs.copy()
        runs.attrs["flops_per_param_token"] = float(spec.get("flops_per_param_token", 6.0))
        return cls(runs, **cls.options(spec))

    def answer_as(self, spec: Mapping) -> Family:
        """Answer from draws as the model that wrote ``spec`` did (a hook for what an older
        results format recorded differently; the graph is unaffected). Returns ``self``."""
        return self

    @staticmethod
    def options(spec: Mapping) -> dict:
        """The constructor keywords (what the user chose) recorded in ``spec``."""
        raise NotImplementedError

    @property
    def spec(self) -> dict:
        raise NotImplementedError

    @property
    def flops_per_param_token(self) -> float:
        """The constant k in C = k N D of the run table (6 unless the runs say otherwise)."""
        return float(self.runs.attrs.get("flops_per_param_token", 6.0))

    @property
    def model(self) -> pm.Model:
        """The PyMC model, built on first use (a fit answers from draws without it)."""
        if getattr(self, "_model", None) is None:
            self._model = self._build()
        return self._model

    def _build(self) -> pm.Model:
        """The PyMC model: the family's mean, each term, the likelihood."""
        with pm.Model(coords=self._coords()) as model:
            log_mu = self._mean_graph()
            for term in self.terms:
                log_mu = log_mu + term.graph(self)
            self._likelihood(log_mu, self.prior)
        return model

    def _coords(self) -> dict:
        """The model's coordinates (``run`` and whatever the family's variables span)."""
        raise NotImplementedError

    def _mean_graph(self):
        """The family's log mean at its runs, inside the model context (its parameters
        created by :meth:`prior`)."""
        raise NotImplementedError

    def prior(self, name: str, **kwargs):
        """Variable ``name`` under its prior (inside the model context)."""
        return _priors.create(name, self.priors[name], **kwargs)

    def compile_key(self) -> str:
        """A hash of everything the compiled model holds except the observed losses.

        Two models with equal keys (same family, options, priors and the same runs up to their
        losses, e.g. replicate data sets of one simulated design) share one nutpie compilation
        within a process. The default priors are scaled to the losses, so a different run table
        usually compiles anew unless every prior is given.
        """
        design = self.runs.drop(columns="loss")
        graph = {k: v for k, v in self.spec.items() if k != "user_priors"}
        digest = hashlib.sha256(json.dumps(graph, sort_keys=True, default=str).encode())
        digest.update(pd.util.hash_pandas_object(design, index=True).to_numpy().tobytes())
        digest.update(json.dumps([str(c) for c in design.columns]).encode())
        return digest.hexdigest()

    def graph_data(self) -> dict[str, np.ndarray]:
        """The values of the model's ``pm.Data`` containers, by name (the observed log losses
        and whatever else the family's graph takes from its run table): what a compilation
        of another model with the same :meth:`compile_key` is given to sample this one."""
        return {var.name: np.asarray(var.get_value()) for var in self.model.data_vars}

    def _positive(self) -> frozenset[str]:
        """The prior names whose values must be positive: the noise's, the discrepancy's
        scale and the terms'."""
        return frozenset({"sigma", "nu", "shortfall", "discrepancy_scale"}).union(
            *(t.positive for t in self.terms))

    def _noise_priors(self, scale: float) -> dict:
        """``sigma ~ HalfNormal(scale)``; ``nu ~ Gamma(2, 0.1)`` (Juarez & Steel 2010);
        ``shortfall ~ HalfNormal(scale)``."""
        out = {"sigma": {"dist": "HalfNormal", "sigma": float(max(scale, 0.01))}}
        if self.noise == "student_t":
            out["nu"] = {"dist": "Gamma", "alpha": 2.0, "beta": 0.1}
        if self.noise == "skewed":
            out["shortfall"] = {"dist": "HalfNormal", "sigma": float(max(scale, 0.01))}
        return out

    def _discrepancy_priors(self) -> dict:
        """With a discrepancy, ``discrepancy_scale`` (log loss per decade past the runs):
        :data:`bayescale.model.discrepancy.DEFAULT_SCALE_PRIOR`. Its bias per decade has no
        default: it is learned only when ``priors`` give ``discrepancy_bias`` one
        (:meth:`_checked_priors`)."""
        if self.discrepancy == "off":
            return {}
        return {"discrepancy_scale": dict(_discrepancy.DEFAULT_SCALE_PRIOR)}

    def _checked_priors(self, priors, positive: frozenset[str] = frozenset()) -> dict:
        """``priors`` (a user's) merged over :meth:`default_priors` after the checks of
        :func:`bayescale.model.priors.check_priors`; with a discrepancy a user may also give
        its bias (:data:`bayescale.model.discrepancy.OPTIONAL`) a prior, which has none by
        default."""
        optional = frozenset() if self.discrepancy == "off" else frozenset(_discrepancy.OPTIONAL)
        return _priors.check_priors(priors, self.default_priors(), self._positive() | positive,
                                    optional)

    def _likelihood(self, log_mu, create) -> None:
        """The observed log losses about ``log_mu`` (inside the model context)."""
        sigma = self._run_sigma(create("sigma"))
        observed = pm.Data(OBSERVED, np.log(self.runs["loss"].to_numpy()), dims="run")
        if self.noise == "student_t":
            pm.StudentT("log_loss", nu=create("nu"), mu=log_mu, sigma=sigma, observed=observed,
                        dims="run")
        elif self.noise == "skewed":
            pm.ExGaussian("log_loss", mu=log_mu, sigma=sigma, nu=create("shortfall"),
                          observed=observed, dims="run")
        else:
            pm.Normal("log_loss", mu=log_mu, sigma=sigma, observed=observed, dims="run")

    def _run_sigma(self, sigma):
        """The noise scale of each run in the graph (one for every run here)."""
        return sigma

    # -- inference ---------------------------------------------------------------------------
    def fit(self, *, draws: int = 1000, tune: int = 1000, chains: int = 4,
            random_seed: int | None = None, sampler: str = "nutpie",
            target_accept: float = 0.9, progressbar: bool = True):
        """Sample the posterior by NUTS and return a :class:`bayescale.Fit`.

        Parameters
        ----------
        draws, tune, chains
            Kept draws per chain, tuning steps per chain, number of chains.
        random_seed
            Seed for reproducible draws; ``None`` takes fresh entropy (recorded in attrs).
        sampler
            ``"nutpie"`` (default; Rust NUTS on a numba-compiled log density), ``"pymc"``
            (PyMC's own NUTS) or ``"numpyro"`` (JAX; needs the ``jax`` extra).
        target_accept
            NUTS target acceptance rate; raise it towards 0.99 if divergences are reported.
        progressbar
            Show the sampler's progress bar.

        Returns
        -------
        bayescale.Fit
            The posterior with log-likelihood, observed data and the model spec in attrs, and
            the draws of the discrepancy past the runs (``discrepancy=``; with ``"backtest"``
            learned from backtests of the runs: two more fits of the same model). A
            :class:`bayescale.SamplerWarning` is issued for divergences, R-hat > 1.01 or bulk
            ESS < 400.

        Raises
        ------
        ValueError
            Before sampling (:meth:`check_fit`): for non-positive ``draws``/``chains``,
            negative ``tune``, fewer draws than the diagnostics need, draws that would not fit
            in the machine's memory, an unknown sampler, a ``target_accept`` outside [0.5, 1)
            or a bad seed.
        """
        self.check_fit(draws=draws, tune=tune, chains=chains, sampler=sampler,
                       target_accept=target_accept)
        fit = self.sampled_fit(draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                               sampler=sampler, target_accept=target_accept,
                               progressbar=progressbar)
        # the user's own fit (not a backtest's or a comparison's refit inside the package)
        message = fit.misfit if called_from_outside() else None
        if message:
            warn(message, MisfitWarning)
        if self.discrepancy == "off":
            return fit
        # SciPy's functions would import JAX (a second) to learn that an array is NumPy's
        with lazy.stubs_hidden(*(() if sampler == "numpyro" else ("jax",))):
            return _discrepancy.attach(fit, self, sampler=sampler, target_accept=target_accept)

    def sampled_fit(self, *, draws: int, tune: int, chains: int, random_seed: int | None,
                    sampler: str, target_accept: float, progressbar: bool,
                    log_likelihood: bool = True):
        """NUTS's posterior as a :class:`bayescale.Fit`, its sampler diagnostics warned, before
        the discrepancy: :meth:`fit`'s first step, whose arguments it takes unchecked, and a
        backtest's whole fit. ``log_likelihood=False`` leaves out the runs' pointwise
        log-likelihood, which only LOO reads (a backtest's fit is never compared): 3.2 GB
        and two minutes of NumPy at 100,000 runs x 4,000 draws."""
        idata, seed = sample(self.model, draws=draws, tune=tune, chains=chains,
                             random_seed=random_seed, sampler=sampler,
                             target_accept=target_accept, progressbar=progressbar,
                             compile_key=self.compile_key(), data=self.graph_data())
        fit = Fit.from_sampler(self._complete(idata), spec=self.spec, runs=self.runs,
                               sampler=sampler, seed=seed, log_likelihood=log_likelihood)
        fit.warn_diagnostics()
        return fit

    def check_fit(self, *, draws: int, tune: int, chains: int, sampler: str,
                  target_accept: float) -> None:
        """Every check of a fit's settings that can fail, run before any sampling: the sampler
        arguments, the draws the diagnostics need (at least
        :data:`~bayescale.inference.diagnostics.MIN_DRAWS_PER_CHAIN` per chain and
        :data:`~bayescale.inference.diagnostics.MIN_TOTAL_DRAWS` in all) and the memory the
        kept draws take (``draws * chains * (parameters + runs) * 8`` bytes against the
        machine's memory). Raises a ValueError naming the argument and its value."""
        check_sampler_arguments(draws=draws, tune=tune, chains=chains, sampler=sampler,
                                target_accept=target_accept)
        check_draw_counts(int(draws), int(chains))
        check_memory(draws=draws, chains=chains, values_per_draw=self._values_per_draw())

    def _values_per_draw(self) -> int:
        """Values a posterior draw holds: the model's parameters and deterministics (their
        sizes from the model's dims, else their static shapes) and one log-likelihood point
        per run."""
        model, total = self.model, len(self.runs)
        for var in [*model.free_RVs, *model.deterministics]:
            dims = model.named_vars_to_dims.get(var.name) or ()
            sizes = [len(model.coords.get(d) or ()) or 1 for d in dims] if dims \
                else [s or 1 for s in var.type.shape]
            total += int(np.prod(sizes))
        return total

    def _complete(self, idata: xr.DataTree) -> xr.DataTree:
        """Hook for a family to add coordinates to the sampler's draws."""
        return idata

    # -- answers from draws --------------------------------------------------------------------
    def log_mean_draws(self, posterior: xr.Dataset, table: pd.DataFrame,
                       rng: np.random.Generator) -> np.ndarray:
        """log mean loss per draw at the rows of ``table``: shape (chain, draw, row): the
        family's mean, its terms and the discrepancy past the runs."""
        return (self.mean_draws(posterior, table, rng) + self.term_draws(posterior, table, rng)
                + self.discrepancy_draws(posterior, table))

    def mean_draws(self, posterior: xr.Dataset, table: pd.DataFrame,
                   rng: np.random.Generator) -> np.ndarray:
        """The family's own log mean (without terms) per draw at the rows of ``table``."""
        raise NotImplementedError

    def term_draws(self, posterior: xr.Dataset, table, rng: np.random.Generator):
        """The terms' contribution per draw at the rows of ``table`` (0.0 without terms)."""
        total = 0.0
        for term in self.terms:
            total = total + term.draws(self, posterior, table, rng)
        return total

    # -- the discrepancy past the runs -----------------------------------------------------------
    @property
    def discrepancy_term(self) -> Discrepancy:
        """The discrepancy over the run table's sizes and compute (``params``, ``tokens``,
        ``flops``, those it has) and the continuous hyperparameters."""
        columns = [c for c in ("params", "tokens", "flops") if c in self.runs.columns]
        return Discrepancy((*columns, *self.continuous))

    def discrepancy_distance(self, points) -> np.ndarray | float:
        """Decades from the nearest run of each point (a table or a dict of arrays)."""
        term = self.discrepancy_term
        return term.distance(points, term.ranges(self.runs))

    def discrepancy_draws(self, posterior: xr.Dataset, points) -> np.ndarray | float:
        """``d * (b + s * (z + t * x))`` at ``points`` (a table or a dict of arrays) from the
        posterior's draws of the scale, bias and directions (0.0 for a fit without them;
        :func:`bayescale.model.discrepancy.attach`)."""
        if "discrepancy_scale" not in posterior:
            return 0.0
        return self.discrepancy_effect(posterior, points, self.discrepancy_distance(points))

    def discrepancy_effect(self, posterior: xr.Dataset, points, distance) -> np.ndarray:
        """The discrepancy at ``points`` that lie ``distance`` decades from the runs."""
        return self.discrepancy_term.effect(np, distance=distance,
                                            **_discrepancy.discrepancy_draws(posterior),
                                            across=self._across(posterior, points))

    @property
    def tilts(self) -> bool:
        """Whether the discrepancy has a tilt across model sizes (``discrepancy_tilt``),
        which moves N* past the runs: a family whose mean allocates N against D."""
        return False

    def _across(self, posterior: xr.Dataset, points) -> np.ndarray | float:
        """Decades of N from the compute-optimal size at each point's compute, per draw,
        where the tilt acts (0 for a family without it)."""
        return 0.0

    def with_runs(self, runs: pd.DataFrame) -> Family:
        """This model's options on another run table, without the discrepancy (backtests)."""
        runs = runs.copy()
        runs.attrs = dict(self.runs.attrs)
        options = self.options(self.spec)
        priors = {k: v for k, v in (options.get("priors") or {}).items()
                  if k not in _discrepancy.LEARNED}
        return type(self)(runs, **{**options, "priors": priors or None, "discrepancy": "off"})

    def _discrepancy_summary(self, posterior: xr.Dataset) -> list[str]:
        """The discrepancy's learned variables in ``posterior`` (what a summary reports)."""
        return [n for n in _discrepancy.LEARNED if n in posterior]

    def points(self, points) -> pd.DataFrame:
        """``points`` (DataFrame or dict of arrays) checked and completed for this family."""
        raise NotImplementedError

    def noise_draws(self, posterior: xr.Dataset, shape: tuple,
                    rng: np.random.Generator, table=None) -> np.ndarray:
        """A fresh draw of the log-scale noise per posterior draw (for new runs at the rows of
        ``table``, where the noise differs by row)."""
        return self.noise_model(posterior, table).draw(shape, rng)

    def profile_minima(self, posterior: xr.Dataset) -> pd.DataFrame:
        """The runs' own isoFLOP minima that the family's N* answers follow (``flops``,
        ``params_opt``, ``runs``); none here (a family that measures them overrides this)."""
        return pd.DataFrame(columns=["flops", "params_opt", "runs"])

    def noise_model(self, posterior: xr.Dataset, table=None) -> Noise:
        """A run's noise per draw with a trailing point axis (:class:`bayescale.model.noise.
        Noise`), at the rows of ``table`` where it differs by row (a group's noise scale per
        level; the population's without a table). With ``"skewed"`` noise a new run is a run
        like the fitted ones: seed noise plus the shortfall of under-tuning that they
        showed."""
        return Noise.of(self.noise, posterior)

    def _run_parts(self, posterior: xr.Dataset) -> list[slice]:
        """Slices of the runs that hold at most :data:`CHUNK_ELEMENTS` draws x runs each:
        bounds the temporaries of per-run answers on large tables."""
        n_draws = posterior.sizes["chain"] * posterior.sizes["draw"]
        step = max(1, CHUNK_ELEMENTS // n_draws)
        return [slice(start, start + step) for start in range(0, len(self.runs), step)]

    def log_likelihood(self, posterior: xr.Dataset, y: np.ndarray) -> np.ndarray:
        """log p(y_run | draw) for the model's runs: (chain, draw, run), in chunks of runs
        (:meth:`_run_parts`)."""
        ll = np.empty((posterior.sizes["chain"], posterior.sizes["draw"], len(self.runs)))
        for part in self._run_parts(posterior):
            table = self.runs.iloc[part]
            log_mu = self.log_mean_draws(posterior, table, np.random.default_rng(0))
            ll[..., part] = self.noise_model(posterior, table).logpdf(y[part], log_mu)
        return ll

    def run_residuals(self, posterior: xr.Dataset) -> np.ndarray:
        """Per run: how many noise scales its log loss lies from the fit's log mean (both
        medians over the draws of ``posterior``), in chunks of runs (:meth:`_run_parts`)."""
        y = np.log(self.runs["loss"].to_numpy(dtype=float))
        out = np.empty(len(self.runs))
        for part in self._run_parts(posterior):
            table = self.runs.iloc[part]
            log_mu = self.log_mean_draws(posterior, table, np.random.default_rng(0))
            sigma = np.broadcast_to(self.noise_model(posterior, table).sigma, np.shape(log_mu))
            out[part] = np.abs(y[part] - np.median(log_mu, axis=(0, 1))) / np.median(
                sigma, axis=(0, 1))
        return out

    def summary_variables(self, posterior: xr.Dataset) -> xr.Dataset:
        """The posterior variables :meth:`bayescale.Fit.summary` reports, in order."""
        raise NotImplementedError

    def diagnostic_vars(self, posterior: xr.Dataset) -> list[str]:
        """The posterior variables the diagnostics judge (default: the scalar parameters)."""
        return [v for v in posterior.data_vars if posterior[v].ndim == 2]

    @property
    def has_optimum(self) -> bool:
        """Whether :meth:`optimal` answers (a compute-optimal N*, D* exists)."""
        return False

    def optimal(self, posterior: xr.Dataset, budgets: np.ndarray,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
        """N*, D*, D*/N* and the loss at the optimum per draw and budget."""
        raise ValueError(f"{self.describe()}: this model has no compute-optimal allocation")

    def describe(self) -> str:
        """One line: the model and its terms."""
        raise NotImplementedError
