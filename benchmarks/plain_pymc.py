"""The baseline of bench_fit.py: the Chinchilla law as a plain PyMC script would write it.

Uncentred (log A and log B at N = D = 1), PyMC's default NUTS sampler, the same priors in
spirit as bayescale's defaults, Student-t noise on log loss. Usage:
    python benchmarks/plain_pymc.py OUT.nc [draws] [chains]
"""

import sys

import numpy as np
import pymc as pm

import bayescale as bs

out = sys.argv[1]
draws = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
chains = int(sys.argv[3]) if len(sys.argv) > 3 else 4
runs = bs.datasets.load("chinchilla")
log_n, log_d = np.log(runs["params"].to_numpy()), np.log(runs["tokens"].to_numpy())
log_loss = np.log(runs["loss"].to_numpy())
with pm.Model():
    log_e = pm.Normal("log_E", log_loss.min() - np.log(2), 1)
    log_a = pm.Normal("log_A", 5, 5)
    log_b = pm.Normal("log_B", 5, 5)
    alpha = pm.LogNormal("alpha", np.log(0.3), 0.75)
    beta = pm.LogNormal("beta", np.log(0.3), 0.75)
    sigma = pm.HalfNormal("sigma", log_loss.std())
    nu = pm.Gamma("nu", 2, 0.1)
    mu = pm.math.logsumexp(pm.math.stack([log_e + 0 * log_n, log_a - alpha * log_n,
                                          log_b - beta * log_d]), axis=0)
    pm.StudentT("log_loss", nu=nu, mu=mu, sigma=sigma, observed=log_loss)
    idata = pm.sample(draws=draws, tune=draws, chains=chains, random_seed=0, progressbar=False)
idata.to_netcdf(out)
