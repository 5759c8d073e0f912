"""Credible intervals of posterior quantities as tidy tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.data import lazy

azs = lazy.module("arviz_stats")

__all__ = ["interval", "check_prob"]

_SAMPLE_DIMS = ("chain", "draw")


def interval(x: xr.Dataset | xr.DataArray, prob: float = 0.9, *,
             method: str = "eti") -> pd.DataFrame:
    """Median and credible bounds of posterior draws, one row per variable and coordinate.

    Parameters
    ----------
    x
        Draws with dims ``chain`` and ``draw`` (and any others, e.g. ``budget``, ``point``),
        such as ``fit.posterior``, ``fit.predict(...)`` or ``fit.optimal(...)``.
    prob
        Probability mass inside the interval, in (0, 1).
    method
        ``"eti"``: equal-tailed (quantiles (1-prob)/2 and (1+prob)/2), invariant under
        monotone transforms such as log; ``"hdi"``: highest-density interval (ArviZ).

    Returns
    -------
    pandas.DataFrame
        Columns ``variable``, the other dims' coordinates, the coordinates that label them
        (for ``fit.predict(points)``: ``params``, ``tokens``, ``flops`` and the offset
        columns of each point), ``mean``, ``sd``, ``median``, ``lower``, ``upper``;
        ``attrs`` records ``prob`` and ``method``.

    Examples
    --------
    >>> import numpy as np, xarray as xr, bayescale as bs
    >>> draws = xr.DataArray(np.arange(1000.0).reshape(2, 500), dims=("chain", "draw"), name="x")
    >>> table = bs.interval(draws, prob=0.9)
    >>> table.loc[0, "variable"], round(float(table.loc[0, "median"]), 2), round(float(table.loc[0, "lower"]), 2)
    ('x', 499.5, 49.95)
    """
    check_prob(prob)
    if method not in ("eti", "hdi"):
        raise ValueError(f"method must be 'eti' or 'hdi', got {method!r}")
    if isinstance(x, xr.DataArray):
        x = x.to_dataset(name=x.name if x.name is not None else "value")
    if not isinstance(x, xr.Dataset):
        raise TypeError(f"x must be an xarray Dataset or DataArray, got {type(x).__name__}")
    missing = [d for d in _SAMPLE_DIMS if d not in x.dims]
    if missing:
        raise ValueError(f"x lacks the sample dims {missing}; it has dims {list(x.dims)}")
    frames = [_one(str(name), x[name], prob, method) for name in x.data_vars]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    out.attrs.update(prob=prob, method=method)
    return out


def check_prob(prob: object) -> float:
    """``prob`` as a float if it is a number strictly between 0 and 1; else a ValueError."""
    if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0 < prob < 1:
        raise ValueError(f"prob must be a number strictly between 0 and 1, got {prob!r}")
    return float(prob)


def _one(name: str, da: xr.DataArray, prob: float, method: str) -> pd.DataFrame:
    with np.errstate(invalid="ignore", over="ignore"):  # infinite draws: inf or nan stats,
        return _stats(name, da, prob, method)         # which the callers report as degenerate


def _stats(name: str, da: xr.DataArray, prob: float, method: str) -> pd.DataFrame:
    stats = {
        "mean": da.mean(_SAMPLE_DIMS),
        "sd": da.std(_SAMPLE_DIMS),
        "median": da.median(_SAMPLE_DIMS),
    }
    if method == "eti":
        q = da.quantile([(1 - prob) / 2, (1 + prob) / 2], dim=_SAMPLE_DIMS)
        stats["lower"], stats["upper"] = q.isel(quantile=0, drop=True), q.isel(quantile=1, drop=True)
    else:
        hdi = azs.hdi(da, prob=prob, dim=list(_SAMPLE_DIMS))
        stats["lower"] = hdi.sel(ci_bound="lower", drop=True)
        stats["upper"] = hdi.sel(ci_bound="upper", drop=True)
    ds = xr.Dataset({k: v.drop_vars([c for c in v.coords if c not in v.dims]) for k, v in stats.items()})
    if ds.dims:
        table = ds.to_dataframe().reset_index()
        table = _with_coordinates(table, da, list(ds.dims))
    else:
        table = pd.DataFrame({k: [float(v)] for k, v in ds.items()})
    table.insert(0, "variable", name)
    return table.astype({k: float for k in stats})


def _with_coordinates(table: pd.DataFrame, da: xr.DataArray, dims: list[str]) -> pd.DataFrame:
    """``table`` (one row per combination of ``dims``) with the coordinates that label those
    dims (``params``, ``tokens`` and the offset columns on ``point``) as columns after them."""
    extra = [str(c) for c in da.coords
             if c not in da.dims and da.coords[c].dims and set(da.coords[c].dims) <= set(dims)
             and str(c) not in table.columns]
    if not extra:
        return table
    index = pd.MultiIndex.from_frame(table[dims]) if len(dims) > 1 else pd.Index(table[dims[0]])
    for c in extra:
        values = da.coords[c].to_series()
        values = values.reorder_levels(dims) if len(dims) > 1 and values.index.nlevels > 1 \
            else values
        if values.index.nlevels < len(dims):  # a coordinate along one of several dims
            level = values.index.name
            table[c] = values.reindex(table[level]).to_numpy()
        else:
            table[c] = values.reindex(index).to_numpy()
    return table[[*dims, *extra, *[c for c in table.columns if c not in dims and c not in extra]]]
