"""Bayesian stacking of fits of several laws into one predictive distribution.

Stacking (Yao, Vehtari, Simpson & Gelman 2018) chooses weights ``w`` on the simplex that
maximise the log score of the mixture on held-out runs, ``sum_i log sum_k w_k p_k(y_i)``:
by PSIS-LOO (``method="loo"``: ArviZ's stacking weights, interpolation) or on the runs of the
largest budgets after refitting each law below them (``method="lfo"``: extrapolation, the
question a scaling law is asked), or on the backtests the fits ran to learn their
discrepancy (``method="backtest"``: extrapolation without refitting). The stacked answer at a point is the mixture: each of its
draws comes from one law, picked with probability ``w_k``, so the intervals carry the
uncertainty about which law holds as well as each law's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.analysis.compare import compare, stacking_weights
from bayescale.model.fit import Fit
from bayescale.model.points import check_budgets

__all__ = ["Stack", "stack", "stacking_weights"]  # stacking_weights: from compare


@dataclass
class Stack:
    """Fits of several laws and their stacking weights; answers as their mixture."""

    fits: dict[str, Fit]
    weights: pd.Series
    table: pd.DataFrame

    def _choose(self, draws: Mapping[str, np.ndarray],
                rng: np.random.Generator) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """Which fit, and which of its flattened draws, each mixture draw takes: a list of
        (fit, positions in the mixture, positions in that fit's draws). The mixture has as
        many draws as the smallest fit; the fits' weights are renormalised over ``draws``."""
        names = list(draws)
        sizes = {n: int(np.prod(draws[n].shape[:2])) for n in names}
        weights = self.weights[names].to_numpy()
        pick = rng.choice(len(names), size=min(sizes.values()), p=weights / weights.sum())
        return [(name, np.flatnonzero(pick == k),
                 rng.integers(0, sizes[name], int(np.sum(pick == k))))
                for k, name in enumerate(names)]

    @staticmethod
    def _gather(draws: Mapping[str, np.ndarray], choice) -> np.ndarray:
        """Mixture draws (1, draw, ...) of per-fit draws (chain, draw, ...) by ``choice``."""
        first = next(iter(draws.values()))
        out = np.empty((sum(rows.size for _, rows, _ in choice), *first.shape[2:]))
        for name, rows, source in choice:
            out[rows] = draws[name].reshape(-1, *first.shape[2:])[source]
        return out[None]

    def _mix(self, draws: Mapping[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
        return self._gather(draws, self._choose(draws, rng))

    def predict(self, points, *, kind: str = "new_run", random_seed: int | None = None) -> xr.Dataset:
        """The stacked loss at ``points``: ``loss`` over (chain, draw, point), one chain."""
        rng = np.random.default_rng(random_seed)
        draws = {name: fit.predict(points, kind=kind, random_seed=random_seed)["loss"].values
                 for name, fit in self.fits.items()}
        return xr.Dataset({"loss": (("chain", "draw", "point"), self._mix(draws, rng))},
                          attrs={"kind": kind, "stacked": ", ".join(self.fits)})

    def loss_at(self, budgets, *, kind: str = "new_run",
                random_seed: int | None = None) -> xr.Dataset:
        """The stacked loss at each budget, over (chain, draw, budget), one chain: from a law
        in N and D its loss at the compute-optimal allocation, from a law in compute its loss
        at C; ``kind="new_run"`` adds each fit's own noise."""
        if kind not in ("mean", "new_run"):
            raise ValueError(f"kind must be 'mean' or 'new_run', got {kind!r}")
        budgets = check_budgets(budgets)
        rng = np.random.default_rng(random_seed)
        draws = {name: _loss_at(fit, budgets, kind, rng) for name, fit in self.fits.items()}
        return xr.Dataset({"loss": (("chain", "draw", "budget"), self._mix(draws, rng))},
                          coords={"budget": budgets}, attrs={"kind": kind})

    def optimal(self, budgets, *, random_seed: int | None = None) -> xr.Dataset:
        """The stacked compute-optimal allocation over the fits whose models have one (their
        weights renormalised); a ValueError when none has."""
        budgets = check_budgets(budgets)
        able = {n: f for n, f in self.fits.items() if f.model.has_optimum}
        if not able:
            raise ValueError("none of the stacked fits has a compute-optimal allocation")
        per_fit = {n: f.optimal(budgets, random_seed=random_seed) for n, f in able.items()}
        variables = list(next(iter(per_fit.values())).data_vars)
        # one choice for every variable, so that a mixture draw is one law's whole answer
        choice = self._choose({n: ds[variables[0]].values for n, ds in per_fit.items()},
                              np.random.default_rng(random_seed))
        out = {var: (("chain", "draw", "budget"),
                     self._gather({n: ds[var].values for n, ds in per_fit.items()}, choice))
               for var in variables}
        return xr.Dataset(out, coords={"budget": budgets}, attrs={"stacked": ", ".join(able)})


def _loss_at(fit: Fit, budgets: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    if fit.model.has_optimum:
        optimum = fit.optimal(budgets, random_seed=int(rng.integers(2**32)))
        log_loss = np.log(optimum["loss_opt"].values)
    else:
        log_loss = np.log(fit.predict({"flops": budgets})["loss"].values)
    if kind == "new_run":
        log_loss = log_loss + fit.model.noise_draws(fit.posterior, log_loss.shape, rng)
    with np.errstate(over="ignore"):  # heavy-tailed new runs (nu < 1) may reach +inf
        return np.exp(log_loss)


def stack(fits: Mapping[str, Fit], *, method: str = "loo", **compare_kwargs) -> Stack:
    """Stack fits of the same runs under several laws by LOO or leave-future-out weights.

    Parameters
    ----------
    fits
        Name -> :class:`bayescale.Fit` of the same observed runs (any families).
    method
        ``"loo"`` (PSIS-LOO stacking weights, ArviZ), ``"backtest"`` (stacking weights on the
        held-out runs of the fits' own backtests: no refit) or ``"lfo"`` (stacking weights on the
        held-out largest budgets after refitting each law below them; see
        :func:`bayescale.compare` for ``holdout`` and the refits' settings).
    **compare_kwargs
        Passed to :func:`bayescale.compare`.

    Returns
    -------
    Stack
        ``weights`` (a Series by fit), the comparison ``table``, and ``predict`` (at points
        every fit's law can take), ``loss_at`` (at budgets) and ``optimal`` giving the
        mixture's draws.
    """
    table = compare(fits, method=method, **compare_kwargs)
    return Stack(dict(fits), table["weight"].astype(float), table)
