"""bayescale: Bayesian scaling laws with honest intervals.

>>> import bayescale as bs
>>> runs = bs.datasets.load("chinchilla")
>>> model = bs.ScalingLaw(runs, law="chinchilla")

The names below are imported when first used (``bs.ScalingLaw`` imports the model, not the
sampler; PyMC and nutpie are imported by the first fit), so that ``import bayescale``, the
command line's ``--help`` and answers from a saved fit do not wait for libraries they do not
need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bayescale._version import __version__
from bayescale.data.lazy import exports

#: Each public name and the module that defines it.
_ATTRIBUTES = {
    "ParetoKWarning": "bayescale.inference.diagnostics",
    "compare": "bayescale.analysis.compare",
    "fit_many": "bayescale.analysis.compare",
    "refit": "bayescale.analysis.compare",
    "Stack": "bayescale.analysis.stack",
    "stack": "bayescale.analysis.stack",
    "checkpoints": "bayescale.data.curves",
    "learning_curves": "bayescale.data.curves",
    "replicates": "bayescale.data.curves",
    "candidate_grid": "bayescale.model.design",
    "design": "bayescale.model.design",
    "Fit": "bayescale.model.fit",
    "IsoFlop": "bayescale.model.isoflop",
    "plot_isoflop": "bayescale.report.isoflop_plot",
    "interval": "bayescale.inference.intervals",
    "load": "bayescale.results.io",
    "ScalingLaw": "bayescale.model.scaling",
    "LearningCurves": "bayescale.model.curves",
    "final_losses": "bayescale.model.curves",
    "read_opda": "bayescale.data.readers",
    "read_runs": "bayescale.data.readers",
    "Recommendation": "bayescale.model.recommend",
    "ExtrapolationWarning": "bayescale.model.reach",
    "MisfitWarning": "bayescale.model.noise",
    "DataWarning": "bayescale.data.runs",
    "add_shape_columns": "bayescale.data.runs",
    "prepare": "bayescale.data.runs",
    "DegenerateWarning": "bayescale.inference.diagnostics",
    "SamplerWarning": "bayescale.inference.diagnostics",
    "SamplingInterrupted": "bayescale.inference.sampling",
    "Truth": "bayescale.model.simulate",
    "simulate": "bayescale.model.simulate",
}
#: The public submodules.
_MODULES = {
    "baselines": "bayescale.analysis.baselines",
    "calibration": "bayescale.analysis.calibration",
    "datasets": "bayescale.data.datasets",
    "discrepancy": "bayescale.model.discrepancy",
    "laws": "bayescale.model.laws",
}

__getattr__, __dir__ = exports(__name__, _ATTRIBUTES, _MODULES)

if TYPE_CHECKING:  # the same names, for static tools
    from bayescale.analysis import baselines, calibration
    from bayescale.analysis.compare import compare, fit_many, refit
    from bayescale.analysis.stack import Stack, stack
    from bayescale.data import datasets
    from bayescale.data.curves import checkpoints, learning_curves, replicates
    from bayescale.data.readers import read_opda, read_runs
    from bayescale.data.runs import DataWarning, add_shape_columns, prepare
    from bayescale.inference.diagnostics import DegenerateWarning, ParetoKWarning, SamplerWarning
    from bayescale.inference.intervals import interval
    from bayescale.inference.sampling import SamplingInterrupted
    from bayescale.model import discrepancy, laws
    from bayescale.model.curves import LearningCurves, final_losses
    from bayescale.model.design import candidate_grid, design
    from bayescale.model.fit import Fit
    from bayescale.model.isoflop import IsoFlop
    from bayescale.model.noise import MisfitWarning
    from bayescale.model.reach import ExtrapolationWarning
    from bayescale.model.recommend import Recommendation
    from bayescale.model.scaling import ScalingLaw
    from bayescale.model.simulate import Truth, simulate
    from bayescale.report.isoflop_plot import plot_isoflop
    from bayescale.results.io import load

__all__ = ["__version__", *_ATTRIBUTES, *_MODULES]
