"""bayescale: Bayesian scaling laws with honest intervals.

>>> import bayescale as bs
>>> runs = bs.datasets.load("chinchilla")
>>> model = bs.ScalingLaw(runs, law="chinchilla")
"""

from __future__ import annotations

from bayescale._version import __version__  # noqa: E402

from bayescale.analysis import baselines  # noqa: E402
from bayescale.data import datasets  # noqa: E402
from bayescale.model import discrepancy, laws  # noqa: E402
from bayescale.analysis import calibration  # noqa: E402
from bayescale.analysis.compare import ParetoKWarning, compare, fit_many, refit  # noqa: E402
from bayescale.analysis.stack import Stack, stack  # noqa: E402
from bayescale.data.curves import checkpoints, learning_curves, replicates  # noqa: E402
from bayescale.model.design import candidate_grid, design  # noqa: E402
from bayescale.model.fit import Fit  # noqa: E402
from bayescale.model.isoflop import IsoFlop  # noqa: E402
from bayescale.report.isoflop_plot import plot_isoflop  # noqa: E402
from bayescale.inference.intervals import interval  # noqa: E402
from bayescale.results.io import load  # noqa: E402
from bayescale.model.scaling import ScalingLaw  # noqa: E402
from bayescale.model.curves import LearningCurves, final_losses  # noqa: E402
from bayescale.data.readers import read_opda, read_runs  # noqa: E402
from bayescale.model.recommend import Recommendation  # noqa: E402
from bayescale.model.reach import ExtrapolationWarning  # noqa: E402
from bayescale.data.runs import DataWarning, add_shape_columns, prepare  # noqa: E402
from bayescale.inference.diagnostics import DegenerateWarning, SamplerWarning  # noqa: E402
from bayescale.inference.sampling import SamplingInterrupted  # noqa: E402
from bayescale.model.simulate import Truth, simulate  # noqa: E402

__all__ = [
    "__version__",
    "Fit",
    "IsoFlop",
    "ParetoKWarning",
    "Recommendation",
    "SamplerWarning",
    "DataWarning",
    "DegenerateWarning",
    "ExtrapolationWarning",
    "SamplingInterrupted",
    "baselines",
    "calibration",
    "candidate_grid",
    "discrepancy",
    "compare",
    "fit_many",
    "refit",
    "stack",
    "Stack",
    "ScalingLaw",
    "Truth",
    "add_shape_columns",
    "checkpoints",
    "learning_curves",
    "LearningCurves",
    "final_losses",
    "datasets",
    "design",
    "interval",
    "laws",
    "load",
    "plot_isoflop",
    "prepare",
    "read_opda",
    "read_runs",
    "replicates",
    "simulate",
]
