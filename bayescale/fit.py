"""Fit: a sampled posterior with the questions users ask of it.

Everything here works on posterior draws in NumPy/xarray: predictions, compute-optimal
allocations and log-likelihoods need no recompilation of the model.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Mapping

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr

from bayescale import __version__
from bayescale.intervals import interval
from bayescale.laws import get_law
from bayescale.points import check_budgets, points_table
from bayescale.runs import check_positive_column
from bayescale.terms import ContinuousOptimum, Offsets
from bayescale.sampling import PosteriorResult, SamplerWarning, group, noise_logpdf, set_groups

__all__ = ["Fit", "SamplerWarning", "FORMAT_VERSION"]

#: Version of the results-file layout written by :meth:`Fit.save`.
FORMAT_VERSION = 1
#: Draws x runs evaluated at once when computing the log-likelihood (about 160 MB each).
_CHUNK_ELEMENTS = 20_000_000


class Fit(PosteriorResult):
    """A fitted scaling law: the posterior (:attr:`idata`) plus the model spec.

    Create one with :meth:`bayescale.ScalingLaw.fit` or :func:`bayescale.load`.
    """

    def __init__(self, idata: xr.DataTree, spec: dict) -> None:
        self.idata = idata
        self.spec = spec
        self.law = get_law(spec["law"])

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_sampler(cls, idata: xr.DataTree, *, spec: dict, runs: pd.DataFrame,
                     sampler: str, seed: int) -> Fit:
        """Complete a sampler's DataTree: observed and constant data, log-likelihood, attrs.

        A replicate column marked in ``runs.attrs["replicates"]`` (see
        :func:`bayescale.replicates`) is recorded in the spec when it is an offset column.
        """
        spec = _with_replicates(spec, runs)
        coords = {"run": _run_coords(runs)}
        observed = xr.Dataset({"log_loss": ("run", np.log(runs["loss"].to_numpy()))}, coords=coords)
        constant = xr.Dataset({_var_name(c): ("run", _storable(runs[c])) for c in runs.columns},
                              coords=coords)
        constant.attrs["columns"] = json.dumps([str(c) for c in runs.columns])
        set_groups(idata, observed_data=observed, constant_data=constant)
        fit = cls(idata, spec)
        set_groups(idata, log_likelihood=xr.Dataset({"log_loss": fit._log_likelihood()}))
        attrs = {"bayescale_version": __version__, "bayescale_format": FORMAT_VERSION,
                 "sampler": sampler, "random_seed": seed} | spec_attrs(spec)
        idata["posterior"].attrs.update(attrs)
        return fit

    # -- the answer ---------------------------------------------------------------------------
    @property
    def runs(self) -> pd.DataFrame:
        """The run table the law was fitted to (from ``constant_data``)."""
        const = group(self.idata, "constant_data")
        columns = json.loads(const.attrs["columns"])
        table = pd.DataFrame({c: const[_var_name(c)].values for c in columns},
                             index=pd.Index(const["run"].values, name=None))
        if self.spec.get("replicates"):
            table.attrs["replicates"] = self.spec["replicates"]
        return table

    def theta(self) -> dict[str, xr.DataArray]:
        """The law's parameters in natural units, as DataArrays over (chain, draw)."""
        return {name: self.posterior[name] for name in self.law.params}

    def summary(self, prob: float = 0.9) -> pd.DataFrame:
        """Posterior table: mean, sd, median, equal-tailed ``prob`` interval, R-hat and ESS.

        Rows are the law's parameters in natural units (E, A, B, alpha, beta), the noise
        (sigma, nu), for each offset column its scale ``<col>_tau`` and one row per level, and
        for each continuous hyperparameter its curvature ``<col>_kappa`` and the optimum's law
        ``log x*(C) = <col>_opt_ref + <col>_opt_slope (log C - log C0)``.
        When the spec marks a column as seed replicates (:func:`bayescale.replicates`), two
        more rows name the variance components: ``sigma_seed`` (= ``sigma``, the scatter
        between seeds of one configuration) and ``sigma_misfit`` (= ``<col>_tau``, the scale
        of the configurations' offsets from the law).
        ``attrs["diagnostics"]`` holds the divergence count and the worst R-hat and ESS.
        """
        names = [*self.law.params, "sigma", *(["nu"] if "nu" in self.posterior else [])]
        for col in self.spec["offsets"]:
            names += [f"{col}_tau", f"{col}_offset"]
        for col in self.spec.get("continuous", []):
            names += [f"{col}_kappa", f"{col}_opt_ref", f"{col}_opt_slope"]
        post = self.posterior[names]
        if self.spec.get("replicates"):
            at = names.index("sigma") + 1 + int("nu" in names)
            names[at:at] = ["sigma_seed", "sigma_misfit"]
            post = post.assign(sigma_seed=post["sigma"],
                               sigma_misfit=post[f"{self.spec['replicates']}_tau"])[names]
        table = interval(post, prob=prob)
        table["name"] = _row_names(post, names)
        table = table.set_index("name")[["mean", "sd", "median", "lower", "upper"]]
        diag = azs.summary(post, kind="diagnostics", round_to="none")
        table = table.join(diag[["r_hat", "ess_bulk", "ess_tail"]])
        table.attrs["prob"] = prob
        table.attrs["diagnostics"] = self.diagnostics()
        return table

    def predict(self, points, *, kind: str = "mean", random_seed: int | None = None) -> xr.Dataset:
        """Posterior of the loss at new points.

        Parameters
        ----------
        points
            DataFrame or dict of arrays with the law's inputs (``params`` and ``tokens``, or
            ``flops``; a missing one of N, D, C is derived) and, optionally, offset columns.
            A known level uses its posterior offset, an unseen level a fresh draw (sd
            ``tau * sqrt(1 + 1/k)`` for a column of k levels whose offsets sum to zero); an
            absent offset column means the average of the observed levels (offset 0).
        kind
            ``"mean"``: the law's mean curve. ``"new_run"``: the loss of a new training run,
            adding the log-scale noise (Student-t or Normal) to the mean.
        random_seed
            Seed for the fresh draws (noise, unseen levels).

        Returns
        -------
        xarray.Dataset
            ``loss`` with dims (chain, draw, point); the inputs are coordinates on ``point``.
        """
        if kind not in ("mean", "new_run"):
            raise ValueError(f"kind must be 'mean' or 'new_run', got {kind!r}")
        table = points_table(points, self.law, self.spec["flops_per_param_token"])
        rng = np.random.default_rng(random_seed)
        log_loss = self._log_loss_mean(table, rng)
        if kind == "new_run":
            log_loss = log_loss + self._noise(log_loss.shape, rng)
        coords = {c: ("point", table[c].to_numpy()) for c in table.columns}
        with np.errstate(over="ignore"):  # heavy-tailed new runs (nu < 1) may reach +inf
            loss = np.exp(log_loss)
        da = xr.DataArray(loss, dims=("chain", "draw", "point"),
                          coords={"chain": self.posterior.chain, "draw": self.posterior.draw,
                                  "point": np.arange(len(table)), **coords})
        return xr.Dataset({"loss": da}, attrs={"kind": kind, "law": self.law.name})

    def optimal(self, budgets) -> xr.Dataset:
        """Compute-optimal allocation at each budget, per posterior draw (laws in N and D).

        Returns an ``xarray.Dataset`` over (chain, draw, budget) with ``params_opt`` (N*),
        ``tokens_opt`` (D*), ``tokens_per_param`` (D*/N*) and ``loss_opt`` (the mean loss at
        the optimum, for the average observed level of every offset).
        """
        if not self.law.has_optimum:
            raise ValueError(f"optimal() needs a law in N and D; this fit's law "
                             f"{self.law.name!r} ({self.law.formula}) has no N/D trade-off")
        budgets = check_budgets(budgets)
        theta = {k: v.values[..., None] for k, v in self.theta().items()}
        out = self.law.optimum(theta, budgets,
                               flops_per_param_token=self.spec["flops_per_param_token"])
        coords = {"chain": self.posterior.chain, "draw": self.posterior.draw, "budget": budgets}
        return xr.Dataset({k: (("chain", "draw", "budget"), v) for k, v in out.items()},
                          coords=coords)

    def optimal_hyperparameters(self, budgets) -> xr.Dataset:
        """The loss-optimal value of each continuous hyperparameter at each budget, per draw.

        Returns an ``xarray.Dataset`` over (chain, draw, budget), one variable per column
        named in ``continuous=`` (in the column's own units, e.g. the learning rate).
        """
        if not self.spec.get("continuous"):
            raise ValueError("this fit has no continuous hyperparameters (continuous=[...])")
        budgets = check_budgets(budgets)
        coords = {"chain": self.posterior.chain, "draw": self.posterior.draw, "budget": budgets}
        return xr.Dataset({col: (("chain", "draw", "budget"),
                                 np.exp(self._log_optimum(col, np.log(budgets))))
                           for col in self.spec["continuous"]}, coords=coords)

    def recommend(self, budget, *, prob: float = 0.9, top: int = 5):
        """What to train at ``budget``: see :func:`bayescale.recommend.recommend`."""
        from bayescale.recommend import recommend

        return recommend(self, budget, prob=prob, top=top)

    # -- internals ----------------------------------------------------------------------------
    def _log_mu(self, table: pd.DataFrame) -> np.ndarray:
        p = {k: self.posterior[k].values[..., None] for k in self.law.sampled}
        ref = self.spec["log_reference"]
        z = {x: np.log(table[x].to_numpy(dtype=float)) - ref[x] for x in self.law.inputs}
        return self.law.log_mean_sampled(np, p, z)

    def _log_loss_mean(self, table: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        """log mu + offsets + continuous penalties, per draw and point."""
        return self._log_mu(table) + self._offsets(table, rng) + self._penalties(table)

    def _log_optimum(self, col: str, log_flops: np.ndarray) -> np.ndarray:
        """log x*(C) of continuous hyperparameter ``col`` per draw: shape (chain, draw, n)."""
        _, ref, slope = (self.posterior[n].values[..., None] for n in ContinuousOptimum(col).names)
        return ContinuousOptimum.log_optimum(np, ref, slope,
                                             log_flops - self.spec["log_reference"]["flops"])

    def _penalties(self, table: pd.DataFrame) -> np.ndarray | float:
        total = 0.0
        for col in self.spec.get("continuous", []):
            if col not in table.columns:
                continue  # absent column: the hyperparameter sits at its optimum
            log_x = np.log(check_positive_column(table, col, argument="points"))
            term = ContinuousOptimum(col)
            kappa, ref, slope = (self.posterior[n].values[..., None] for n in term.names)
            log_c = np.log(table["flops"].to_numpy()) - self.spec["log_reference"]["flops"]
            total = total + term.effect(np, kappa, ref, slope, log_x, log_c)
        return total

    def _offsets(self, table: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        total = np.zeros((self.posterior.sizes["chain"], self.posterior.sizes["draw"], len(table)))
        for col in self.spec["offsets"]:
            if col not in table.columns:
                continue
            levels = self.spec["levels"][col]
            index = Offsets.index(levels, table[col])
            known = Offsets.effect(np, self.posterior[f"{col}_offset"].values, np.maximum(index, 0))
            tau = self.posterior[f"{col}_tau"].values[..., None]
            if self.spec.get("offsets_sum_to_zero"):  # seen from the observed levels' mean
                tau = tau * math.sqrt(1.0 + 1.0 / len(levels))
            fresh = tau * rng.standard_normal(total.shape)
            total += np.where(index >= 0, known, fresh)
        return total

    def _noise(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        sigma = self.posterior["sigma"].values[..., None]
        if self.spec["noise"] == "student_t":
            return sigma * rng.standard_t(self.posterior["nu"].values[..., None], size=shape)
        return sigma * rng.standard_normal(shape)

    def _log_likelihood(self) -> xr.DataArray:
        runs = self.runs
        y = group(self.idata, "observed_data")["log_loss"].values
        nu = self.posterior["nu"].values[..., None] if self.spec["noise"] == "student_t" else None
        sigma = self.posterior["sigma"].values[..., None]
        n_draws = self.posterior.sizes["chain"] * self.posterior.sizes["draw"]
        ll = np.empty((self.posterior.sizes["chain"], self.posterior.sizes["draw"], len(runs)))
        step = max(1, _CHUNK_ELEMENTS // n_draws)  # bounds the temporaries on large tables
        for start in range(0, len(runs), step):
            part = slice(start, start + step)
            log_mu = self._log_loss_mean(runs.iloc[part], np.random.default_rng(0))
            ll[..., part] = noise_logpdf(y[part], log_mu, sigma, nu)
        return xr.DataArray(ll, dims=("chain", "draw", "run"),
                            coords={"chain": self.posterior.chain, "draw": self.posterior.draw,
                                    "run": group(self.idata, "observed_data")["run"].values})

    def describe(self) -> str:
        """One line: the law, the noise and the hyperparameter terms."""
        hyper = [*self.spec["offsets"], *self.spec.get("continuous", [])]
        return (f"law `{self.law.name}`: {self.law.formula}; noise `{self.spec['noise']}` on "
                f"log loss; hyperparameters {hyper or 'none'}")

    def __repr__(self) -> str:
        post = self.posterior
        return (f"<bayescale.Fit law={self.law.name!r} offsets={self.spec['offsets']} "
                f"runs={group(self.idata, "observed_data").sizes['run']} "
                f"chains={post.sizes['chain']} draws={post.sizes['draw']}>")


def spec_attrs(spec: Mapping) -> dict:
    """The attrs that carry a spec: its JSON and a hash of it (what :func:`bayescale.load`
    checks), plus its law, noise and offsets where the spec has them."""
    text = json.dumps(spec, sort_keys=True)
    out = {"spec": text, "spec_hash": hashlib.sha256(text.encode()).hexdigest()}
    out.update({k: spec[k] for k in ("law", "noise") if k in spec})
    if "offsets" in spec:
        out["offsets"] = json.dumps(spec["offsets"])
    return out


def _row_names(post: xr.Dataset, names: list[str]) -> list[str]:
    """Row labels as ArviZ writes them: ``x``, or ``x[level]`` along an offset's levels."""
    out = []
    for name in names:
        dims = [d for d in post[name].dims if d not in ("chain", "draw")]
        out += [f"{name}[{v}]" for v in post[dims[0]].values] if dims else [name]
    return out


def _with_replicates(spec: dict, runs: pd.DataFrame) -> dict:
    """The spec with ``replicates`` set to the run table's marked replicate column, if that
    column is an offset (else a warning: sigma then mixes seed noise and misfit)."""
    column = runs.attrs.get("replicates")
    if not column or spec.get("replicates") == column:
        return spec
    if column not in spec.get("offsets", []):
        warnings.warn(f"the runs mark column {column!r} as seed replicates, but it is not an "
                      f"offset: sigma mixes seed noise and misfit; fit with "
                      f"offsets=[{column!r}, ...] to separate them", UserWarning, stacklevel=4)
        return spec
    return dict(spec) | {"replicates": column}


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
