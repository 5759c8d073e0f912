"""nutpie's numba compilation of a PyMC model, kept on disk: compiled once per model
structure per machine, not once per process.

``nutpie.compile_pymc_model`` wraps the model's PyTensor log density (and its gradient) and
the function that computes the trace's deterministics in two ``numba.cfunc`` callbacks,
which read the model's data (its ``pm.Data``) through a pointer. numba refuses to cache
those callbacks (nutpie's data extraction makes them "use dynamic globals"), so every
process compiled the model for 5-10 s. PyTensor caches the inner functions itself (in
``<base_compiledir>/numba``, keyed by the graph); this module writes the two callbacks as
plain source that reads the data from an array of addresses and shapes, and has numba cache
them under PyTensor's cache locator, keyed by the inner function's key and the callback's
own source. A later process that builds a model of the same structure (the same graph and
constants, any data of the same ranks) loads both from disk: about 2 s, most of it
PyTensor's graph rewriting, against 5-10 s.

The callbacks have nutpie's calling convention and return codes, and nutpie's own
:class:`nutpie.compile_pymc.CompiledPyMCModel` samples them: the draws equal those of
``nutpie.compile_pymc_model`` (``tests/test_compiled.py``). Where PyTensor gives no cache
key (its ``numba__cache`` flag is off, or an Op it cannot cache), the model holds more than
:data:`MAX_DATA` data arrays, or nutpie's internals are not those this module was written
against, the model is compiled by ``nutpie.compile_pymc_model`` as before (the first
compilation of a structure costs more here than nutpie's: PyTensor writes each function to
its cache).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import threading

import numpy as np

__all__ = ["compile_pymc_model", "initial_point_fn", "MAX_DATA"]

#: The callbacks pass each data array to PyTensor's function as an argument, and numba
#: cannot compile a call of more than about 30 positional arguments (Python builds them as
#: a list): a model with more data arrays is compiled by nutpie, as before.
MAX_DATA = 24

#: The log density's callback: nutpie's ``logp_numba`` (its checks and return codes), with
#: the data read from ``user_data_``, an int64 array of [address, *shape] per data array.
_LOGP = """
def logp_callback(dim, x_, out_, logp_, user_data_):
    if dim != {n_dim}:
        return -1
    try:
        slots = numba.carray(user_data_, ({n_slots},), np.int64)
{unpack}
        x = numba.carray(x_, ({n_dim},))
        out = numba.carray(out_, ({n_dim},))
        logp = numba.carray(logp_, ())
        logp_val, grad = inner(x{args})
        logp[()] = logp_val
        out[...] = grad
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(logp_val):
            return 4
    except Exception:
        return 1
    return 0
"""
#: The trace's callback: nutpie's ``expand_numba`` with the data read as above.
_EXPAND = """
def expand_callback(dim, expanded, x_, out_, user_data_):
    if dim != {n_dim}:
        return -1
    if expanded != {n_expanded}:
        return -1
    try:
        slots = numba.carray(user_data_, ({n_slots},), np.int64)
{unpack}
        x = numba.carray(x_, ({n_dim},))
        out = numba.carray(out_, ({n_expanded},))
        (values,) = inner(x{args})
        out[...] = values
    except Exception:
        return -2
    return 0
"""


def compile_pymc_model(model):
    """``model`` compiled for nutpie, its numba callbacks loaded from (or written to) the
    on-disk cache; ``nutpie.compile_pymc_model(model)`` where they cannot be cached."""
    import nutpie

    try:
        compiled = _compile(model)
    except ImportError:  # another nutpie or PyTensor than the ones this module reads
        compiled = None
    return nutpie.compile_pymc_model(model) if compiled is None else compiled


def _compile(model):
    import numba
    from nutpie.compile_pymc import _make_functions, _prepare_dims_and_coords

    point = initial_point_fn(model)
    n_dim, n_expanded, logp_fn, expand_fn, initial_point, shape_info, renamed = \
        _make_functions(model, mode="NUMBA", compute_grad=True, join_expanded=True,
                        pymc_initial_point_fn=point)
    variables = list(dict.fromkeys([*logp_fn.get_shared(), *expand_fn.get_shared()]))
    keys = {var: f"data_{i}" for i, var in enumerate(variables)}
    data = {keys[var]: _frozen(var.get_value()) for var in variables}
    ranks = [data[keys[var]].ndim for var in variables]
    types = numba.types
    double = types.CPointer(types.double)
    logp = _callback(_LOGP, "logp_callback", logp_fn, variables, ranks, data, keys,
                     types.int64(types.uint64, double, double, double, types.voidptr),
                     n_dim=n_dim)
    if logp is None:  # nutpie compiles it all: compile no callback of ours for nothing
        return None
    expand = _callback(_EXPAND, "expand_callback", expand_fn, variables, ranks, data, keys,
                       types.int64(types.uint64, types.uint64, double, double, types.voidptr),
                       n_dim=n_dim, n_expanded=n_expanded)
    if expand is None:
        return None
    dims, coords = _prepare_dims_and_coords(model, shape_info, renamed)
    return _cached_class()(
        _n_dim=n_dim, dims=dims, _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info)},
        compiled_logp_func=logp, compiled_expand_func=expand, initial_point_func=initial_point,
        shared_data=data, shared_var_keys=keys, user_data=_slots(data, keys),
        n_expanded=n_expanded, shape_info=shape_info, logp_func=logp_fn,
        expand_func=expand_fn, reparameterized_names=renamed)


def _callback(template, name, function, variables, ranks, data, keys, signature, **sizes):
    """The ``numba.cfunc`` of ``template`` around PyTensor's compiled ``function``, cached on
    disk; None where PyTensor has no cache key for ``function``."""
    import numba
    from nutpie.compile_pymc import address_as_void_pointer
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src

    inner = function.vm.jit_fn
    inner_key = CACHED_SRC_FUNCTIONS.get(getattr(inner, "py_func", None))
    if inner_key is None or len(function.get_shared()) > MAX_DATA:
        return None
    offsets = np.cumsum([0] + [1 + rank for rank in ranks])
    position = {var: i for i, var in enumerate(variables)}
    unpack, args = [], []
    for j, var in enumerate(function.get_shared()):
        at, rank = int(offsets[position[var]]), ranks[position[var]]
        shape = "".join(f"slots[{at + 1 + d}], " for d in range(rank))
        dtype = data[keys[var]].dtype.name
        unpack.append(f"        a{j} = numba.carray(void_ptr(slots[{at}]), ({shape}), "
                      f"np.{dtype})")
        args.append(f", a{j}")
    source = template.format(n_slots=max(int(offsets[-1]), 1), unpack="\n".join(unpack),
                             args="".join(args), **sizes)
    key = hashlib.sha256(f"{inner_key}\n{source}".encode()).hexdigest()
    python = compile_numba_function_src(
        source, name, {"__name__": __name__, "numba": numba, "np": np, "inner": inner,
                       "void_ptr": address_as_void_pointer}, cache_key=f"bayescale_{key}")
    return numba.cfunc(signature, cache=True)(python)


def initial_point_fn(model):
    """``model``'s initial point by seed (its prior's support point, jittered as nutpie does;
    transformed values by name), called by one thread at a time: nutpie asks for each
    chain's start from the chain's own thread, and PyTensor's compiled function is not
    reentrant (two chains at once read each other's outputs)."""
    from pymc.initial_point import make_initial_point_fn

    point = make_initial_point_fn(model=model, jitter_rvs=set(model.free_RVs),
                                  return_transformed=True)
    lock = threading.Lock()

    def locked(seed):
        with lock:
            return point(seed)

    return locked


def _frozen(value) -> np.ndarray:
    array = np.array(value, order="C", copy=True)
    array.flags.writeable = False
    return array


def _slots(data: dict[str, np.ndarray], keys: dict) -> np.ndarray:
    """The callbacks' ``user_data``: [address, *shape] of each data array, in ``keys``'
    order."""
    slots = []
    for key in keys.values():
        slots += [data[key].ctypes.data, *data[key].shape]
    return np.asarray(slots or [0], dtype=np.int64)


@functools.cache
def _cached_class():
    from nutpie.compile_pymc import CompiledPyMCModel

    @dataclasses.dataclass(frozen=True)
    class CachedPyMCModel(CompiledPyMCModel):
        """nutpie's compiled PyMC model whose callbacks read the data from
        :func:`_slots`'s array (``with_data`` rewrites that array, not nutpie's record)."""

        def with_data(self, **updates):
            names = {var.name: key for var, key in self.shared_var_keys.items()}
            data = dict(self.shared_data)
            for name, value in updates.items():
                if name not in names:
                    raise KeyError(f"Unknown shared variable: {name}")
                old = data[names[name]]
                new = _frozen(np.asarray(value, dtype=old.dtype))
                if new.ndim != old.ndim:
                    raise ValueError(f"Shared variable {name} must have rank {old.ndim}")
                data[names[name]] = new
            return dataclasses.replace(self, shared_data=data,
                                       user_data=_slots(data, self.shared_var_keys))

    return CachedPyMCModel

