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

from bayescale.data.warn import warn

__all__ = ["CANONICAL", "DataWarning", "prepare", "check_table", "check_positive_column",
           "check_loss_varies", "with_float_columns",
           "add_shape_columns", "run_flops", "plain", "snap_budgets", "FLOPS_TOLERANCE",
           "BUDGET_RTOL"]

#: The canonical column names of a run table, in order.
CANONICAL: tuple[str, ...] = ("params", "tokens", "flops", "loss")
#: A given ``flops`` more than this factor away from ``k N D`` is warned about (:func:`prepare`).
FLOPS_TOLERANCE = 2.0
#: Budgets (``flops``) equal within this relative difference are one budget (:func:`prepare`).
BUDGET_RTOL = 1e-9


class DataWarning(UserWarning):
    """A run table is usable but looks wrong (e.g. ``flops`` far from ``k N D``)."""


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
        If ``df`` is not a DataFrame or has MultiIndex columns, or a mapped column is not
        numeric (complex numbers included).
    ValueError
        If a named column is missing or a column name repeats, the table is empty, a value is
        NaN, infinite, zero, negative or too large for a float, a derived value is infinite or
        zero, neither two of N, D, C nor C alone is given, or a run appears twice.

    Warns
    -----
    DataWarning
        When ``flops``, ``params`` and ``tokens`` are all given and a run's ``flops`` differs
        from ``flops_per_param_token * params * tokens`` by more than a factor
        :data:`FLOPS_TOLERANCE`; the warning names the runs.

    Notes
    -----
    Budgets equal within a relative :data:`BUDGET_RTOL` (rounding in a file or in ``k N D``)
    are set to one value, the smallest of them, so that they count as one budget.

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
    _check_frame(df)
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
    _check_derived(values, derived, df.index, k)
    if derived is None and "params" in values and "tokens" in values:
        _warn_flops(values, k, df.index)
    if "flops" in values:
        values["flops"] = snap_budgets(values["flops"])
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
        series = _object_numbers(series, column, argument)
    if pd.api.types.is_complex_dtype(series):
        raise TypeError(f"column {column!r} ({argument}) must hold real numbers; it holds "
                        f"complex numbers such as {series.iloc[0]!r} (dtype {series.dtype})")
    if not (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)):
        unparsable = pd.to_numeric(series, errors="coerce").isna() & series.notna()
        bad = series[unparsable].iloc[0] if unparsable.any() else series.iloc[0]
        raise TypeError(
            f"column {column!r} ({argument}) must be numeric; it holds {bad!r} "
            f"(dtype {series.dtype})"
        )
    values = series.to_numpy(dtype=float, na_value=np.nan)
    for test, what in ((np.isnan, "NaN"), (np.isinf, "infinite"), (lambda v: v <= 0, "not positive")):
        hit = np.flatnonzero(test(values))
        if hit.size:
            row = series.index[hit[0]]
            raise ValueError(
                f"column {column!r} ({argument}) has {hit.size} {what} value(s), first at row "
                f"{row!r}: {float(values[hit[0]])!r}; every value must be a finite positive number"
            )
    return values


def _object_numbers(series: pd.Series, column: str, argument: str) -> pd.Series:
    """A column of Python numbers as float64; an integer beyond the float range is an error."""
    for row, value in series.items():
        try:
            float(value)
        except OverflowError:
            raise ValueError(f"column {column!r} ({argument}) holds an integer of "
                             f"{_digits(value)} digits at row {row!r}, too large for a float; "
                             "every value must be a finite positive number") from None
    return series.astype(float)


def _digits(value: int) -> int:
    return len(str(abs(value))) if abs(value).bit_length() < 10_000 else \
        int(abs(value).bit_length() * 0.30103) + 1


def with_float_columns(runs: pd.DataFrame, values: dict[str, np.ndarray]) -> pd.DataFrame:
    """``runs`` with its object columns among ``values`` (Python numbers, checked by
    :func:`check_positive_column`) replaced by those float64 values; ``runs`` itself when none
    is an object column."""
    objects = [c for c in values if runs[c].dtype == object]
    if not objects:
        return runs
    out = runs.copy()
    for column in objects:
        out[column] = values[column]
    return out


def check_loss_varies(values: np.ndarray, *, column: str = "loss") -> None:
    """Raise a ValueError naming ``column`` when every run has the same loss: no law can be
    learned from it (the posterior of N* and D* is the prior's, with infinite draws)."""
    values = np.asarray(values, dtype=float)
    if values.size >= 2 and np.all(values == values[0]):
        raise ValueError(f"column {column!r} (loss) takes a single value ({values[0]!r}) in "
                         f"all {values.size} runs; a scaling law needs losses that differ")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_frame(df: object) -> None:
    """A DataFrame with rows and one level of distinct column names."""
    check_table(df, argument="df")
    if len(df) == 0:
        raise ValueError("df is empty: a run table needs at least two runs")


def check_table(table: object, *, argument: str, why: str = "") -> None:
    """Raise unless ``table`` is a DataFrame with one level of distinct column names
    (``argument`` names it in the message, ``why`` may point at a helper)."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{argument} must be a pandas DataFrame{why}, got "
                        f"{type(table).__name__}")
    if isinstance(table.columns, pd.MultiIndex):
        raise TypeError(f"{argument} has MultiIndex columns ({table.columns.nlevels} levels, "
                        f"e.g. {table.columns[0]!r}); give it one level of column names")
    if not table.columns.is_unique:
        repeated = sorted({str(c) for c in table.columns[table.columns.duplicated()]})
        raise ValueError(f"{argument} has repeated column name(s) {repeated}; every column "
                         "needs its own name")


def _check_derived(values: dict[str, np.ndarray], derived: str | None, index: pd.Index,
                   k: float) -> None:
    """The derived one of N, D, C must be finite and positive (k N D can overflow)."""
    if derived is None:
        return
    bad = np.flatnonzero(~(np.isfinite(values[derived]) & (values[derived] > 0)))
    if bad.size:
        i = bad[0]
        given = ", ".join(f"{n}={float(values[n][i])!r}" for n in ("params", "tokens", "flops")
                          if n != derived)
        raise ValueError(f"derived column {derived!r} (from C = {k:g} N D) is "
                         f"{float(values[derived][i])!r} at row {index[i]!r} ({given}) and "
                         f"{bad.size} row(s) in all; every value must be a finite positive "
                         "number")


def _warn_flops(values: dict[str, np.ndarray], k: float, index: pd.Index) -> None:
    """Warn (naming the runs) where the given flops are far from k N D."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        ratio = values["flops"] / (k * values["params"] * values["tokens"])
    off = np.flatnonzero(~((ratio <= FLOPS_TOLERANCE) & (ratio >= 1 / FLOPS_TOLERANCE)))
    if off.size:
        named = ", ".join(f"{index[i]!r} ({float(ratio[i]):.3g}x)" for i in off[:5])
        more = f" and {off.size - 5} more" if off.size > 5 else ""
        warn(f"column 'flops' differs from {k:g} * params * tokens by more than a "
                      f"factor {FLOPS_TOLERANCE:g} in {off.size} run(s): {named}{more}; check "
                      "the columns or flops_per_param_token", DataWarning)


def snap_budgets(flops: np.ndarray, rtol: float = BUDGET_RTOL) -> np.ndarray:
    """``flops`` with values equal within relative ``rtol`` set to the smallest of them.

    >>> snap_budgets(np.array([1e21, 1.0000000000000002e21, 2e21])).tolist()
    [1e+21, 1e+21, 2e+21]
    """
    order = np.argsort(flops, kind="stable")
    out = np.array(flops, dtype=float)
    start = None
    for i in order:
        if start is None or out[i] > start * (1 + rtol):
            start = out[i]
        out[i] = start
    return out


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
    with np.errstate(over="ignore", under="ignore"):  # checked by the callers
        return _derive_missing(values, have, k)


def _derive_missing(values: dict[str, np.ndarray], have: set[str], k: float) -> str:
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
