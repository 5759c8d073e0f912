"""Learning curves and seed replicates as run tables.

Two kinds of rows carry more than one final loss per configuration (a third,
:func:`learning_curves`, makes the table of :class:`bayescale.LearningCurves`: checkpoints with
the learning rate their run has not yet annealed, for a schedule term instead of a cut-off):

- **checkpoints** of a learning curve: the loss of one training run after ``tokens`` seen so
  far. :func:`checkpoints` keeps the checkpoints late enough in their run's learning-rate
  schedule to stand for a run trained to that many tokens, and adds a ``curve`` column that
  identifies the run, so that ``ScalingLaw(table, offsets=["curve"])`` gives the checkpoints
  of one run a shared offset (pooled with scale ``curve_tau``) while the law is evaluated at
  the tokens seen so far.
- **seed replicates**: runs that repeat one configuration with another seed.
  :func:`replicates` adds a ``config`` column that identifies the configuration and marks it in
  ``attrs["replicates"]``; ``ScalingLaw(table, offsets=["config"])`` then splits the scatter
  into the between-configuration misfit ``config_tau`` and the within-configuration seed noise
  ``sigma``, which :meth:`bayescale.Fit.summary` reports as ``sigma_misfit`` and
  ``sigma_seed``.

Why a cut-off for checkpoints: a run's learning rate decays to its own final token count, so
a checkpoint taken before the end has not been annealed and sits *above* the loss of a run
trained (and annealed) to the same tokens. On the OLMo ladder's 190M-1B runs (cosine schedules)
the mean excess over their sizes' final losses is about 1.4% of the loss up to 40% of the run,
0.4% at 60-70%, 0.15% at 70-80% and within 0.1% from 80% on (within 0.3% for every run
length; ``benchmarks/olmo_curves.py`` prints the table), so :data:`MIN_FRACTION` is 0.8. Other schedules need their own check: with
a warmup-stable-decay schedule only checkpoints after a decay are usable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayescale.data.runs import check_positive_column, require_columns

__all__ = ["checkpoints", "learning_curves", "replicates", "MIN_FRACTION", "CURVE", "CONFIG",
           "LR_LEFT", "CURVES_MIN_FRACTION"]

#: Default of ``min_fraction``: keep checkpoints that have seen at least 80% of their run's
#: final tokens (see the module docstring for the measurement behind it).
MIN_FRACTION = 0.8
#: Default of ``min_fraction`` in :func:`learning_curves`: the schedule term explains the
#: checkpoints before the decay, so only the first 30% of each run (warmup and the fastest
#: early drop, where no power law in tokens holds) is left out.
CURVES_MIN_FRACTION = 0.3
#: The column :func:`learning_curves` adds: the learning rate not yet annealed,
#: ``(lr - final lr) / peak lr`` of the run, 1 at the peak and 0 at the end of the schedule.
LR_LEFT = "lr_left"
#: The column :func:`checkpoints` adds: the training run a checkpoint belongs to.
CURVE = "curve"
#: The column :func:`replicates` adds: the configuration a run repeats.
CONFIG = "config"
#: Tolerance on ``tokens <= final_tokens`` (logged token counts are rounded).
_ROUNDING = 1e-6


def checkpoints(curves: pd.DataFrame, *, run: str = "run", final_tokens: str | None = None,
                min_fraction: float = MIN_FRACTION) -> pd.DataFrame:
    """Checkpoints of learning curves as a run table for a law with per-run offsets.

    Parameters
    ----------
    curves
        A run table (see :func:`bayescale.prepare`) with one row per checkpoint: ``params``,
        ``tokens`` seen so far and ``loss`` at that checkpoint, and a column naming the run.
    run
        The column that identifies the training run of each checkpoint.
    final_tokens
        A column holding each run's total tokens (where its learning-rate schedule ends).
        ``None`` takes the largest ``tokens`` of each run, right when every curve was logged
        to its end.
    min_fraction
        Keep checkpoints with ``tokens >= min_fraction * final_tokens``: 1.0 keeps only the
        final checkpoints, 0.0 every checkpoint.

    Returns
    -------
    pandas.DataFrame
        The kept rows, every column of ``curves``, plus ``curve`` (the run, as a string),
        ``final_tokens`` and ``fraction`` (``tokens / final_tokens``). Fit it with
        ``bs.ScalingLaw(table, offsets=["curve"])``; predict a new run's final loss at its
        final tokens with ``kind="new_run"`` and an unseen ``curve``.

    Raises
    ------
    TypeError
        If ``curves`` is not a DataFrame or ``min_fraction`` not a number.
    ValueError
        If a column is missing or already named ``curve``/``fraction``, a run changes
        ``params`` between checkpoints, a checkpoint has more tokens than its run's final
        tokens, ``min_fraction`` is outside [0, 1], or fewer than 2 rows are kept.

    Examples
    --------
    >>> import bayescale as bs
    >>> curves = bs.datasets.load("olmo_ladder_curves")
    >>> late = bs.checkpoints(curves)
    >>> len(late), late["curve"].nunique(), bool(late["fraction"].min() >= 0.8)
    (733, 30, True)
    """
    if not isinstance(curves, pd.DataFrame):
        raise TypeError(f"curves must be a pandas DataFrame, got {type(curves).__name__}")
    fraction_min = _check_fraction(min_fraction)
    require_columns(curves, ["params", "tokens", "loss", run], why="checkpoints")
    for taken in (CURVE, "fraction") + (() if final_tokens else ("final_tokens",)):
        if taken in curves.columns and taken != run:
            raise ValueError(f"curves already has a column {taken!r}, which checkpoints() adds; "
                             "rename it")
    if curves[run].isna().any():
        raise ValueError(f"column {run!r} (run) has missing values")
    tokens = check_positive_column(curves, "tokens", argument="tokens")
    _check_constant_params(curves, run)
    if final_tokens is None:
        final = curves.groupby(run, sort=False)["tokens"].transform("max").to_numpy(dtype=float)
    else:
        require_columns(curves, [final_tokens], why="final_tokens")
        final = check_positive_column(curves, final_tokens, argument="final_tokens")
    fraction = tokens / final
    over = np.flatnonzero(fraction > 1 + _ROUNDING)
    if over.size:
        row = curves.index[over[0]]
        raise ValueError(f"checkpoint {row!r} of run {curves[run].iloc[over[0]]!r} has seen "
                         f"{tokens[over[0]]:.6g} tokens, more than its final_tokens "
                         f"{final[over[0]]:.6g}")
    out = curves.assign(**{CURVE: curves[run].astype(str), "final_tokens": final,
                           "fraction": np.minimum(fraction, 1.0)})
    out = out[out["fraction"] >= fraction_min - _ROUNDING]
    if len(out) < 2:
        raise ValueError(f"min_fraction={min_fraction!r} keeps {len(out)} checkpoint(s); a "
                         "scaling law needs at least 2")
    out.attrs = dict(curves.attrs)
    return out


def learning_curves(curves: pd.DataFrame, *, run: str = "run", lr: str = "lr",
                    final_tokens: str | None = None, final_lr: str | float | None = None,
                    min_fraction: float = CURVES_MIN_FRACTION,
                    per_run: int | None = 12) -> pd.DataFrame:
    """Learning curves as the table of :class:`bayescale.LearningCurves`: checkpoints with
    the state of their run's learning-rate schedule.

    Parameters
    ----------
    curves
        A long table, one row per checkpoint: ``params``, ``tokens`` seen so far, ``loss`` at
        that checkpoint, the run's id (``run``) and the learning rate at that step (``lr``).
        ``bs.read_opda`` gives such a table (``lr="lr_at_step"``); the bundled
        ``olmo_ladder_curves`` carry ``lr`` (from the ladder's schedule); a user's own logs
        go through :func:`bayescale.prepare` first.
    run, lr
        The columns of the run id and of the learning rate (any units: only its ratio to the
        run's peak is used).
    final_tokens
        A column with each run's planned total tokens (where its schedule ends); ``None``
        takes each run's last checkpoint, right when every run was logged to its end.
    final_lr
        The learning rate at the end of the schedule: a column, one number for every run, or
        ``None`` for the ``lr`` of each run's last checkpoint (every run logged to its end).
        A run not yet finished needs it (and ``final_tokens``).
    min_fraction
        Keep checkpoints with ``tokens >= min_fraction * final_tokens`` (0.3 by default).
    per_run
        Keep at most this many checkpoints per run, evenly spaced in log tokens, always with
        the run's last one (``None``: all). Neighbouring checkpoints of a smooth curve say
        nearly the same thing and only slow NUTS.

    Returns
    -------
    pandas.DataFrame
        The kept rows, with the columns of :func:`checkpoints` (``curve``, ``final_tokens``,
        ``fraction``) and ``lr_left = (lr - final lr) / peak lr`` in [0, 1] (the peak over
        all of the run's rows, before ``min_fraction``).

    Raises
    ------
    TypeError, ValueError
        For what :func:`checkpoints` refuses, a missing, negative or non-finite ``lr``, a run
        whose learning rate is never positive, a run not logged to its end without
        ``final_lr``, or a ``per_run`` that is not a positive integer.

    Examples
    --------
    >>> import bayescale as bs
    >>> table = bs.learning_curves(bs.datasets.load("olmo_ladder_curves"))
    >>> len(table), table["curve"].nunique(), float(table["lr_left"].max().round(3))
    (360, 30, 0.794)
    """
    if not isinstance(curves, pd.DataFrame):
        raise TypeError(f"curves must be a pandas DataFrame, got {type(curves).__name__}")
    require_columns(curves, [lr], why="learning_curves(lr=...)")
    if per_run is not None and (isinstance(per_run, bool) or not isinstance(per_run, int)
                                or per_run < 2):
        raise ValueError(f"per_run must be an integer of at least 2 or None, got {per_run!r}")
    if LR_LEFT in curves.columns:
        raise ValueError(f"curves already has a column {LR_LEFT!r}, which learning_curves() "
                         "adds; rename it")
    rate = _check_lr(curves, lr)
    every = checkpoints(curves, run=run, final_tokens=final_tokens, min_fraction=0.0)
    peak = pd.Series(rate, index=curves.index).groupby(curves[run]).transform("max")
    if (peak <= 0).any():
        raise ValueError(f"run {curves[run][peak <= 0].iloc[0]!r} has no positive {lr!r}")
    end = _final_lr(every, run, lr, final_lr)
    left = np.clip((rate - end) / peak.to_numpy(), 0.0, 1.0)
    out = every.assign(**{LR_LEFT: left})
    out = out[out["fraction"] >= _check_fraction(min_fraction) - _ROUNDING]
    if per_run is not None:
        out = out.loc[[i for _, one in out.sort_values("tokens").groupby(CURVE, sort=False)
                       for i in _log_spaced(one, per_run)]]
    if len(out) < 2:
        raise ValueError(f"min_fraction={min_fraction!r} keeps {len(out)} checkpoint(s)")
    out.attrs = dict(curves.attrs)
    return out


def _check_lr(curves: pd.DataFrame, lr: str) -> np.ndarray:
    values = pd.to_numeric(curves[lr], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if bad.size:
        raise ValueError(f"column {lr!r} (learning rate) must hold finite numbers >= 0; row "
                         f"{curves.index[bad[0]]!r} has {curves[lr].iloc[bad[0]]!r}")
    return values


def _final_lr(table: pd.DataFrame, run: str, lr: str, final_lr) -> np.ndarray:
    """The learning rate at the end of each row's schedule (see learning_curves)."""
    if isinstance(final_lr, str):
        require_columns(table, [final_lr], why="final_lr")
        return _check_lr(table, final_lr)
    if final_lr is not None:
        if isinstance(final_lr, bool) or not isinstance(final_lr, (int, float, np.number)) \
                or not np.isfinite(final_lr) or final_lr < 0:
            raise ValueError(f"final_lr must be a column name or a number >= 0, got {final_lr!r}")
        return np.full(len(table), float(final_lr))
    last = table.sort_values("tokens").groupby(run, sort=False).tail(1)
    unfinished = last[last["fraction"] < 1 - _ROUNDING]
    if len(unfinished):
        raise ValueError(f"run {unfinished[run].iloc[0]!r} was not logged to its final_tokens "
                         "(its schedule's end is unknown); give final_lr")
    return table[run].map(last.set_index(run)[lr]).to_numpy(dtype=float)


def _log_spaced(one: pd.DataFrame, count: int) -> list:
    """At most ``count`` rows of one curve (sorted by tokens), evenly spaced in log tokens."""
    log_t = np.log(one["tokens"].to_numpy(dtype=float))
    grid = np.linspace(log_t[0], log_t[-1], count)
    picks = np.unique(np.searchsorted(log_t, grid).clip(0, len(one) - 1))
    return list(one.index[np.union1d(picks, [len(one) - 1])])


def replicates(runs: pd.DataFrame, *, by: Sequence[str]) -> pd.DataFrame:
    """Mark seed replicates: runs that agree on the columns ``by`` repeat one configuration.

    Parameters
    ----------
    runs
        A run table with one row per training run (final losses).
    by
        The columns that define a configuration, e.g. ``["params", "tokens"]`` or the
        hyperparameters of a sweep. Runs equal on all of them are seeds of one configuration.

    Returns
    -------
    pandas.DataFrame
        A copy of ``runs`` with a ``config`` column (one string per configuration, its ``by``
        values joined by ``|``) and ``attrs["replicates"] = "config"``. Fit it with
        ``bs.ScalingLaw(table, offsets=["config"])``: the summary then has rows
        ``sigma_seed`` (the scale of the noise between seeds of one configuration, ``sigma``)
        and ``sigma_misfit`` (the scale of the configurations' offsets from the law,
        ``config_tau``).

    Raises
    ------
    TypeError
        If ``runs`` is not a DataFrame or ``by`` is not a list of column names.
    ValueError
        If a column of ``by`` is missing or has missing values, ``runs`` already has a
        ``config`` column, or no configuration has two or more runs.

    Examples
    --------
    >>> import bayescale as bs
    >>> runs = bs.replicates(bs.datasets.load("olmo_ladder"), by=["params", "tokens"])
    >>> runs["config"].nunique(), int(runs["config"].duplicated().sum())
    (25, 5)
    """
    if not isinstance(runs, pd.DataFrame):
        raise TypeError(f"runs must be a pandas DataFrame, got {type(runs).__name__}")
    if isinstance(by, str) or not isinstance(by, Sequence) or not by:
        raise TypeError(f"by must be a non-empty list of column names, got {by!r}")
    require_columns(runs, list(by), why="replicates(by=...)")
    if CONFIG in runs.columns:
        raise ValueError(f"runs already has a column {CONFIG!r}, which replicates() adds; "
                         "rename it")
    for col in by:
        if runs[col].isna().any():
            raise ValueError(f"column {col!r} (by) has missing values")
    config = runs[list(by)].astype(str).agg("|".join, axis=1)
    if not config.duplicated().any():
        raise ValueError(f"no two runs share a configuration of {list(by)}: there are no seed "
                         "replicates to separate from the misfit")
    out = runs.assign(**{CONFIG: config})
    out.attrs = dict(runs.attrs) | {"replicates": CONFIG}
    return out


def _check_fraction(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"min_fraction must be a number, got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"min_fraction must lie in [0, 1], got {value!r}")
    return float(value)


def _check_constant_params(curves: pd.DataFrame, run: str) -> None:
    spread = curves.groupby(run, sort=False)["params"].agg(["min", "max"])
    changing = spread.index[spread["min"] != spread["max"]]
    if len(changing):
        raise ValueError(f"run {changing[0]!r} changes params between checkpoints "
                         f"({spread.loc[changing[0], 'min']:.6g} to "
                         f"{spread.loc[changing[0], 'max']:.6g}); one run is one model size")
