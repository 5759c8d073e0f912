"""The figure of docs/curves.md: the learning-curves fit of the OLMo ladder's 190M-1B runs.

Fits :class:`bayescale.LearningCurves` (4 chains x 1000 draws, seed 0, the discrepancy off) to
``bs.learning_curves`` of the 190M-1B runs and draws every run's checkpoints with its fitted
curve (law + schedule term + the run's offset), coloured by model size; the 3B runs, held
out, are drawn with a new run's curve. Writes ``docs/curves_olmo.png`` (about a minute)::

    python docs/gen_curves_figure.py
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib.pyplot as plt

import bayescale as bs
from bayescale.report import plots

OUT = Path(__file__).with_name("curves_olmo.png")


def main() -> None:
    curves = bs.learning_curves(bs.datasets.load("olmo_ladder_curves"))
    train = curves[curves["size"] != "3B"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplerWarning)  # the benchmark reports them
        fit = bs.LearningCurves(train, discrepancy="off").fit(
            random_seed=0, progressbar=False)
    ax = plots.plot_curves(fit, curves)
    ax.set_title("OLMo ladder: checkpoints from 30% of each run, fitted curves dashed "
                 "(3B held out)", fontsize=9)
    ax.figure.savefig(OUT, dpi=120, bbox_inches="tight")
    plt.close(ax.figure)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
