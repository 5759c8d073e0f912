"""Sampler diagnostics: divergences, R-hat, ESS and funnels, judged on a results tree.

:class:`PosteriorResult` is the part of a fit that needs only its DataTree: the posterior,
the diagnostics, the warning and the atomic save.
"""

from __future__ import annotations

import warnings

import arviz_stats as azs
import numpy as np
import xarray as xr

from bayescale.inference.trees import group, save_idata

__all__ = ["SamplerWarning", "PosteriorResult", "RHAT_MAX", "ESS_MIN"]

#: Thresholds behind :class:`SamplerWarning`.
RHAT_MAX, ESS_MIN = 1.01, 400
#: A group scale is named in the warning when this share of the divergent draws lies at or
#: below its FUNNEL_QUANTILE (twice what chance gives).
FUNNEL_QUANTILE, FUNNEL_SHARE = 0.25, 0.5


class SamplerWarning(UserWarning):
    """The sampler's diagnostics say the draws may not represent the posterior."""


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
        """Divergences and the worst R-hat / bulk and tail ESS over the judged parameters."""
        names = self._diagnostic_vars()
        post = self.posterior[names]
        rhat, ess_bulk = azs.rhat(post), azs.ess(post, method="bulk")
        ess_tail = azs.ess(post, method="tail")
        stats = group(self.idata, "sample_stats") if "sample_stats" in self.idata.children else {}
        return {
            "divergences": int(stats["diverging"].sum()) if "diverging" in stats else 0,
            "max_r_hat": float(max(rhat[v].max() for v in names)),
            "min_ess_bulk": float(min(ess_bulk[v].min() for v in names)),
            "min_ess_tail": float(min(ess_tail[v].min() for v in names)),
            "draws": int(post.sizes["chain"] * post.sizes["draw"]),
        }

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
                             "barely tell its levels apart; drop that offset or grouping, or give "
                             f"{name} a prior that keeps it off 0")
        return hints

    def warn_diagnostics(self) -> None:
        """Issue a :class:`SamplerWarning` listing every diagnostic problem."""
        problems = self.diagnostic_problems()
        if problems:
            warnings.warn("sampler diagnostics: " + "; ".join(problems), SamplerWarning,
                          stacklevel=3)

    def save(self, path, *, overwrite: bool = False) -> None:
        """Write the fit to a netCDF file (atomically: a temporary file, then a rename), with
        a checksum of every group's data that :func:`bayescale.load` verifies.

        Raises ``FileExistsError`` if ``path`` exists and ``overwrite`` is False.
        """
        save_idata(self.idata, path, overwrite=overwrite)
