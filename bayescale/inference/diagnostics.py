"""Sampler diagnostics: divergences, R-hat, ESS and funnels, judged on a results tree.

:class:`PosteriorResult` is the part of a fit that needs only its DataTree: the posterior,
the diagnostics, the warning and the atomic save.
"""

from __future__ import annotations


import numpy as np
import xarray as xr

from bayescale.data import lazy
from bayescale.inference.trees import dataset_digest, group, save_idata
from bayescale.data.warn import warn

azs = lazy.module("arviz_stats")

__all__ = ["SamplerWarning", "PosteriorResult", "RHAT_MAX", "ESS_MIN", "MIN_DRAWS_PER_CHAIN",
           "MIN_TOTAL_DRAWS", "check_draw_counts", "DegenerateWarning", "ParetoKWarning",
           "warn_not_finite"]

#: Thresholds behind :class:`SamplerWarning`.
RHAT_MAX, ESS_MIN = 1.01, 400
#: A group scale is named in the warning when this share of the divergent draws lies at or
#: below its FUNNEL_QUANTILE (twice what chance gives).
FUNNEL_QUANTILE, FUNNEL_SHARE = 0.25, 0.5
#: The fewest draws per chain split R-hat and ESS take (each chain is split in halves of at
#: least 2 draws; ArviZ gives NaN below 4).
MIN_DRAWS_PER_CHAIN = 4
#: The fewest draws in all that PSIS (LOO, LOO-PIT in the checks figure) takes: its tail of
#: floor(n / 5) draws must hold at least 5 (ArviZ: "n_draws_tail must be at least 5").
MIN_TOTAL_DRAWS = 25


def check_draw_counts(draws: int, chains: int) -> None:
    """Raise a ValueError naming ``draws`` when ``draws`` per chain and ``draws * chains`` in
    all are fewer than the diagnostics need (:data:`MIN_DRAWS_PER_CHAIN`,
    :data:`MIN_TOTAL_DRAWS`).

    >>> check_draw_counts(20, 1)
    Traceback (most recent call last):
    ...
    ValueError: draws=20 with chains=1 is 20 draws in all; the diagnostics (PSIS-LOO) need at least 25: raise draws to 25 or more
    """
    if draws < MIN_DRAWS_PER_CHAIN:
        raise ValueError(f"draws={draws} per chain is too few for R-hat and ESS; give draws "
                         f">= {MIN_DRAWS_PER_CHAIN}")
    if draws * chains < MIN_TOTAL_DRAWS:
        need = -(-MIN_TOTAL_DRAWS // chains)
        raise ValueError(f"draws={draws} with chains={chains} is {draws * chains} draws in "
                         f"all; the diagnostics (PSIS-LOO) need at least {MIN_TOTAL_DRAWS}: "
                         f"raise draws to {need} or more")


class SamplerWarning(UserWarning):
    """The sampler's diagnostics say the draws may not represent the posterior."""


class ParetoKWarning(UserWarning):
    """PSIS-LOO is unreliable for some runs (Pareto k > 0.7): their elpd may be overestimated."""


class DegenerateWarning(UserWarning):
    """An answer is degenerate: some of its posterior draws are infinite or NaN, so its
    median or interval may be no number at all."""


def warn_not_finite(values, what: str) -> None:
    """Issue a :class:`DegenerateWarning` naming ``what`` and the fraction of ``values``
    (draws) that are not finite; nothing when all are."""
    values = np.asarray(values, dtype=float)
    bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
    if bad:
        warn(f"{what}: {bad / values.size:.1%} of the {values.size} posterior draws are "
                      "not finite (infinite or NaN); the answer is degenerate: the runs do not "
                      "determine it", DegenerateWarning)


class PosteriorResult:
    """What every fitted model shares: its posterior, diagnostics and saving."""

    idata: xr.DataTree

    @property
    def posterior(self) -> xr.Dataset:
        """The posterior draws (the ``posterior`` group as an ``xarray.Dataset``)."""
        return group(self.idata, "posterior")

    def _diagnostic_vars(self) -> list[str]:
        """The posterior variables the diagnostics judge (default: the scalar parameters)."""
        return [v for v in self.posterior.data_vars if self.posterior[v].ndim == 2]

    def diagnostics(self) -> dict:
        """Divergences and the worst R-hat / bulk and tail ESS over the judged parameters.
        The figures are kept for the same draws (the command line and the report ask
        several times); a copy is returned."""
        names = self._diagnostic_vars()
        post = self.posterior[names]
        stats = group(self.idata, "sample_stats") if "sample_stats" in self.idata.children else {}
        divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0

        def compute() -> dict:
            rhat, ess_bulk = azs.rhat(post), azs.ess(post, method="bulk")
            ess_tail = azs.ess(post, method="tail")
            return {
                "divergences": divergences,
                "max_r_hat": float(max(rhat[v].max() for v in names)),
                "min_ess_bulk": float(min(ess_bulk[v].min() for v in names)),
                "min_ess_tail": float(min(ess_tail[v].min() for v in names)),
                "draws": int(post.sizes["chain"] * post.sizes["draw"]),
            }

        return dict(self._kept("diagnostics", (dataset_digest(post), divergences), compute))

    def _kept(self, slot: str, key, compute):
        """``compute()``, or what it returned for ``slot`` when last asked with an equal
        ``key`` (one answer kept per slot: a key holds the digest of the draws it was
        computed from). Callers copy what they hand out."""
        kept = self.__dict__.setdefault("_kept_answers", {})
        if slot not in kept or kept[slot][0] != key:
            kept[slot] = (key, compute())
        return kept[slot][1]

    def diagnostic_problems(self) -> list[str]:
        """Human-readable problems with the draws, each with what to try; empty when fine."""
        d = self.diagnostics()
        out = []
        if d["divergences"]:
            out.append(f"{d['divergences']} divergent transitions: raise target_accept "
                       "(e.g. 0.95-0.99) or tighten the priors")
        if not d["max_r_hat"] <= RHAT_MAX:
            out.append(f"R-hat {d['max_r_hat']:.3f} > {RHAT_MAX}: chains disagree; run more "
                       "tune/draws or check for multiple modes")
        if not d["min_ess_bulk"] >= ESS_MIN:
            out.append(f"bulk ESS {d['min_ess_bulk']:.0f} < {ESS_MIN}: run more draws or chains")
        if d["divergences"]:
            out += self._funnel_hints()
        return out

    def _funnel_hints(self) -> list[str]:
        """Group scales (``*_tau``, ``tau_*``) whose lowest quarter holds at least half of the
        divergent draws: the neck of a funnel, where the data barely tell the groups apart."""
        diverging = group(self.idata, "sample_stats")["diverging"].values.astype(bool)
        hints = []
        for name in self._diagnostic_vars():
            if not (str(name).endswith("_tau") or str(name).startswith("tau_")):
                continue
            values = self.posterior[name].values
            low = values <= np.quantile(values, FUNNEL_QUANTILE)
            share = float(low[diverging].mean())
            if share >= FUNNEL_SHARE:
                hints.append(f"{int(low[diverging].sum())} of the {int(diverging.sum())} divergent "
                             f"draws lie in the lowest quarter of {name}: a funnel where the data "
                             "barely tell its levels apart; drop that offset or grouping, sample "
                             "a grouping's deviations non-centred (group_centred=False), or give "
                             f"{name} a prior that keeps it off 0")
        return hints

    def warn_diagnostics(self) -> None:
        """Issue a :class:`SamplerWarning` listing every diagnostic problem."""
        problems = self.diagnostic_problems()
        if problems:
            warn("sampler diagnostics: " + "; ".join(problems), SamplerWarning)

    def save(self, path, *, overwrite: bool = False) -> None:
        """Write the fit to a netCDF file (atomically: a temporary file, then a rename), with
        a checksum of every group's data that :func:`bayescale.load` verifies.

        Raises ``FileExistsError`` if ``path`` exists and ``overwrite`` is False.
        """
        save_idata(self.idata, path, overwrite=overwrite)
