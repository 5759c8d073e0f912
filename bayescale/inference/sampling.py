"""NUTS backends and the noise density: take a PyMC model, return a DataTree.

One place that runs NUTS (nutpie, PyMC or NumPyro), checks the sampler arguments, keeps nutpie
compilations for reuse, and evaluates the log-scale noise density from draws. It knows nothing
of bayescale's models.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np
import xarray as xr

from bayescale.data import lazy
from bayescale.inference.compiled import compile_pymc_model, initial_point_fn
from bayescale.inference.progress import phase
from bayescale.inference.trees import group

pm = lazy.module("pymc")

__all__ = ["SAMPLERS", "sample", "COMPILE_CACHE_SIZE", "clear_compile_cache",
           "check_sampler_arguments", "check_memory", "memory_bytes", "SamplingInterrupted"]

SAMPLERS = ("nutpie", "pymc", "numpyro")
#: PyTensor's compilation is not safe to start from two threads at once (fit_many on threads).
_COMPILE_LOCK = threading.Lock()
#: nutpie models compiled in this process and the PyMC model each was compiled from, by
#: structure key (see :func:`sample`), newest last.
_COMPILED: OrderedDict[str, tuple[object, object]] = OrderedDict()
#: How many compiled nutpie models :data:`_COMPILED` keeps.
COMPILE_CACHE_SIZE = 8
#: nutpie's mass-matrix adaptation: a diagonal modified by the leading eigenvectors of the
#: draws' and gradients' covariance. A law's amplitudes and exponents are strongly
#: correlated, which a diagonal mass matrix cannot undo: on the Chinchilla runs it needs
#: about 55 gradients a draw, the low-rank one about 7, for about 2.5x the effective draws
#: (benchmarks/RESULTS.md).
NUTPIE_ADAPTATION = "low_rank"


class SamplingInterrupted(KeyboardInterrupt):
    """The sampler stopped before every chain had its draws (Ctrl-C, SIGTERM): no fit is made.

    nutpie (and PyMC) catch ``KeyboardInterrupt`` and return the draws made so far; a partial
    posterior is never a fit, so :func:`sample` raises this instead. It is a
    ``KeyboardInterrupt``, so code that stops on Ctrl-C stops on it too.
    """


def sample(model: pm.Model, *, draws: int, tune: int, chains: int, random_seed: int | None,
           sampler: str, target_accept: float, progressbar: bool, compile_key: str | None = None,
           data: Mapping[str, np.ndarray] | None = None) -> tuple[xr.DataTree, int]:
    """Check the arguments, run NUTS, drop the unconstrained copies; return (idata, seed).

    With ``sampler="nutpie"`` and a ``compile_key``, the compiled model is kept in this process
    and a later model with the same key is not compiled again: its ``data`` (the values of the
    model's ``pm.Data`` variables, by name; their lengths may differ) are swapped into the
    compiled one, and the chains start from this model's own initial point. The key must
    therefore fix everything else the graph holds (structure, constants); the draws are those
    of a fresh compilation, up to floating-point rounding.

    Raises :class:`SamplingInterrupted` when the sampler returns fewer draws than asked (it was
    interrupted: nutpie and PyMC return the draws made so far on ``KeyboardInterrupt``).
    """
    check_sampler_arguments(draws=draws, tune=tune, chains=chains, sampler=sampler,
                            target_accept=target_accept)
    seed = _seed(random_seed)
    kwargs = {"compile_key": compile_key, "data": data} if sampler == "nutpie" else {}
    idata = _SAMPLE[sampler](model, draws=int(draws), tune=int(tune), chains=int(chains),
                             seed=seed, target_accept=target_accept, progressbar=progressbar,
                             **kwargs)
    posterior = group(idata, "posterior")
    _check_complete(posterior, draws=int(draws), chains=int(chains))
    posterior = posterior[[v for v in posterior.data_vars if not str(v).endswith("__")]]
    posterior.attrs.update(sampler=sampler, random_seed=seed, tune=int(tune),
                           target_accept=float(target_accept))
    stats = group(idata, "sample_stats")
    stats = stats[[v for v in stats.data_vars if stats[v].dtype != object]]  # netCDF-storable
    tree = xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})
    return tree, seed


def check_sampler_arguments(*, draws, tune, chains, sampler, target_accept) -> None:
    """Raise a ValueError naming the first sampler argument that cannot be used: ``draws`` and
    ``chains`` integers >= 1, ``tune`` >= 0 (each below 2**63), a known ``sampler``, and a float
    ``target_accept`` in [0.5, 1)."""
    for name, value, low in (("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if value >= 2**63:
            raise ValueError(f"{name} must be an integer below 2**63, got {value!r}")
    if not isinstance(sampler, str) or sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
    if not (isinstance(target_accept, float) and 0.5 <= target_accept < 1):
        raise ValueError(f"target_accept must be a float in [0.5, 1), got {target_accept!r}")


def memory_bytes() -> int | None:
    """The machine's physical memory in bytes (``os.sysconf``), or None where unknown."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(*, draws: int, chains: int, values_per_draw: int) -> None:
    """Raise a ValueError naming ``draws`` when the kept draws alone (``draws * chains *
    values_per_draw`` float64 values: the parameters and the log-likelihood points) would not
    fit in the machine's memory (:func:`memory_bytes`)."""
    available = memory_bytes()
    need = int(draws) * int(chains) * int(values_per_draw) * 8
    if available is not None and need > available:
        raise ValueError(f"draws={draws} with chains={chains} would hold {need / 2**30:.3g} GiB "
                         f"of draws ({values_per_draw} values per draw: parameters and "
                         f"log-likelihood points), more than this machine's "
                         f"{available / 2**30:.3g} GiB of memory; lower draws")
def _check_complete(posterior: xr.Dataset, *, draws: int, chains: int) -> None:
    """Raise :class:`SamplingInterrupted` unless ``posterior`` holds ``chains`` x ``draws``
    draws; an interrupted nutpie pads its shorter chains with draws that are NaN throughout."""
    got = (posterior.sizes.get("chain", 0), posterior.sizes.get("draw", 0))
    floats = [posterior[v].values for v in posterior.data_vars
              if posterior[v].dtype.kind == "f" and posterior[v].size]
    empty = 0
    if got == (chains, draws) and floats:
        empty = int(np.logical_and.reduce([np.isnan(v.reshape(*got, -1)).all(axis=-1)
                                           for v in floats]).sum())
    if got != (chains, draws) or empty:
        raise SamplingInterrupted(
            f"sampling stopped early: {got[0]} chains x {got[1]} draws of {chains} x {draws} "
            f"asked" + (f", {empty} of them empty (NaN)" if empty else "") + "; no fit was made")


def _sample_nutpie(model, *, draws, tune, chains, seed, target_accept, progressbar,
                   compile_key=None, data=None):
    import nutpie

    with _COMPILE_LOCK:
        compiled = _COMPILED.get(compile_key) if compile_key is not None else None
        if compiled is None:
            with phase("compiling the model (numba)"):
                compiled = compile_pymc_model(model)
            if compile_key is not None:
                _COMPILED[compile_key] = (compiled, model)
                while len(_COMPILED) > COMPILE_CACHE_SIZE:
                    _COMPILED.popitem(last=False)
        else:
            _COMPILED.move_to_end(compile_key)
            compiled, source = compiled
            if source is not model:
                compiled = _reused(compiled, model, data or {})
    with phase(_sampling(chains, tune, draws, "nutpie")):
        return nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed,
                             target_accept=target_accept, progress_bar=progressbar,
                             save_warmup=False, cores=min(chains, os.cpu_count() or 1),
                             adaptation=NUTPIE_ADAPTATION)


def _reused(compiled, model, data: Mapping[str, np.ndarray]):
    """nutpie's ``compiled`` (a model of the same structure as ``model``) with ``model``'s
    ``data`` swapped in and ``model``'s initial point: its prior's support point, jittered
    as nutpie does (:func:`pymc.initial_point.make_initial_point_fn`), so that the chains
    start where a fresh compilation of ``model`` would start them. Callers hold the compile
    lock (PyTensor compiles the initial point's function)."""
    known = {var.name for var in compiled.shared_var_keys}
    compiled = compiled.with_data(**{k: v for k, v in data.items() if k in known})
    point = initial_point_fn(model)
    names = [model.rvs_to_values[var].name for var in model.free_RVs]

    def initial_point(seed):
        values = point(seed)
        return np.concatenate([np.asarray(values[n], dtype="float64").ravel() for n in names])

    return dataclasses.replace(compiled, initial_point_func=initial_point)


def _sampling(chains: int, tune: int, draws: int, sampler: str) -> str:
    return f"sampling: {chains} chains x {tune} tuning + {draws} draws ({sampler})"


def _sample_pymc(model, *, draws, tune, chains, seed, target_accept, progressbar,
                 nuts_sampler="pymc"):
    with model, phase(_sampling(chains, tune, draws, nuts_sampler)):
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


