"""bayescale: Bayesian scaling laws with honest intervals.

>>> import bayescale as bs
>>> runs = bs.datasets.load("chinchilla")
>>> model = bs.ScalingLaw(runs, law="chinchilla")
"""

from __future__ import annotations

__version__ = "0.2.0"

from bayescale import baselines, datasets, laws  # noqa: E402
from bayescale import calibration  # noqa: E402
from bayescale.compare import ParetoKWarning, compare, fit_many, refit  # noqa: E402
from bayescale.curves import checkpoints, replicates  # noqa: E402
from bayescale.fit import Fit  # noqa: E402
from bayescale.isoflop import IsoFlop, plot_isoflop  # noqa: E402
from bayescale.intervals import interval  # noqa: E402
from bayescale.io import load  # noqa: E402
from bayescale.model import ScalingLaw  # noqa: E402
from bayescale.readers import read_opda, read_runs  # noqa: E402
from bayescale.recommend import Recommendation  # noqa: E402
from bayescale.runs import add_shape_columns, prepare  # noqa: E402
from bayescale.sampling import SamplerWarning  # noqa: E402
from bayescale.simulate import Truth, simulate  # noqa: E402

__all__ = [
    "__version__",
    "Fit",
    "IsoFlop",
    "ParetoKWarning",
    "Recommendation",
    "SamplerWarning",
    "baselines",
    "calibration",
    "compare",
    "fit_many",
    "refit",
    "ScalingLaw",
    "Truth",
    "add_shape_columns",
    "checkpoints",
    "datasets",
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
