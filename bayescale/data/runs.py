"""Run tables: canonical columns, derivation of N, D and C, validation.

A *run table* is a :class:`pandas.DataFrame` with one row per training run and the canonical
columns ``params`` (N, parameters), ``tokens`` (D, training tokens), ``flops`` (C, training
compute) and ``loss`` (final loss), plus any other columns the user keeps (hyperparameters,
seeds, names). :func:`prepare` maps user column names onto the canonical ones, derives the
missing one of N, D and C from ``C = k * N * D`` (``k = 6`` by default) and checks every value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["CANONICAL", "prepare", "check_positive_column", "add_shape_columns", "run_flops",
           "plain"]

#: The canonical column names of a run table, in order.
CANONICAL: tuple[str, ...] = ("params", "tokens", "flops", "loss")


def prepare(
    df: pd.DataFrame,
    *,
    params: str | None = None,
    tokens: str | None = None,
    flops: str | None = None,
    loss: str = "loss",
    flops_per_param_token: float = 6.0,
) -> pd.DataFrame:
    """Map a table of training runs onto bayescale's canonical columns and validate it.

    Parameters
    ----------
    df
        One row per training run.
    params, tokens, flops
        Names of the columns holding model size N, training tokens D and training compute C.
        Each defaults to the canonical name when ``df`` has a column of that name. Give at least
        two of N, D and C (the third is derived from ``C = flops_per_param_token * N * D``) or
        ``flops`` alone (enough for laws in compute only).
    loss
        Name of the column holding the final loss of each run.
    flops_per_param_token
        The constant k in ``C = k * N * D``; 6 for dense Transformers (forward + backward).

    Returns
    -------
    pandas.DataFrame
        A new table: ``params, tokens, flops, loss`` first (those that are known; the mapped
        user columns are renamed to these), then every other column of ``df`` unchanged. ``attrs["derived"]`` names the derived column, if any.

    Raises
    ------
    TypeError
        If ``df`` is not a DataFrame, or a mapped column is not numeric.
    ValueError
        If a named column is missing, the table is empty, a value is NaN, infinite, zero or
        negative, neither two of N, D, C nor C alone is given, or a run appears twice.

    Examples
    --------
    >>> import pandas as pd, bayescale as bs
    >>> df = pd.DataFrame({"N": [1e8, 4e8], "C": [1e18, 1e19], "val_loss": [3.1, 2.8]})
    >>> runs = bs.prepare(df, params="N", flops="C", loss="val_loss")
    >>> list(runs.columns)
    ['params', 'tokens', 'flops', 'loss']
    >>> float(runs["tokens"].iloc[0])  # 1e18 / (6 * 1e8)
    1666666666.6666667
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    if len(df) == 0:
        raise ValueError("df is empty: a run table needs at least two runs")
    k = _check_factor(flops_per_param_token)
    mapping = {
        name: _resolve(df, name, given)
        for name, given in (("params", params), ("tokens", tokens), ("flops", flops), ("loss", loss))
    }
    if mapping["loss"] is None:
        raise ValueError(f"loss={loss!r} is not a column of df; columns are {list(df.columns)}")
    values = {name: check_positive_column(df, column, argument=name)
              for name, column in mapping.items() if column is not None}
    derived = _derive(values, k)
    out = pd.DataFrame({name: values[name] for name in CANONICAL if name in values}, index=df.index)
    rest = df.drop(columns=[c for c in mapping.values() if c is not None])
    rest = rest.drop(columns=[c for c in rest.columns if c in out.columns])
    out = pd.concat([out, rest], axis=1)
    check_duplicates(out)
    out.attrs["derived"] = derived
    out.attrs["flops_per_param_token"] = k
    return out


def check_positive_column(df: pd.DataFrame, column: str, *, argument: str) -> np.ndarray:
    """Return ``df[column]`` as float64, raising if it is not numeric, finite and positive.

    A column of dtype ``object`` whose every value is a number (pandas reads integers beyond
    int64, such as 7.96e21 FLOPs written out in digits, as Python ints) is taken as numbers.
    """
    series = df[column]
    if series.dtype == object and series.map(_is_number).all():
        series = series.astype(float)
    if not (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)):
        unparsable = pd.to_numeric(series, errors="coerce").isna() & series.notna()
        bad = series[unparsable].iloc[0] if unparsable.any() else series.iloc[0]
        raise TypeError(
            f"column {column!r} ({argument}) must be numeric; it holds {bad!r} "
            f"(dtype {series.dtype})"
        )
    values = series.to_numpy(dtype=float)
    for test, what in ((np.isnan, "NaN"), (np.isinf, "infinite"), (lambda v: v <= 0, "not positive")):
        hit = np.flatnonzero(test(values))
        if hit.size:
            row = series.index[hit[0]]
            raise ValueError(
                f"column {column!r} ({argument}) has {hit.size} {what} value(s), first at row "
                f"{row!r}: {float(values[hit[0]])!r}; every value must be a finite positive number"
            )
    return values


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_factor(value: float) -> float:
    if not _is_number(value):
        raise TypeError(f"flops_per_param_token must be a number, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"flops_per_param_token must be a finite positive number, got {value!r}")
    return float(value)


def _resolve(df: pd.DataFrame, name: str, given: str | None) -> str | None:
    """The column of ``df`` that holds canonical quantity ``name``, or None when absent."""
    if given is None:
        return name if name in df.columns else None
    if not isinstance(given, str):
        raise TypeError(f"{name} must be a column name (str), got {given!r}")
    if given not in df.columns:
        raise ValueError(f"{name}={given!r} is not a column of df; columns are {list(df.columns)}")
    return given


def _derive(values: dict[str, np.ndarray], k: float) -> str | None:
    """Fill in the missing one of params, tokens, flops in place; return its name."""
    have = {n for n in ("params", "tokens", "flops") if n in values}
    if have == {"params", "tokens", "flops"} or have == {"flops"}:
        return None
    if have == {"params", "tokens"}:
        values["flops"] = k * values["params"] * values["tokens"]
        return "flops"
    if have == {"params", "flops"}:
        values["tokens"] = values["flops"] / (k * values["params"])
        return "tokens"
    if have == {"tokens", "flops"}:
        values["params"] = values["flops"] / (k * values["tokens"])
        return "params"
    raise ValueError(
        f"give at least two of params, tokens, flops (or flops alone); found only {sorted(have)}. "
        "Name the columns with params=..., tokens=..., flops=..."
    )


def run_flops(runs: pd.DataFrame) -> np.ndarray:
    """Each run's compute: its ``flops`` column, else ``k N D`` with ``k`` from the table's
    ``attrs["flops_per_param_token"]`` (6 unless set)."""
    if "flops" in runs.columns:
        return runs["flops"].to_numpy(dtype=float)
    k = float(runs.attrs.get("flops_per_param_token", 6.0))
    return k * runs["params"].to_numpy(dtype=float) * runs["tokens"].to_numpy(dtype=float)


def check_duplicates(runs: pd.DataFrame) -> None:
    """Raise a ValueError if a row repeats an earlier row in every column."""
    dup = runs.duplicated(keep="first")
    if dup.any():
        first = runs.index[np.flatnonzero(dup.to_numpy())[0]]
        raise ValueError(
            f"{int(dup.sum())} duplicate run(s): row {first!r} repeats an earlier row in every "
            "column; drop the copies (replicate seeds need a column that tells them apart)"
        )


def require_columns(runs: pd.DataFrame, columns: Sequence[str], *, why: str) -> None:
    """Raise a ValueError naming the first of ``columns`` that ``runs`` lacks."""
    for column in columns:
        if column not in runs.columns:
            raise ValueError(
                f"{why} needs column {column!r}, which the run table lacks; "
                f"it has {list(runs.columns)}"
            )


def add_shape_columns(table: pd.DataFrame) -> pd.DataFrame:
    """Add Transformer shape columns derived from ``d_model``, ``num_layers``, ``num_heads``.

    ``aspect_ratio = d_model / num_layers`` (width per layer) and ``head_dim = d_model /
    num_heads``, where the source columns are present. Returns a new table.

    >>> import pandas as pd
    >>> add_shape_columns(pd.DataFrame({"d_model": [512], "num_layers": [8], "num_heads": [8]}))
       d_model  num_layers  num_heads  aspect_ratio  head_dim
    0      512           8          8          64.0      64.0
    """
    out = table.copy()
    if {"d_model", "num_layers"} <= set(out.columns):
        out["aspect_ratio"] = out["d_model"] / out["num_layers"]
    if {"d_model", "num_heads"} <= set(out.columns):
        out["head_dim"] = out["d_model"] / out["num_heads"]
    return out


def plain(value):
    """A NumPy scalar as the Python value it holds (anything else as it is): for run ids and
    levels that go into specs, messages and tables.

    >>> plain(np.int64(3)), plain("adam")
    (3, 'adam')
    """
    return value.item() if isinstance(value, np.generic) else value
