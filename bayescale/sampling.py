"""NUTS backends, sampler diagnostics and the noise density, shared by every model.

One place that runs NUTS (nutpie, PyMC or NumPyro), checks the sampler arguments, judges the
draws (divergences, R-hat, ESS) and evaluates the log-scale noise density from draws, so that
:class:`bayescale.ScalingLaw` and :class:`bayescale.IsoFlop` behave the same way.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Mapping

import arviz_stats as azs
import numpy as np
import pymc as pm
import xarray as xr
from scipy import stats

__all__ = ["SAMPLERS", "SamplerWarning", "PosteriorResult", "sample", "noise_logpdf", "group",
           "set_groups",
           "RHAT_MAX", "ESS_MIN", "COMPILE_CACHE_SIZE", "clear_compile_cache"]

SAMPLERS = ("nutpie", "pymc", "numpyro")
#: Thresholds behind :class:`SamplerWarning`.
RHAT_MAX, ESS_MIN = 1.01, 400
#: A group scale is named in the warning when this share of the divergent draws lies at or
#: below its FUNNEL_QUANTILE (twice what chance gives).
FUNNEL_QUANTILE, FUNNEL_SHARE = 0.25, 0.5
#: PyTensor's compilation is not safe to start from two threads at once (fit_many on threads).
_COMPILE_LOCK = threading.Lock()
#: nutpie models compiled in this process, by structure key (see :func:`sample`), newest last.
_COMPILED: OrderedDict[str, object] = OrderedDict()
#: How many compiled nutpie models :data:`_COMPILED` keeps.
COMPILE_CACHE_SIZE = 8


class SamplerWarning(UserWarning):
    """The sampler's diagnostics say the draws may not represent the posterior."""


def sample(model: pm.Model, *, draws: int, tune: int, chains: int, random_seed: int | None,
           sampler: str, target_accept: float, progressbar: bool, compile_key: str | None = None,
           data: Mapping[str, np.ndarray] | None = None) -> tuple[xr.DataTree, int]:
    """Check the arguments, run NUTS, drop the unconstrained copies; return (idata, seed).

    With ``sampler="nutpie"`` and a ``compile_key``, the compiled model is kept in this process
    and a later model with the same key is not compiled again: its ``data`` (the values of the
    model's ``pm.Data`` variables, by name) are swapped into the compiled one. The key must
    therefore fix everything else the graph holds (structure, priors, constants); the draws are
    the same as from a fresh compilation.
    """
    for name, value, low in (("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
    if not (isinstance(target_accept, float) and 0.5 <= target_accept < 1):
        raise ValueError(f"target_accept must be a float in [0.5, 1), got {target_accept!r}")
    seed = _seed(random_seed)
    kwargs = {"compile_key": compile_key, "data": data} if sampler == "nutpie" else {}
    idata = _SAMPLE[sampler](model, draws=int(draws), tune=int(tune), chains=int(chains),
                             seed=seed, target_accept=target_accept, progressbar=progressbar,
                             **kwargs)
    posterior = group(idata, "posterior")
    posterior = posterior[[v for v in posterior.data_vars if not str(v).endswith("__")]]
    posterior.attrs.update(sampler=sampler, random_seed=seed, tune=int(tune),
                           target_accept=float(target_accept))
    stats = group(idata, "sample_stats")
    stats = stats[[v for v in stats.data_vars if stats[v].dtype != object]]  # netCDF-storable
    tree = xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})
    return tree, seed


def group(tree: xr.DataTree, name: str) -> xr.Dataset:
    """Group ``name`` of a results tree as a Dataset (KeyError naming the groups it has)."""
    if name not in tree.children:
        raise KeyError(f"the results have no {name!r} group; they have {list(tree.children)}")
    return tree[name].to_dataset()


def set_groups(tree: xr.DataTree, **datasets: xr.Dataset) -> None:
    """Put each Dataset into ``tree`` as the group of its keyword, replacing any there."""
    for name, ds in datasets.items():
        if name in tree.children:
            del tree[name]
        tree[name] = xr.DataTree(ds)


def _sample_nutpie(model, *, draws, tune, chains, seed, target_accept, progressbar,
                   compile_key=None, data=None):
    import nutpie

    with _COMPILE_LOCK:
        compiled = _COMPILED.get(compile_key) if compile_key is not None else None
        if compiled is None:
            compiled = nutpie.compile_pymc_model(model)
            if compile_key is not None:
                _COMPILED[compile_key] = compiled
                while len(_COMPILED) > COMPILE_CACHE_SIZE:
                    _COMPILED.popitem(last=False)
        else:
            _COMPILED.move_to_end(compile_key)
    if data:
        compiled = compiled.with_data(**data)
    return nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed,
                         target_accept=target_accept, progress_bar=progressbar,
                         save_warmup=False, cores=min(chains, os.cpu_count() or 1))


def _sample_pymc(model, *, draws, tune, chains, seed, target_accept, progressbar,
                 nuts_sampler="pymc"):
    with model:
        return pm.sample(draws=draws, tune=tune, chains=chains, random_seed=seed,
                         target_accept=target_accept, progressbar=progressbar,
                         cores=min(chains, os.cpu_count() or 1), nuts_sampler=nuts_sampler,
                         compute_convergence_checks=False,
                         # fork() of a process with threads (numba, JAX) may deadlock
                         mp_ctx="forkserver")


def _sample_numpyro(model, **kwargs):
    try:
        import numpyro  # noqa: F401
    except ImportError:
        raise ImportError("sampler='numpyro' needs JAX and NumPyro: "
                          "pip install 'bayescale[jax]'") from None
    return _sample_pymc(model, nuts_sampler="numpyro", **kwargs)


_SAMPLE = {"nutpie": _sample_nutpie, "pymc": _sample_pymc, "numpyro": _sample_numpyro}


def clear_compile_cache() -> None:
    """Forget the nutpie models compiled in this process."""
    with _COMPILE_LOCK:
        _COMPILED.clear()


def _seed(random_seed: int | None) -> int:
    if random_seed is not None and (isinstance(random_seed, bool)
                                    or not isinstance(random_seed, (int, np.integer))
                                    or random_seed < 0):
        raise ValueError(f"random_seed must be a non-negative integer or None, got {random_seed!r}")
    return int(np.random.SeedSequence(random_seed).generate_state(1)[0])


def noise_logpdf(y: np.ndarray, loc: np.ndarray, sigma: np.ndarray,
                 nu: np.ndarray | None = None) -> np.ndarray:
    """Log density of log losses ``y`` under the model's noise: Student-t with ``nu`` degrees
    of freedom, or Normal when ``nu`` is None; broadcasts over draws and points."""
    if nu is None:
        return stats.norm.logpdf(y, loc=loc, scale=sigma)
    return stats.t.logpdf(y, df=nu, loc=loc, scale=sigma)


class PosteriorResult:
    """What every fitted model shares: its posterior, diagnostics and saving."""

    idata: xr.DataTree

    @property
    def posterior(self) -> xr.Dataset:
        """The posterior draws (the ``posterior`` group as an ``xarray.Dataset``)."""
        return group(self.idata, "posterior")

    def _diagnostic_vars(self) -> list[str]:
        """The posterior variables the diagnostics judge (default: the scalar parameters)."""
        return [v for v in self.posterior.data_vars if self.posterior[v].ndim == 2]

    def diagnostics(self) -> dict:
        """Divergences and the worst R-hat / bulk and tail ESS over the judged parameters."""
        names = self._diagnostic_vars()
        post = self.posterior[names]
        rhat, ess_bulk = azs.rhat(post), azs.ess(post, method="bulk")
        ess_tail = azs.ess(post, method="tail")
        stats = group(self.idata, "sample_stats") if "sample_stats" in self.idata.children else {}
        return {
            "divergences": int(stats["diverging"].sum()) if "diverging" in stats else 0,
            "max_r_hat": float(max(rhat[v].max() for v in names)),
            "min_ess_bulk": float(min(ess_bulk[v].min() for v in names)),
            "min_ess_tail": float(min(ess_tail[v].min() for v in names)),
            "draws": int(post.sizes["chain"] * post.sizes["draw"]),
        }

    def diagnostic_problems(self) -> list[str]:
        """Human-readable problems with the draws, each with what to try; empty when fine."""
        d = self.diagnostics()
        out = []
        if d["divergences"]:
            out.append(f"{d['divergences']} divergent transitions: raise target_accept "
                       "(e.g. 0.95-0.99) or tighten the priors")
        if not d["max_r_hat"] <= RHAT_MAX:
            out.append(f"R-hat {d['max_r_hat']:.3f} > {RHAT_MAX}: chains disagree; run more "
                       "tune/draws or check for multiple modes")
        if not d["min_ess_bulk"] >= ESS_MIN:
            out.append(f"bulk ESS {d['min_ess_bulk']:.0f} < {ESS_MIN}: run more draws or chains")
        if d["divergences"]:
            out += self._funnel_hints()
        return out

    def _funnel_hints(self) -> list[str]:
        """Group scales (``*_tau``, ``tau_*``) whose lowest quarter holds at least half of the
        divergent draws: the neck of a funnel, where the data barely tell the groups apart."""
        diverging = group(self.idata, "sample_stats")["diverging"].values.astype(bool)
        hints = []
        for name in self._diagnostic_vars():
            if not (str(name).endswith("_tau") or str(name).startswith("tau_")):
                continue
            values = self.posterior[name].values
            low = values <= np.quantile(values, FUNNEL_QUANTILE)
            share = float(low[diverging].mean())
            if share >= FUNNEL_SHARE:
                hints.append(f"{int(low[diverging].sum())} of the {int(diverging.sum())} divergent "
                             f"draws lie in the lowest quarter of {name}: a funnel where the data "
                             "barely tell its levels apart; drop that offset or grouping, or give "
                             f"{name} a prior that keeps it off 0")
        return hints

    def warn_diagnostics(self) -> None:
        """Issue a :class:`SamplerWarning` listing every diagnostic problem."""
        problems = self.diagnostic_problems()
        if problems:
            warnings.warn("sampler diagnostics: " + "; ".join(problems), SamplerWarning,
                          stacklevel=3)

    def save(self, path, *, overwrite: bool = False) -> None:
        """Write the fit to a netCDF file (atomically: a temporary file, then a rename).

        Raises ``FileExistsError`` if ``path`` exists and ``overwrite`` is False.
        """
        from bayescale.io import save_idata

        save_idata(self.idata, path, overwrite=overwrite)
