"""Fit: a sampled posterior with the questions users ask of it.

Everything here works on posterior draws in NumPy/xarray: predictions, compute-optimal
allocations and log-likelihoods need no recompilation of the model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cached_property

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.data import lazy
from bayescale._version import __version__
from bayescale.inference.intervals import interval
from bayescale.model.points import check_budgets
from bayescale.model.design import design
from bayescale.model.recommend import recommend
from bayescale.model.registry import FAMILIES, family_of
from bayescale.model.spec import SPEC_VERSION, Spec, spec_from_dict
from bayescale.inference.diagnostics import PosteriorResult, SamplerWarning, warn_not_finite
from bayescale.inference.trees import dataset_digest, group, set_groups
from bayescale.data.runs import DataWarning
from bayescale.data.warn import called_from_outside, warn
from bayescale.model.reach import ExtrapolationWarning, optimum_messages, point_messages

azs = lazy.module("arviz_stats")

__all__ = ["Fit", "SamplerWarning", "FORMAT_VERSION", "FAMILIES", "family_of"]

#: Version of the results-file layout written by :meth:`Fit.save`. 2 (bayescale 0.2): an
#: ``xarray.DataTree`` whose spec names its family (``spec["model"]``). 1 (bayescale 0.1): the
#: same groups from ArviZ 0.x; a scaling-law spec had no ``model`` key (load converts it).
FORMAT_VERSION = SPEC_VERSION


class Fit(PosteriorResult):
    """A fitted model of any family: the posterior (:attr:`idata`) plus the model spec.

    Create one with the ``fit()`` of a model (:class:`bayescale.ScalingLaw`,
    :class:`bayescale.IsoFlop`) or with :func:`bayescale.load`. Every answer is computed from
    the posterior draws by the fit's model (:attr:`model`, rebuilt from the spec and the runs
    in ``constant_data``), so a fit of any family predicts, summarises and compares alike.
    """

    def __init__(self, idata: xr.DataTree, spec: Spec | Mapping) -> None:
        self.idata = idata
        self.spec = spec_from_dict(spec)
        self._model = None

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_sampler(cls, idata: xr.DataTree, *, spec: Spec | Mapping, runs: pd.DataFrame,
                     sampler: str, seed: int, log_likelihood: bool = True) -> Fit:
        """Complete a sampler's DataTree: observed and constant data, log-likelihood (unless
        ``log_likelihood`` is False), attrs.

        A replicate column marked in ``runs.attrs["replicates"]`` (see
        :func:`bayescale.replicates`) is recorded in the spec when it is an offset column.
        """
        spec = _with_replicates(spec_from_dict(spec), runs)
        coords = {"run": _run_coords(runs)}
        observed = xr.Dataset({"log_loss": ("run", np.log(runs["loss"].to_numpy()))}, coords=coords)
        constant = xr.Dataset({_var_name(c): ("run", _storable(runs[c])) for c in runs.columns},
                              coords=coords)
        constant.attrs["columns"] = json.dumps([str(c) for c in runs.columns])
        set_groups(idata, observed_data=observed, constant_data=constant)
        fit = cls(idata, spec)
        if log_likelihood:
            set_groups(idata, log_likelihood=xr.Dataset({"log_loss": fit._log_likelihood()}))
        attrs = {"bayescale_version": __version__, "bayescale_format": FORMAT_VERSION,
                 "sampler": sampler, "random_seed": seed} | spec_attrs(spec)
        idata["posterior"].attrs.update(attrs)
        return fit

    @property
    def model(self):
        """The fit's model (its family, rebuilt from the spec on the fitted runs)."""
        if self._model is None:
            model = family_of(self.spec).from_spec(self.spec, self.runs)
            self._model = model.answer_as(self.spec)
        return self._model

    @cached_property
    def misfit(self) -> str | None:
        """What :class:`bayescale.MisfitWarning` says of this fit (a Student-t fit that sets
        aside a third or more of the largest runs), or None; computed once per fit."""
        from bayescale.model.noise import misfit_message

        return misfit_message(self.model, self.posterior)

    @property
    def hyperparameter_offsets(self) -> list[str]:
        """The offset columns that are hyperparameters (a learning-curves fit's per-run
        ``curve`` offsets are not): what reports, recommendations and designs rank."""
        return list(self.model.hyperparameter_offsets)

    @property
    def continuous(self) -> list[str]:
        """The continuous hyperparameter columns of the fit's model (``continuous=``)."""
        return list(self.model.continuous)

    def offset(self, column: str) -> xr.DataArray:
        """The posterior draws of the offsets of ``column``'s levels."""
        return self.posterior[self.model.offset_variable(column)]

    @property
    def law(self):
        """The law of a scaling-law fit (AttributeError for a family without one)."""
        return self.model.law

    # -- the answer ---------------------------------------------------------------------------
    @property
    def runs(self) -> pd.DataFrame:
        """The run table the model was fitted to (from ``constant_data``)."""
        const = group(self.idata, "constant_data")
        columns = json.loads(const.attrs["columns"])
        table = pd.DataFrame({c: const[_var_name(c)].values for c in columns},
                             index=pd.Index(const["run"].values, name=None))
        table.attrs["flops_per_param_token"] = float(self.spec.get("flops_per_param_token", 6.0))
        if self.spec.get("replicates"):
            table.attrs["replicates"] = self.spec["replicates"]
        return table

    def theta(self) -> dict[str, xr.DataArray]:
        """The model's headline parameters in natural units, as DataArrays over (chain, draw)."""
        return {name: self.posterior[name] for name in self.model.theta_names}

    def summary(self, prob: float = 0.9) -> pd.DataFrame:
        """Posterior table: mean, sd, median, equal-tailed ``prob`` interval, R-hat and ESS.

        Rows are what the model reports (:meth:`bayescale.ScalingLaw.summary_variables`,
        :meth:`bayescale.IsoFlop.summary_variables`), one row per level or budget for variables
        along a dimension (``name[level]``). ``attrs["diagnostics"]`` holds the divergence
        count and the worst R-hat and ESS. Kept for the same draws and ``prob`` (the command
        line prints it and writes it).
        """
        post = self.model.summary_variables(self.posterior)

        def compute() -> pd.DataFrame:
            table = interval(post, prob=prob)
            table["name"] = _row_names(post, list(post.data_vars))
            table = table.set_index("name")[["mean", "sd", "median", "lower", "upper"]]
            diag = azs.summary(post, kind="diagnostics", round_to="none")
            diag.index = table.index
            return table.join(diag[["r_hat", "ess_bulk", "ess_tail"]])

        table = self._kept("summary", (dataset_digest(post), prob), compute).copy()
        table.attrs["prob"] = prob
        table.attrs["diagnostics"] = self.diagnostics()
        return table

    def predict(self, points, *, kind: str = "mean", random_seed: int | None = None) -> xr.Dataset:
        """Posterior of the loss at new points.

        Parameters
        ----------
        points
            DataFrame or dict of arrays with the model's inputs (``params`` and ``tokens``, or
            ``flops``; a missing one of N, D, C is derived) and, optionally, offset columns.
            A known level uses its posterior offset, an unseen level a fresh draw (sd
            ``tau * sqrt(1 + 1/k)`` for a column of k levels whose offsets sum to zero); an
            absent offset column means the average of the observed levels (offset 0).
        kind
            ``"mean"``: the model's mean curve. ``"new_run"``: the loss of a new training run,
            adding the log-scale noise (Student-t or Normal) to the mean.
        random_seed
            Seed for the fresh draws (noise, unseen levels or budgets).

        Returns
        -------
        xarray.Dataset
            ``loss`` with dims (chain, draw, point); the inputs are coordinates on ``point``.

        Warns
        -----
        ExtrapolationWarning
            For points whose params, tokens or tokens per parameter lie outside the runs'.
        """
        if kind not in ("mean", "new_run"):
            raise ValueError(f"kind must be 'mean' or 'new_run', got {kind!r}")
        table = self.model.points(points)
        if called_from_outside():
            for message in point_messages(self.runs, table):
                warn(message, ExtrapolationWarning)
        rng = np.random.default_rng(random_seed)
        post = self.posterior
        log_loss = self.model.log_mean_draws(post, table, rng)
        if kind == "new_run":
            log_loss = log_loss + self.model.noise_draws(post, log_loss.shape, rng, table)
        coords = {c: ("point", table[c].to_numpy()) for c in table.columns}
        with np.errstate(over="ignore"):  # heavy-tailed new runs (nu < 1) may reach +inf
            loss = np.exp(log_loss)
        da = xr.DataArray(loss, dims=("chain", "draw", "point"),
                          coords={"chain": post.chain, "draw": post.draw,
                                  "point": np.arange(len(table)), **coords})
        return xr.Dataset({"loss": da}, attrs={"kind": kind, **self.model.predict_attrs()})

    def optimal(self, budgets, *, random_seed: int | None = None, level=None) -> xr.Dataset:
        """Compute-optimal allocation at each budget, per posterior draw.

        Returns an ``xarray.Dataset`` over (chain, draw, budget) with ``params_opt`` (N*),
        ``tokens_opt`` (D*), ``tokens_per_param`` (D*/N*) and ``loss_opt`` (the mean loss at
        the optimum, for the average observed level of every offset). An
        :class:`bayescale.ExtrapolationWarning` names each budget whose median N*, D* or D*/N*
        lies outside the runs' range (:mod:`bayescale.model.reach`). ``random_seed`` seeds
        the fresh budget-level draws of a model that has them (IsoFLOP at a new budget).
        ``level``: with a group column (``group=``), the answer for that level (a level the
        fit has not seen: drawn from the population); without it, the population's.
        A :class:`bayescale.DegenerateWarning` names each quantity and budget some of whose
        draws are not finite, with their fraction.
        """
        if not self.model.has_optimum:
            raise ValueError(f"optimal() needs a model with a compute-optimal allocation; this "
                             f"fit's is not one: {self.model.describe()}")
        budgets = check_budgets(budgets)
        post = self.posterior
        out = self._optimal_draws(post, budgets, random_seed, level)
        for name, values in out.items():
            for i, budget in enumerate(budgets):
                warn_not_finite(values[..., i], f"{name} at budget {budget:.3g} FLOPs")
        if called_from_outside():
            for message in optimum_messages(self.runs, out, budgets):
                warn(message, ExtrapolationWarning)
        coords = {"chain": post.chain, "draw": post.draw, "budget": budgets}
        return xr.Dataset({k: (("chain", "draw", "budget"), v) for k, v in out.items()},
                          coords=coords, attrs=self.model.predict_attrs())

    def _optimal_draws(self, post, budgets, random_seed, level) -> dict[str, np.ndarray]:
        """The model's optimum per draw; the last answer is kept for the same posterior
        draws, budgets, seed and level (the report's figures ask twice along one grid), and
        a copy of it is returned. Without a seed every call draws afresh."""
        def compute() -> dict[str, np.ndarray]:
            with np.errstate(all="ignore"):  # overflow: reported by optimal (DegenerateWarning)
                rng = np.random.default_rng(random_seed)
                return (self.model.optimal(post, budgets, rng) if level is None
                        else self.model.optimal(post, budgets, rng, level=self._level(level)))

        if random_seed is None:
            return compute()
        key = (dataset_digest(post), budgets.tobytes(), random_seed, repr(level))
        return {name: v.copy() for name, v in self._kept("optimal", key, compute).items()}

    def _level(self, level):
        """``level`` checked against the fit's group column (a ValueError naming it)."""
        groups = self.model.groups
        if groups is None:
            raise ValueError(f"level={level!r} needs a fit with a group column (group=...)")
        return level

    def groups(self, budgets, *, reference=None, levels=None,
               random_seed: int | None = None) -> xr.Dataset:
        """The answers between the levels of the fit's group column at ``budgets``
        (:func:`bayescale.model.groups.group_draws`): per level the loss, N*, D*, the compute
        multiplier over the ``reference`` level and the probability of a lower loss."""
        from bayescale.model.groups import group_draws

        return group_draws(self, budgets, reference=reference, levels=levels,
                           random_seed=random_seed)

    def optimal_hyperparameters(self, budgets) -> xr.Dataset:
        """The loss-optimal value of each continuous hyperparameter at each budget, per draw.

        Returns an ``xarray.Dataset`` over (chain, draw, budget), one variable per column
        named in ``continuous=`` (in the column's own units, e.g. the learning rate).
        """
        if not self.continuous:
            raise ValueError("this fit has no continuous hyperparameters (continuous=[...])")
        budgets = check_budgets(budgets)
        post = self.posterior
        coords = {"chain": post.chain, "draw": post.draw, "budget": budgets}
        return xr.Dataset({col: (("chain", "draw", "budget"),
                                 np.exp(self.model.log_optimum(post, col, np.log(budgets))))
                           for col in self.continuous}, coords=coords)

    def recommend(self, budget, *, prob: float = 0.9, top: int = 5):
        """What to train at ``budget``: see :func:`bayescale.model.recommend.recommend`.
        An :class:`bayescale.ExtrapolationWarning` names an answer past the runs' range."""
        answer = recommend(self, budget, prob=prob, top=top)
        if called_from_outside() and self.model.has_optimum:
            for message in optimum_messages(self.runs, self.optimal([budget], random_seed=0),
                                            [budget], prob=prob):
                warn(message, ExtrapolationWarning)
        return answer

    def design(self, candidates, *, budget: float, target=None, at: float | None = None,
               max_runs: int | None = None, random_seed: int | None = 0):
        """The next runs within ``budget`` FLOPs, ranked by what they teach about ``target``
        per FLOP: see :func:`bayescale.model.design.design`."""
        return design(self, candidates, budget=budget, target=target, at=at,
                      max_runs=max_runs, random_seed=random_seed)

    # -- internals ----------------------------------------------------------------------------
    def _diagnostic_vars(self) -> list[str]:
        return self.model.diagnostic_vars(self.posterior)

    def _log_likelihood(self) -> xr.DataArray:
        post, observed = self.posterior, group(self.idata, "observed_data")
        with lazy.stubs_hidden("jax"):  # SciPy's densities would import JAX to check a type
            ll = self.model.log_likelihood(post, observed["log_loss"].values)
        return xr.DataArray(ll, dims=("chain", "draw", "run"),
                            coords={"chain": post.chain, "draw": post.draw,
                                    "run": observed["run"].values})

    def describe(self) -> str:
        """One line: the model, its noise and its terms."""
        return self.model.describe()

    def __repr__(self) -> str:
        post = self.posterior
        return (f"<bayescale.Fit {self.model.describe_short()} "
                f"runs={group(self.idata, 'observed_data').sizes['run']} "
                f"chains={post.sizes['chain']} draws={post.sizes['draw']}>")


def spec_attrs(spec: Mapping) -> dict:
    """The attrs that carry a spec: its JSON and a hash of it (what :func:`bayescale.load`
    checks), plus its law, noise and offsets where the spec has them."""
    text = json.dumps(dict(spec), sort_keys=True)
    out = {"spec": text, "spec_hash": hashlib.sha256(text.encode()).hexdigest()}
    out.update({k: spec[k] for k in ("model", "law", "noise") if k in spec})
    if "offsets" in spec:
        out["offsets"] = json.dumps(spec["offsets"])
    return out


def _row_names(post: xr.Dataset, names: list[str]) -> list[str]:
    """Row labels as ArviZ writes them: ``x``, or ``x[level]`` along an offset's levels
    (budgets in FLOPs to 3 significant digits: ``params_opt[1e+20]``)."""
    out = []
    for name in names:
        dims = [d for d in post[name].dims if d not in ("chain", "draw")]
        if not dims:
            out.append(name)
            continue
        label = (lambda v: f"{v:.3g}") if dims[0] == "budget" else str
        out += [f"{name}[{label(v)}]" for v in post[dims[0]].values]
    return out


def _with_replicates(spec: Spec, runs: pd.DataFrame) -> Spec:
    """The spec with ``replicates`` set to the run table's marked replicate column, if that
    column is an offset (else a warning: sigma then mixes seed noise and misfit)."""
    column = runs.attrs.get("replicates")
    if not column or spec.get("replicates") == column:
        return spec
    if column not in spec.get("offsets", []):
        warn(f"the runs mark column {column!r} as seed replicates, but it is not an "
                      f"offset: sigma mixes seed noise and misfit; fit with "
                      f"offsets=[{column!r}, ...] to separate them", DataWarning)
        return spec
    return spec.replace(replicates=column)


def _run_coords(runs: pd.DataFrame) -> np.ndarray:
    return runs.index.to_numpy() if runs.index.is_unique else np.arange(len(runs))


def _var_name(column: str) -> str:
    """The constant_data variable of a run-table column: netCDF names cannot hold '/', and
    a column called ``run`` would collide with the ``run`` coordinate."""
    name = str(column).replace("/", "\N{DIVISION SLASH}")
    return "run_" if name == "run" else name


def _storable(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return series.to_numpy()
    return series.astype(str).to_numpy(dtype=str)
