"""Extrapolation on real runs: hold out the largest budgets, fit the rest, score the held-out runs.

For the bundled Chinchilla and OLMo ladder runs (held out: every run with flops >= 1e21,
as the data report them), fit the chinchilla law on the rest with bayescale and with
the classic Huber L-BFGS fit, and report for the held-out runs: coverage of the 50% and 90%
predictive intervals of a new run (bayescale only: the point fit has none) and the mean
absolute relative error of the median (bayescale) or point (Huber) prediction.

    python benchmarks/extrapolation.py [--draws 1000] [--chains 4]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd

import bayescale as bs
from bayescale.analysis.baselines import huber_lbfgs

CASES = {"chinchilla": 1e21, "olmo_ladder": 1e21}


def score(name: str, threshold: float, draws: int, chains: int) -> dict:
    runs = bs.datasets.load(name)
    held = runs["flops"] >= threshold
    train, test = runs[~held], runs[held]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplerWarning)  # reported below instead
        fit = bs.ScalingLaw(train, law="chinchilla").fit(draws=draws, tune=draws, chains=chains,
                                                          random_seed=0, progressbar=False)
    new = fit.predict(test[["params", "tokens"]], kind="new_run", random_seed=0)["loss"]
    flat = new.values.reshape(-1, len(test))
    loss = test["loss"].to_numpy()
    row = {"data": name, "held out": f"flops >= {threshold:.0e}", "n_train": len(train),
           "n_test": len(test)}
    for p in (0.5, 0.9):
        lo, hi = np.quantile(flat, [(1 - p) / 2, (1 + p) / 2], axis=0)
        row[f"coverage_{int(p * 100)}"] = float(np.mean((loss >= lo) & (loss <= hi)))
    row["rel_error_bayes"] = float(np.mean(np.abs(np.median(flat, axis=0) - loss) / loss))
    point = huber_lbfgs(train).predict(test[["params", "tokens"]])
    row["rel_error_huber"] = float(np.mean(np.abs(point - loss) / loss))
    d = fit.diagnostics()
    row["max_r_hat"], row["divergences"] = round(d["max_r_hat"], 4), d["divergences"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    args = parser.parse_args()
    table = pd.DataFrame([score(n, t, args.draws, args.chains) for n, t in CASES.items()])
    with pd.option_context("display.width", 200, "display.max_columns", 20,
                           "display.float_format", "{:.4g}".format):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
