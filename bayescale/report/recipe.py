"""Recipes: a model as data (TOML) — the runs, the law, the priors, the fit and the targets.

A recipe is a TOML file with these tables (every key optional unless marked)::

    [data]
    dataset = "chinchilla"        # a bundled data set (bayescale.data.datasets.list()), or
    path = "runs.csv"             # a CSV / JSON / JSONL / Parquet file, relative to the recipe
    columns = { params = "N", tokens = "D", flops = "C", loss = "val_loss" }   # with path
    flops_per_param_token = 6.0   # with path
    query = "loss < 10"           # keep the runs matching this filter (bayescale.data.filters)
    learning_curves = { lr = "lr" }   # checkpoints: bayescale.learning_curves(runs, **this)

    [model]
    family = "scaling_law"        # scaling_law | isoflop (Hoffmann's approach 2) |
                                  # learning_curves (with [data] learning_curves)
    law = "chinchilla_sized"      # the default | chinchilla | flops | flops_pure | kaplan
    noise = "student_t"           # student_t | normal | skewed
    offsets = []                  # categorical hyperparameter columns (latent offsets)
    continuous = []               # continuous hyperparameters whose optimum moves with compute
    discrepancy = "backtest"      # backtest | prior | off: the law's misfit past the runs
    group = "setup"               # a column whose levels have their own law parameters
    group_params = ["E", "alpha"] # ... these (scaling_law; bayescale.model.groups)
    group_centred = false         # sample their deviations non-centred (default: centred
                                  # when every level holds 20 runs or more)

    [priors]                      # overrides by name, e.g.
    alpha = { dist = "LogNormal", mu = -1.2, sigma = 0.5 }

    [fit]
    draws = 1000
    tune = 1000
    chains = 4
    random_seed = 0
    sampler = "nutpie"            # nutpie | pymc | numpyro
    target_accept = 0.9

    [targets]
    budgets = [5.88e23, 1e24]     # FLOPs at which to report the answer
    prob = 0.9                    # interval probability

    [stack]                       # answer also as a mixture of laws (bayescale.stack)
    laws = ["chinchilla_sized"]   # more laws, each fitted with the [model]'s other options
    method = "backtest"           # backtest | lfo | loo: how the stacking weights are scored
                                  # (backtest: the fits' own backtests, no refit)

    [design]                      # the next runs (bayescale.design), written as design.csv
    budget = 2e18                 # FLOPs to spend on them (required in this table)
    candidates = "grid.csv"       # candidate runs, relative to the recipe, or
    grid_budgets = [3e17, 1e18]   # the sweep's own sizes and hyperparameters at these budgets
                                  # (neither: sizes up to 3x N* at `at`, budgets up to `budget`)
    target = ["loss_opt", "params_opt"]   # what to learn about (default as here)
    at = 1e19                     # the target budget (FLOPs)
    max_runs = 10                 # at most this many runs

Unknown tables or keys and values of the wrong type are rejected with a ValueError/TypeError
that names the key and lists the allowed ones.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bayescale.data import datasets
from bayescale.data.curves import learning_curves
from bayescale.data.filters import filter_rows, parse_filter
from bayescale.model.points import check_budgets
from bayescale.data.readers import read_runs
from bayescale.model.registry import families

__all__ = ["Recipe"]

_SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "data": {"dataset": (str,), "path": (str,), "columns": (dict,),
             "flops_per_param_token": (int, float), "query": (str,),
             "learning_curves": (dict,)},
    "model": {"family": (str,), "law": (str,), "noise": (str,), "offsets": (list,),
              "continuous": (list,), "discrepancy": (str,), "group": (str,),
              "group_params": (list,), "group_centred": (bool,)},
    "priors": {},
    "fit": {"draws": (int,), "tune": (int,), "chains": (int,), "random_seed": (int,),
            "sampler": (str,), "target_accept": (float,)},
    "targets": {"budgets": (list, int, float), "prob": (float,)},
    "design": {"budget": (int, float), "candidates": (str,), "grid_budgets": (list,),
               "target": (list, str), "at": (int, float), "max_runs": (int,)},
    "stack": {"laws": (list,), "method": (str,)},
}
_COLUMN_KEYS = ("params", "tokens", "flops", "loss")
_FIT_DEFAULTS = {"draws": 1000, "tune": 1000, "chains": 4, "random_seed": None,
                 "sampler": "nutpie", "target_accept": 0.9}


@dataclass
class Recipe:
    """A parsed, validated recipe. Build one with :meth:`Recipe.read` or from a dict."""

    data: dict
    model: dict = field(default_factory=dict)
    priors: dict = field(default_factory=dict)
    fit: dict = field(default_factory=dict)
    targets: dict = field(default_factory=dict)
    design: dict = field(default_factory=dict)
    stack: dict = field(default_factory=dict)
    source: Path | None = None

    @classmethod
    def read(cls, path) -> Recipe:
        """Read and validate the TOML recipe at ``path``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no recipe file at {path}")
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"recipe {path} is not valid TOML: {err}") from None
        return cls.from_dict(raw, source=path)

    @classmethod
    def from_dict(cls, raw: dict, *, source: Path | None = None) -> Recipe:
        """Validate a recipe given as nested dicts (the TOML's tables)."""
        where = f"recipe {source}" if source else "recipe"
        for section, table in raw.items():
            if section not in _SCHEMA:
                raise ValueError(f"{where}: unknown table [{section}]; allowed tables are "
                                 f"{list(_SCHEMA)}")
            if not isinstance(table, dict):
                raise TypeError(f"{where}: [{section}] must be a table, got {table!r}")
            if section != "priors":
                _check_keys(where, section, table)
        data = raw.get("data", {})
        if ("dataset" in data) == ("path" in data):
            raise ValueError(f"{where}: [data] needs exactly one of 'dataset' or 'path'")
        if "dataset" in data and ({"columns", "flops_per_param_token"} & set(data)):
            raise ValueError(f"{where}: [data] 'columns'/'flops_per_param_token' go with 'path', "
                             "not with a bundled 'dataset'")
        unknown = sorted(set(data.get("columns", {})) - set(_COLUMN_KEYS))
        if unknown:
            raise ValueError(f"{where}: [data.columns] has unknown key(s) {unknown}; allowed "
                             f"keys are {list(_COLUMN_KEYS)}")
        if "query" in data:
            try:
                parse_filter(data["query"])
            except ValueError as err:
                raise ValueError(f"{where}: [data] query: {err}") from None
        targets = dict(raw.get("targets", {}))
        if "budgets" in targets:
            targets["budgets"] = check_budgets(targets["budgets"], argument="[targets] budgets").tolist()
        return cls(data=data, model=raw.get("model", {}), priors=raw.get("priors", {}),
                   fit=raw.get("fit", {}), targets=targets,
                   design=_check_design(where, raw.get("design", {})),
                   stack=_check_stack(where, raw.get("stack", {}), raw.get("model", {})),
                   source=source)

    # -- what the recipe makes -------------------------------------------------------------
    def runs(self) -> pd.DataFrame:
        """The run table the recipe names, filtered by ``query``."""
        if "dataset" in self.data:
            runs = datasets.load(self.data["dataset"])
        else:
            path = Path(self.data["path"])
            if not path.is_absolute() and self.source is not None:
                path = self.source.parent / path
            columns = self.data.get("columns", {})
            runs = read_runs(path, **{k: columns.get(k) for k in _COLUMN_KEYS[:3]},
                             loss=columns.get("loss", "loss"),
                             flops_per_param_token=self.data.get("flops_per_param_token", 6.0))
        if "query" in self.data:
            try:
                runs = filter_rows(runs, self.data["query"])
            except ValueError as err:
                raise ValueError(f"[data] query: {err}") from None
        if "learning_curves" in self.data:
            runs = learning_curves(runs, **self.data["learning_curves"])
        return runs

    def scaling_law(self, runs: pd.DataFrame | None = None, *, law: str | None = None):
        """The model of the recipe: its ``[model] family`` (default ``scaling_law``, a
        :class:`bayescale.ScalingLaw`) built on the runs with the table's other keys (and
        ``law`` in place of ``[model] law`` when given: the ``[stack]`` laws)."""
        import inspect

        runs = self.runs() if runs is None else runs
        options = dict(self.model) | ({"law": law} if law is not None else {})
        name = options.pop("family", "scaling_law")
        known = families()
        if name not in known:
            raise ValueError(f"[model] family = {name!r} is unknown; known families are "
                             f"{list(known)}")
        cls = known[name]
        allowed = [p for p in inspect.signature(cls).parameters if p not in ("runs", "priors")]
        extra = sorted(set(options) - set(allowed))
        if extra:
            raise ValueError(f"[model] family = {name!r} takes no {extra}; it takes {allowed}")
        return cls(runs, priors=self.priors or None, **options)

    def fit_kwargs(self, **overrides) -> dict:
        """Sampler settings: defaults, then the recipe's [fit], then non-None ``overrides``."""
        return _FIT_DEFAULTS | self.fit | {k: v for k, v in overrides.items() if v is not None}

    @property
    def budgets(self) -> list[float]:
        """The target compute budgets of ``[targets] budgets`` (FLOPs); empty if none."""
        return list(self.targets.get("budgets", []))

    @property
    def prob(self) -> float:
        """The interval probability of ``[targets] prob`` (default 0.9)."""
        return float(self.targets.get("prob", 0.9))


def _check_design(where: str, table: dict) -> dict:
    """The [design] table: a budget and at most one source of candidates (neither: the default
    candidates, :func:`bayescale.model.design.default_candidates`)."""
    if not table:
        return {}
    if "budget" not in table:
        raise ValueError(f"{where}: [design] needs 'budget' (FLOPs to spend on the next runs)")
    if "candidates" in table and "grid_budgets" in table:
        raise ValueError(f"{where}: [design] takes at most one of 'candidates' (a file) or "
                         "'grid_budgets' (neither: sizes up to 3x N* at 'at')")
    out = dict(table)
    out["budget"] = float(check_budgets(table["budget"], argument="[design] budget")[0])
    for key in ("grid_budgets", "at"):
        if key in table:
            values = check_budgets(table[key], argument=f"[design] {key}").tolist()
            out[key] = values if key == "grid_budgets" else values[0]
    return out


#: How ``[stack] method`` may score the stacking weights (:func:`bayescale.compare`).
STACK_METHODS = ("backtest", "lfo", "loo")


def _check_stack(where: str, table: dict, model: dict) -> dict:
    """The [stack] table: more laws of a scaling law, each once and none the model's own, and
    how to weigh them (``method="backtest"`` needs the fits' backtests)."""
    if not table:
        return {}
    from bayescale.model.laws import DEFAULT_LAW, get_law

    if model.get("family", "scaling_law") != "scaling_law":
        raise ValueError(f"{where}: [stack] stacks laws of family 'scaling_law', not "
                         f"{model['family']!r}")
    laws = table.get("laws")
    if not laws or not all(isinstance(law, str) for law in laws):
        raise ValueError(f"{where}: [stack] laws must be a non-empty list of law names, got "
                         f"{laws!r}")
    for law in laws:
        try:
            get_law(law)
        except ValueError as err:
            raise ValueError(f"{where}: [stack] laws: {err}") from None
    own = model.get("law", DEFAULT_LAW)
    if own in laws or len(set(laws)) != len(laws):
        raise ValueError(f"{where}: [stack] laws {laws} must differ from each other and from "
                         f"[model] law = {own!r}")
    method = table.get("method", "backtest")
    if method not in STACK_METHODS:
        raise ValueError(f"{where}: [stack] method must be one of {list(STACK_METHODS)}, got "
                         f"{method!r}")
    if method == "backtest" and model.get("discrepancy", "backtest") != "backtest":
        raise ValueError(f"{where}: [stack] method = 'backtest' weighs the fits by their own "
                         f"backtests, which [model] discrepancy = {model['discrepancy']!r} does "
                         "not run; use method = 'lfo' or discrepancy = 'backtest'")
    return {"laws": list(laws), "method": method}


def _check_keys(where: str, section: str, table: dict) -> None:
    allowed = _SCHEMA[section]
    for key, value in table.items():
        if key not in allowed:
            raise ValueError(f"{where}: unknown key {key!r} in [{section}]; allowed keys are "
                             f"{list(allowed)}")
        types = allowed[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            names = " or ".join(t.__name__ for t in types)
            raise TypeError(f"{where}: [{section}] {key} must be {names}, got {value!r}")
