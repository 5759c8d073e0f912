"""Readers of training-run files: run tables and the OPDA hyperparameter-tuning format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bayescale.data.runs import prepare

__all__ = ["read_table", "read_runs", "read_opda", "OPDA_HYPERPARAMETERS"]

#: The hyperparameters of an OPDA run record, in order.
OPDA_HYPERPARAMETERS = ("n_embd", "n_layer", "n_head", "sequence_length", "total_steps",
                        "warmup_steps", "lr", "beta1", "beta2", "weight_decay", "dropout")


def read_runs(path, *, params: str | None = None, tokens: str | None = None,
              flops: str | None = None, loss: str = "loss",
              flops_per_param_token: float = 6.0) -> pd.DataFrame:
    """Read a run table from CSV, JSON (records), JSONL or Parquet and :func:`~bayescale.prepare` it.

    The column names map the file's columns onto ``params``, ``tokens``, ``flops`` and
    ``loss`` exactly as in :func:`bayescale.prepare`; every other column is kept.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError, TypeError
        For an unreadable file or extension, or a table :func:`bayescale.prepare` refuses.
    """
    return prepare(read_table(path), params=params, tokens=tokens, flops=flops, loss=loss,
                   flops_per_param_token=flops_per_param_token)


def read_opda(path, *, loss: str = "val_raw_loss") -> pd.DataFrame:
    """Read OPDA hyperparameter-tuning logs: one JSON object per run, one row per checkpoint.

    Each line of ``path`` is a run: ``iteration``, ``nan_train_loss``, ``hyperparameters``
    (n_embd, n_layer, n_head, sequence_length, total_steps, warmup_steps, lr, beta1, beta2,
    weight_decay, dropout) and ``learning_curve``, a list of checkpoints (``step``,
    ``tokens``, ``lr``, ``train_raw_loss``, ``val_raw_loss``, ``val_weight_averaged_loss``,
    ...).

    Parameters
    ----------
    path
        A JSONL file (a JSON list of the same objects is accepted too).
    loss
        The checkpoint metric that becomes the ``loss`` column.

    Returns
    -------
    pandas.DataFrame
        One row per checkpoint: ``params`` (non-embedding, 12 n_layer n_embd^2), ``tokens``
        (seen so far), ``flops`` (6 params tokens), ``loss``, then ``run`` (the iteration),
        ``nan_train_loss``, ``step``, the hyperparameters (the run's peak learning rate as
        ``lr``) and the other checkpoint metrics (the scheduled rate at the checkpoint as
        ``lr_at_step``). Runs whose training loss went NaN are **kept and flagged**
        (``nan_train_loss`` True; their ``loss`` may be NaN), so that a fit refuses them by
        name until they are filtered out, e.g. ``runs[~runs["nan_train_loss"]]``;
        ``attrs["nan_runs"]`` lists them.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If a line is not JSON, a record lacks a documented field, or ``loss`` is not a
        checkpoint metric.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no OPDA file at {path}")
    records = _records(path)
    rows = []
    for number, record in enumerate(records, start=1):
        rows += _checkpoints(record, number, path, loss)
    if not rows:
        raise ValueError(f"{path} holds no checkpoints")
    table = pd.DataFrame(rows)
    finite = ~table["nan_train_loss"].to_numpy(dtype=bool)
    good = prepare(table[finite].drop(columns=["flops"]), params="params", tokens="tokens",
                   loss="loss")
    bad = table[~finite].drop(columns=["flops"])
    bad.insert(2, "flops", 6.0 * bad["params"] * bad["tokens"])
    out = pd.concat([good, bad[good.columns]]).sort_values(["run", "step"], kind="stable")
    out.attrs.update(good.attrs, nan_runs=sorted(bad["run"].unique().tolist()),
                     loss_column=loss, source=str(path))
    return out


def _records(path: Path) -> list[dict]:
    text = path.read_text()
    if text.lstrip().startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from None
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}, line {number}, is not JSON: {err}") from None
    return records


def _checkpoints(record: dict, number: int, path: Path, loss: str) -> list[dict]:
    where = f"{path}, run {number}"
    for key in ("iteration", "nan_train_loss", "hyperparameters", "learning_curve"):
        if key not in record:
            raise ValueError(f"{where} lacks {key!r}; an OPDA record has iteration, "
                             "nan_train_loss, hyperparameters and learning_curve")
    hyper = record["hyperparameters"]
    missing = [k for k in OPDA_HYPERPARAMETERS if k not in hyper]
    if missing:
        raise ValueError(f"{where}: hyperparameters lack {missing}")
    params = 12.0 * hyper["n_layer"] * float(hyper["n_embd"]) ** 2
    rows = []
    for point in record["learning_curve"]:
        if loss not in point:
            raise ValueError(f"{where}: checkpoint at step {point.get('step')!r} has no "
                             f"{loss!r}; it has {sorted(point)}")
        metrics = {("lr_at_step" if k == "lr" else k): v for k, v in point.items()
                   if k not in ("step", "tokens")}
        value = point[loss]
        rows.append({"params": params, "tokens": float(point["tokens"]), "flops": np.nan,
                     "loss": np.nan if value is None else float(value),
                     "run": record["iteration"], "nan_train_loss": bool(record["nan_train_loss"]),
                     "step": point["step"], **{k: hyper[k] for k in OPDA_HYPERPARAMETERS},
                     **metrics})
    return rows


def read_table(path) -> pd.DataFrame:
    """Read a run table from CSV, JSON (records), JSONL or Parquet, chosen by the extension."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no data file at {path}")
    readers = {".csv": pd.read_csv, ".json": pd.read_json,
               ".jsonl": lambda p: pd.read_json(p, lines=True), ".parquet": pd.read_parquet}
    suffix = path.suffix.lower()
    if suffix not in readers:
        raise ValueError(f"data file {path} has extension {suffix!r}; readable: {list(readers)}")
    try:
        return readers[suffix](path)
    except Exception as err:  # noqa: BLE001 - the readers raise many kinds for a bad file
        raise ValueError(f"could not read {path} as {suffix[1:]}: {err}") from None
