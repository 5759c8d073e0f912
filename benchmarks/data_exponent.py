"""Issue 21's hypothesis 4, first half: a data exponent that grows with model size.

The Chinchilla law ``L = E + A N^-alpha + B D^-beta`` gives every model size the same data
exponent. Li et al. (2025, "Farseer") report that larger models gain more from more data.
The smallest change that says so: ``beta(N) = beta (N / N0)^gamma`` with ``gamma ~ Normal(0,
GAMMA_SD)``, ``N0`` and ``D0`` the runs' geometric means (the data term is ``B0 (D /
D0)^-beta(N)``, so gamma turns the data term about the runs' centre). ``gamma = 0`` is the
Chinchilla law.

This is a prototype in plain PyMC (nutpie), not a law of the package: it fits both laws,
taken as exact (no discrepancy), on the out-of-study benchmark's splits
(``benchmarks/extrapolation.py``: Chinchilla and the OLMo ladder cut 1 and 2 decades under
their largest budget, Porian OWT2's four setups likewise, Gemstones ``cool_end`` fitted below
1e20 and scored at 3e20 and above; the CS336 split needs the recipe's hyperparameter terms and
is left out) and scores the held-out runs' new-run draws (law plus the fitted Student-t
noise): median absolute error of the median, 50% and 90% coverage and the 90% interval score
(all in % of the loss).

    python benchmarks/data_exponent.py [--gamma-sd 0.05] [--draws 500] [--studies ...]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extrapolation import score, splits  # noqa: E402


def fit_and_predict(train: pd.DataFrame, test: pd.DataFrame, gamma_sd: float | None,
                    draws: int, seed: int) -> np.ndarray:
    """New-run draws of log loss at ``test`` (draws x runs); ``gamma_sd`` None: Chinchilla."""
    import pymc as pm
    import pytensor.tensor as pt

    log_n0, log_d0 = np.log(train["params"]).mean(), np.log(train["tokens"]).mean()
    z_n, z_d = np.log(train["params"].to_numpy()) - log_n0, np.log(train["tokens"].to_numpy()) - log_d0
    y = np.log(train["loss"].to_numpy())
    share = float(np.median(y) - np.log(3))
    with pm.Model():
        log_e = pm.Normal("log_E", float(y.min() - np.log(2)), 1.0)
        log_a = pm.Normal("log_A_ref", share, 2.0)
        log_b = pm.Normal("log_B_ref", share, 2.0)
        alpha = pm.LogNormal("alpha", np.log(0.3), 0.75)
        beta = pm.LogNormal("beta", np.log(0.3), 0.75)
        gamma = pm.Normal("gamma", 0.0, gamma_sd) if gamma_sd else 0.0
        mu = pt.logsumexp(pt.stack([log_e + 0 * z_n, log_a - alpha * z_n,
                                    log_b - beta * pt.exp(gamma * z_n) * z_d]), axis=0)
        sigma = pm.HalfNormal("sigma", 0.05)
        nu = pm.Gamma("nu", 2.0, 0.1)
        pm.StudentT("log_loss", nu=nu, mu=mu, sigma=sigma, observed=y)
        idata = pm.sample(draws, tune=draws, chains=2, nuts_sampler="nutpie",
                          progressbar=False, random_seed=seed)
    post = idata.posterior
    p = {k: post[k].values.reshape(-1, 1) for k in post.data_vars}
    tz_n = np.log(test["params"].to_numpy())[None, :] - log_n0
    tz_d = np.log(test["tokens"].to_numpy())[None, :] - log_d0
    g = p["gamma"] if gamma_sd else 0.0
    log_mu = np.logaddexp(np.logaddexp(p["log_E"], p["log_A_ref"] - p["alpha"] * tz_n),
                          p["log_B_ref"] - p["beta"] * np.exp(g * tz_n) * tz_d)
    rng = np.random.default_rng(seed)
    noise = p["sigma"] * rng.standard_t(p["nu"], size=log_mu.shape)
    return log_mu + noise, float(np.median(g)) if gamma_sd else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gamma-sd", type=float, default=0.05)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--studies", nargs="+", default=["chinchilla", "olmo", "porian", "gemstones"])
    args = parser.parse_args()
    rows = []
    for name, (study, options, train, test) in splits().items():
        if study not in args.studies or options:
            continue
        for label, sd in (("chinchilla", None), (f"beta(N), gamma sd {args.gamma_sd}", args.gamma_sd)):
            t0 = time.time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pred, gamma = fit_and_predict(train, test, sd, args.draws, seed=0)
            row = {"law": label, "split": name, "study": study, "gamma": gamma}
            row |= score(pred, np.log(test["loss"].to_numpy(float)))
            rows.append(row)
            print(f"  {name:34s} {label:24s} error {row['error_%']:6.2f}%  in90 {row['in90']:3d}/"
                  f"{row['n']:3d}  gamma {gamma:+.3f}  {time.time() - t0:.0f} s", flush=True)
    rows = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print(rows.pivot(index="split", columns="law", values="error_%").to_string())
        for by in (["law", "study"], ["law"]):
            g = rows.groupby(by)
            out = pd.DataFrame({"50% cov": g["in50"].sum() / g["n"].sum(),
                                "90% cov": g["in90"].sum() / g["n"].sum(),
                                "interval score": g["score_sum"].sum() / g["n"].sum(),
                                "median error % (splits)": g["error_%"].median()})
            print(out.to_string())


if __name__ == "__main__":
    main()
