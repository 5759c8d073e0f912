"""A synthetic training API with a known truth, for tests, docs and calibration.

:func:`simulate` answers like the CS336 training API: for each compute budget it "trains"
Transformer configurations (d_model, num_layers, num_heads, batch_size, learning_rate) and
returns their final losses, drawn from a known Chinchilla law with latent per-level offsets of
the number of heads and a learning-rate optimum that moves with compute::

    log L = log(E + A N^-alpha + B D^-beta) + u_heads[num_heads]
            + kappa (log lr - log lr*(C))^2 + eps,   log lr*(C) = m + g (log C - log C0)

with ``N = 12 num_layers d_model^2`` and ``D = C / (6 N)``. ``eps`` is the misfit of a
configuration (scale ``sigma``); with ``seeds=k`` each configuration is trained k times and every
run adds its own seed noise (scale ``sigma_seed``), so that the two variance components can be
told apart. The truth travels with the runs (``runs.attrs["truth"]``) and :class:`Truth` answers
what a fit should recover.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from bayescale.data.curves import CONFIG
from bayescale.model.laws import compute_optimal, log_mean
from bayescale.model.points import check_budgets
from bayescale.data.runs import add_shape_columns, prepare

__all__ = ["Truth", "simulate", "GRID"]


@dataclass(frozen=True)
class Truth:
    """The parameters of a simulated training API."""

    law: dict = field(default_factory=lambda: {"E": 1.8, "A": 400.0, "B": 2000.0,
                                               "alpha": 0.34, "beta": 0.36})
    #: misfit: normal noise on log loss, drawn once per configuration (shared by its seeds)
    sigma: float = 0.01
    #: seed noise: normal noise on log loss, drawn per run (0 keeps seeds of one configuration
    #: identical; with one run per configuration it simply adds to the misfit)
    sigma_seed: float = 0.0
    #: scale of the latent num_heads offsets on log loss; the offsets themselves are drawn
    #: from Normal(0, heads_tau) by :func:`simulate` unless given here ({level: offset})
    heads_tau: float = 0.03
    heads_offset: dict | None = None
    #: learning-rate optimum: log lr*(C) = lr_opt_ref + lr_opt_slope (log C - log lr_flops_ref)
    lr_kappa: float = 0.02
    lr_opt_ref: float = float(np.log(1e-3))
    lr_opt_slope: float = -0.1
    lr_flops_ref: float = 1e17

    def learning_rate_opt(self, budgets) -> np.ndarray:
        """The true loss-optimal learning rate at each budget."""
        log_c = np.log(check_budgets(budgets)) - np.log(self.lr_flops_ref)
        return np.exp(self.lr_opt_ref + self.lr_opt_slope * log_c)

    def optimal(self, budgets) -> dict[str, np.ndarray]:
        """True compute-optimal N*, D*, D*/N* and loss (optimal lr, typical heads: offset 0)."""
        return compute_optimal(self.law, check_budgets(budgets))

    @property
    def heads_mean(self) -> float:
        """Mean of the num_heads offsets over the levels (0 if they are not drawn yet).

        A fit's offsets sum to zero over the levels, so it recovers ``heads_offset[j] -
        heads_mean`` and a law ``exp(heads_mean)`` times this one (E, A and B alike).
        """
        return float(np.mean(list(self.heads_offset.values()))) if self.heads_offset else 0.0

    def log_mean_loss(self, table: pd.DataFrame) -> np.ndarray:
        """The true log mean loss (before misfit and seed noise) of configurations: a table
        with ``params``, ``tokens``, ``flops``, ``learning_rate`` and, optionally,
        ``num_heads`` (without it, the mean of the num_heads offsets: :attr:`heads_mean`).
        The offsets must be drawn (:meth:`with_heads`)."""
        if self.heads_offset is None:
            raise ValueError("the num_heads offsets are not drawn yet: call with_heads(rng)")
        log_loss = log_mean("chinchilla", self.law, {"params": table["params"],
                                                      "tokens": table["tokens"]})
        heads = (table["num_heads"].map(self.heads_offset).to_numpy()
                 if "num_heads" in table.columns else self.heads_mean)
        log_loss = log_loss + heads
        log_lr_opt = np.log(self.learning_rate_opt(table["flops"].to_numpy()))
        return np.asarray(log_loss + self.lr_kappa
                          * (np.log(table["learning_rate"]) - log_lr_opt) ** 2, dtype=float)

    def as_dict(self) -> dict:
        """The truth as plain dicts and numbers (e.g. to save beside simulated runs)."""
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}

    def with_heads(self, rng: np.random.Generator) -> Truth:
        """This truth with its num_heads offsets drawn from Normal(0, heads_tau) if unset."""
        if self.heads_offset is not None:
            return self
        drawn = dict(zip(_HEADS, (self.heads_tau * rng.standard_normal(len(_HEADS))).tolist()))
        return replace(self, heads_offset=drawn)


_D_MODEL = (128, 256, 512, 768, 1024, 1536, 2048)
_LAYERS = (2, 4, 8, 12, 16, 24, 32, 48)
_HEADS = (2, 4, 8, 16)
_BATCH = (128, 256)
_LR = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
#: The simulated API's grids of configurations (what :func:`simulate` draws from).
GRID = {"d_model": _D_MODEL, "num_layers": _LAYERS, "num_heads": _HEADS, "batch_size": _BATCH,
        "learning_rate": _LR}


def simulate(truth: Truth | None = None, *, budgets=(1e16, 3e16, 1e17, 3e17, 1e18),
             runs_per_budget: int = 30, seeds: int = 1,
             random_seed: int | None = None) -> pd.DataFrame:
    """Draw a sweep of training runs from a known truth.

    Parameters
    ----------
    truth
        The simulated API's parameters; :class:`Truth` defaults if None.
    budgets
        Compute budgets (FLOPs) at which configurations are trained.
    runs_per_budget
        Random configurations per budget (d_model, num_layers, num_heads, batch_size and
        learning_rate drawn uniformly from CS336-like grids; duplicates are redrawn).
    seeds
        Runs per configuration. With ``seeds > 1`` every configuration is repeated with its
        misfit shared and fresh seed noise (``truth.sigma_seed``) per run, and the table gains
        the columns ``config`` and ``seed`` (``attrs["replicates"] = "config"``, as
        :func:`bayescale.replicates` marks it).
    random_seed
        Seed of the configurations and the noise.

    Returns
    -------
    pandas.DataFrame
        A run table (canonical columns, then d_model, num_layers, num_heads, batch_size,
        learning_rate, aspect_ratio, head_dim); ``attrs["truth"]`` holds the :class:`Truth`
        used, with its drawn num_heads offsets.

    Examples
    --------
    >>> import bayescale as bs
    >>> runs = bs.simulate(runs_per_budget=10, random_seed=0)
    >>> len(runs), runs["flops"].nunique()
    (50, 5)
    >>> seeds = bs.simulate(bs.Truth(sigma_seed=0.005), runs_per_budget=10, seeds=3, random_seed=0)
    >>> len(seeds), seeds["config"].nunique(), seeds.attrs["replicates"]
    (150, 50, 'config')
    """
    truth = Truth() if truth is None else truth
    if not isinstance(truth, Truth):
        raise TypeError(f"truth must be a bayescale.model.simulate.Truth, got {type(truth).__name__}")
    budgets = check_budgets(budgets)
    if isinstance(runs_per_budget, bool) or not isinstance(runs_per_budget, int) \
            or runs_per_budget < 1:
        raise ValueError(f"runs_per_budget must be a positive integer, got {runs_per_budget!r}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    if not isinstance(truth.sigma_seed, (int, float)) or not truth.sigma_seed >= 0:
        raise ValueError(f"truth.sigma_seed must be a number >= 0, got {truth.sigma_seed!r}")
    rng = np.random.default_rng(random_seed)
    truth = truth.with_heads(rng)
    table = pd.concat([_configs(rng, budget, runs_per_budget) for budget in budgets],
                      ignore_index=True)
    params = 12.0 * table["num_layers"] * table["d_model"].astype(float) ** 2
    tokens = table["flops"] / (6.0 * params)
    log_loss = truth.log_mean_loss(table.assign(params=params, tokens=tokens))
    log_loss = log_loss + truth.sigma * rng.standard_normal(len(table))
    table.insert(0, "params", params)
    if seeds > 1:
        table[CONFIG] = np.arange(len(table))
        table = table.loc[table.index.repeat(seeds)].reset_index(drop=True)
        table["seed"] = np.tile(np.arange(seeds), len(table) // seeds)
        log_loss = np.repeat(np.asarray(log_loss), seeds)
    if truth.sigma_seed > 0:  # drawn last: seeds=1, sigma_seed=0 keeps the old draws
        log_loss = log_loss + truth.sigma_seed * rng.standard_normal(len(table))
    table["loss"] = np.exp(log_loss)
    runs = add_shape_columns(prepare(table, params="params", flops="flops", loss="loss"))
    runs.attrs["truth"] = truth
    if seeds > 1:
        runs.attrs["replicates"] = CONFIG
    return runs


def _configs(rng: np.random.Generator, budget: float, n: int) -> pd.DataFrame:
    grids = (_D_MODEL, _LAYERS, _HEADS, _BATCH, _LR)
    total = int(np.prod([len(g) for g in grids]))
    if n > total:
        raise ValueError(f"runs_per_budget={n} exceeds the {total} distinct configurations")
    picks = rng.choice(total, size=n, replace=False)
    rows = []
    for pick in picks:
        row = []
        for grid in grids:
            pick, i = divmod(int(pick), len(grid))
            row.append(grid[i])
        rows.append(row)
    table = pd.DataFrame(rows, columns=["d_model", "num_layers", "num_heads", "batch_size",
                                        "learning_rate"])
    table["flops"] = float(budget)
    return table
