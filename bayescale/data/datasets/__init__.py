"""Bundled real training-run data, with attribution.

>>> import bayescale as bs
>>> runs = bs.datasets.load("chinchilla")
>>> runs.shape[0], runs.columns[:4].tolist()
(245, ['params', 'tokens', 'flops', 'loss'])
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd

from bayescale.data.runs import add_shape_columns, prepare

__all__ = ["Dataset", "REGISTRY", "load", "list", "info", "olmo_ladder_lr"]

_list = list  # the builtin, before this module's `list` shadows it


@dataclass(frozen=True)
class Dataset:
    """One bundled data set: where it came from and how it becomes a run table."""

    name: str
    file: str
    rows: int
    description: str
    loss: str
    source: str
    licence: str
    reader: Callable[[str], pd.DataFrame]


def _read_csv(file: str) -> pd.DataFrame:
    with resources.files(__name__).joinpath("data", file).open("r") as fh:
        return pd.read_csv(fh)


def _chinchilla(file: str) -> pd.DataFrame:
    raw = _read_csv(file)
    return prepare(raw[["Model Size", "Training FLOP", "loss"]],
                   params="Model Size", flops="Training FLOP", loss="loss")


def _cs336_isoflops(file: str) -> pd.DataFrame:
    with resources.files(__name__).joinpath("data", file).open("r") as fh:
        raw = pd.DataFrame(json.load(fh))
    return prepare(raw, params="parameters", flops="compute_budget", loss="final_loss")


def _cs336_api(file: str) -> pd.DataFrame:
    raw = _read_csv(file)
    raw.insert(0, "params", 12.0 * raw["num_layers"] * raw["d_model"].astype(float) ** 2)
    return add_shape_columns(prepare(raw, params="params", flops="train_flops", loss="loss"))


def _olmo(file: str) -> pd.DataFrame:
    raw = _read_csv(file)
    raw.insert(0, "flops", raw["total_training_Gflops"] * 1e9)
    return prepare(raw, params="params_N", tokens="total_tokens", flops="flops", loss="c4_en_CE")


def _olmo_curves(file: str) -> pd.DataFrame:
    """The ladder's checkpoints with ``lr``, the learning rate of the ladder's schedule."""
    table = _olmo(file)
    final = table.groupby("run")["tokens"].transform("max").to_numpy(dtype=float)
    table["lr"] = olmo_ladder_lr(table["params"].to_numpy(dtype=float),
                                 table["tokens"].to_numpy(dtype=float), final)
    return table


def olmo_ladder_lr(params, tokens, final_tokens):
    """The learning rate of an OLMo ladder run after ``tokens`` of its ``final_tokens``.

    The ladder's training configuration (allenai/OLMo-ladder, ``src/ladder/ladder.py``):
    peak ``0.0047 (N / 108e6)^(-1/3) / 4`` (sequence length 4096), linear warmup from 0 over
    N tokens, then a cosine down to ``0.1 x`` peak at the run's final tokens.
    """
    params, tokens, final = (np.asarray(v, dtype=float) for v in (params, tokens, final_tokens))
    peak = 0.0047 * (params / 108e6) ** (-1 / 3) / 4
    progress = np.clip((tokens - params) / (final - params), 0.0, 1.0)
    cosine = 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * progress))
    return peak * np.where(tokens < params, tokens / params, cosine)


def _gemstones(file: str) -> pd.DataFrame:
    """The ``cool_end`` rows: each the end of a cooldown branched from a main run (annealed)."""
    raw = _read_csv(file)
    raw = raw[raw["variant"] == "cool_end"].drop(columns="variant").reset_index(drop=True)
    return prepare(raw, params="params", tokens="tokens", flops="flops", loss="loss")


def _porian(file: str) -> pd.DataFrame:
    runs = prepare(_read_csv(file), params="params", tokens="tokens", flops="flops", loss="loss")
    runs["setup"] = runs["hparams"] + "/" + runs["warmup"] + "/" + runs["decay"]
    return runs


_EPOCH = ("epoch-research/analyzing-chinchilla @ 92258837 : data/svg_extracted_data.csv "
          "(Besiroglu et al. 2024, 'Chinchilla Scaling: A replication attempt')")
_OLMO = ("allenai/OLMo-ladder @ 67a3f440 : src/scripts/paper/data/ladder-runs/*.csv "
         "(Bhagia et al. 2024)")

#: Every bundled data set by name.
REGISTRY: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "chinchilla", "chinchilla_epoch.csv", 245,
            "Chinchilla (Hoffmann et al. 2022) training runs, digitised from the paper's Figure 4 "
            "by Epoch AI. tokens = flops / (6 params).",
            "loss (final training loss)", _EPOCH,
            "none stated; facts digitised from a published figure, widely redistributed",
            _chinchilla,
        ),
        Dataset(
            "cs336_isoflops", "cs336_isoflops_synthetic.json", 72,
            "Synthetic IsoFLOP profiles from the Stanford CS336 scaling assignment: 9 compute "
            "budgets x 8 model sizes. tokens = flops / (6 params).",
            "final_loss",
            "stanford-cs336/assignment3-scaling @ 24a558ee : data/isoflops_curves.json",
            "MIT (c) Stanford University", _cs336_isoflops,
        ),
        Dataset(
            "cs336_api_2024", "cs336_api_2024_grid.csv", 2479,
            "Answers of the CS336 (spring 2024) training API: a Transformer LM on SlimPajama "
            "(32K BPE vocabulary, context 512) trained for train_flops FLOPs with the given "
            "d_model, num_layers, num_heads, batch_size, learning_rate. params = 12 num_layers "
            "d_model^2 (non-embedding), tokens = flops / (6 params); aspect_ratio = d_model / "
            "num_layers and head_dim = d_model / num_heads are added. Losses near ln(32000) ~ "
            "10.4 mean the model barely trained.",
            "loss (final training loss)",
            "ZitongYang/cs336-assignment3-scaling @ 37e2e7ac : data/scaling.csv",
            "none stated; query results of a course API", _cs336_api,
        ),
        Dataset(
            "olmo_ladder", "olmo_ladder_final.csv", 30,
            "OLMo model ladder: 5 sizes (190M-3.2B) x 5 token multipliers (0.5-10 x 20 tokens "
            "per parameter) plus a re-run of each 1x run. flops = total_training_Gflops x 1e9 as "
            "reported (it counts more than 6ND); the other validation losses are kept as columns.",
            "c4_en_CE (C4 English validation cross-entropy)", _OLMO, "Apache-2.0", _olmo,
        ),
        Dataset(
            "olmo_ladder_curves", "olmo_ladder_curves.csv", 3569,
            "Intermediate evaluations (learning curves) of the 30 OLMo ladder runs: one row per "
            "checkpoint, tokens = total_tokens seen so far; lr = the learning rate of the "
            "ladder's schedule at that point (datasets.olmo_ladder_lr; the CSVs do not log it).",
            "c4_en_CE (C4 English validation cross-entropy)", _OLMO, "Apache-2.0", _olmo_curves,
        ),
        Dataset(
            "porian2024_owt2", "porian2024_owt2.csv", 468,
            "Porian et al. (2024), 'Resolving Discrepancies in Compute-Optimal Scaling of "
            "Language Models': IsoFLOP sweeps of decoder-only Transformers (5M-901M parameters) "
            "on OpenWebText2 at 12 budgets 1.25e16-2.56e19 FLOPs (doubling), under 4 training "
            "setups given by the columns hparams (base / tuned), warmup (long / short) and decay "
            "(kaplan / chinchilla / const), and the three joined in setup (e.g. "
            "'base/long/kaplan'); params is the paper's 'standard' count and flops = "
            "6 params tokens. Select one setup with a query on those columns.",
            "loss (validation loss)",
            "formll/resolving-scaling-law-discrepancies @ 0dc60d91 : "
            "data/summary_df_owt2.pickle.xz (each setup's data table, param_count 'standard')",
            "none stated; experiment results published with the paper", _porian,
        ),
        Dataset(
            "gemstones_cool_end", "gemstones_mcleish2025.csv", 199,
            "McLeish et al. (2025), 'Gemstones: A Model Suite for Multi-Faceted Scaling Laws': "
            "decoder-only models of 20 width x depth shapes (48M-2.0B parameters, embeddings "
            "included) trained to 110B tokens; each row the end of a 10%-long learning-rate "
            "cooldown branched from the main run every 10B tokens (properly annealed final "
            "losses). flops = 6 params tokens; shape, width, depth, params_nonembed, step kept.",
            "loss (validation loss)",
            "mcleish7/gemstone-scaling-laws @ 5f420478 : "
            "wandb_dfs/wandb_df_for_fitting_cool_end.jsonl",
            "MIT", _gemstones,
        ),
    )
}


def info(name: str) -> Dataset:
    """The registry entry of data set ``name`` (raises ValueError for an unknown name)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {name!r}")
    if name not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; bundled datasets are {_list(REGISTRY)}")
    return REGISTRY[name]


def load(name: str) -> pd.DataFrame:
    """Load bundled data set ``name`` as a validated run table (see :func:`bayescale.prepare`).

    Parameters
    ----------
    name
        One of ``bayescale.data.datasets.list()["name"]``.

    Returns
    -------
    pandas.DataFrame
        Canonical columns ``params, tokens, flops, loss`` then the set's other columns.
        ``attrs`` carries ``dataset``, ``source`` and ``licence``.

    Raises
    ------
    ValueError
        If ``name`` is not a bundled data set.
    """
    entry = info(name)
    runs = entry.reader(entry.file)
    runs.attrs.update(dataset=entry.name, source=entry.source, licence=entry.licence,
                      loss_column=entry.loss)
    return runs


def list() -> pd.DataFrame:  # noqa: A001 - the registry's natural verb, as in `bs.datasets.list()`
    """A table of the bundled data sets: name, rows, loss, description, source and licence."""
    return pd.DataFrame(
        [{"name": d.name, "rows": d.rows, "loss": d.loss, "description": d.description,
          "source": d.source, "licence": d.licence} for d in REGISTRY.values()]
    )
