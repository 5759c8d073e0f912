"""Speed of `bayescale fit models/chinchilla.toml` against a plain PyMC script.

Runs, each as a new process: (a) the CLI end to end with empty compile caches (cold), (b) the
same again with the caches it left (warm), (c) benchmarks/plain_pymc.py (uncentred model,
PyMC's default sampler, same draws and chains). Prints wall time, the minimum bulk ESS over the
law's parameters per second of wall time, peak resident memory, and the ratios; then (d) the
stages of one fit in a fresh process with warm caches: import, model (validation, priors and
the PyTensor graph), nutpie's compilation, sampling, the discrepancy's backtests (two more fits
and the scale's NUTS fit), and the results folder.

    python benchmarks/bench_fit.py [--draws 1000] [--chains 4] [--skip-plain]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import arviz_stats as azs
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ["alpha", "beta", "sigma", "nu"]


def _run(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of ``cmd`` run in a fresh wrapper process."""
    wrapper = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
               "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
               "w = time.perf_counter() - t; "
               "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, r.returncode)")
    done = subprocess.run([sys.executable, "-c", wrapper, *cmd], env=env, capture_output=True,
                          text=True, check=True)
    wall, rss, code = done.stdout.split()
    if int(code) != 0:
        raise SystemExit(f"{cmd} failed with exit status {code}")
    return float(wall), float(rss)


def _min_ess(path: Path, names: list[str]) -> float:
    with xr.open_datatree(path) as tree:
        post = tree["posterior"].to_dataset().load()
    ess = azs.ess(post[[n for n in names if n in post]], method="bulk")
    return float(min(ess[v].min() for v in ess.data_vars))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--skip-plain", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bayescale-bench-"))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(work / "numba"),
               PYTENSOR_FLAGS=f"compiledir={work / 'pytensor'}", PYTHONWARNINGS="ignore")
    cli = [str(Path(sys.executable).parent / "bayescale"), "fit",
           str(ROOT / "models" / "chinchilla.toml"), "--no-progress", "--force",
           "--draws", str(args.draws), "--chains", str(args.chains)]
    rows = []
    for label in ("bayescale fit (cold cache)", "bayescale fit (warm cache)"):
        out = work / "results"
        wall, rss = _run([*cli, "--out", str(out)], env)
        ess = _min_ess(out / "posterior.nc", ["E", "A", "B", *PARAMS])
        rows.append((label, wall, ess, rss))
    if not args.skip_plain:
        nc = work / "plain.nc"
        wall, rss = _run([sys.executable, str(ROOT / "benchmarks" / "plain_pymc.py"), str(nc),
                          str(args.draws), str(args.chains)], env)
        rows.append(("plain PyMC script (pm.sample)", wall, _min_ess(nc, ["log_E", "log_A",
                                                                           "log_B", *PARAMS]), rss))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; {args.chains} chains x {args.draws} draws; "
          f"{time.strftime('%Y-%m-%d')}")
    print(f"{'run':<32} {'wall s':>8} {'min ESS':>8} {'ESS/s':>8} {'peak MiB':>9}")
    for label, wall, ess, rss in rows:
        print(f"{label:<32} {wall:>8.1f} {ess:>8.0f} {ess / wall:>8.1f} {rss:>9.0f}")
    if not args.skip_plain:
        base = rows[-1]
        for label, wall, ess, _ in rows[:2]:
            print(f"{label}: {base[1] / wall:.1f}x faster wall, "
                  f"{(ess / wall) / (base[2] / base[1]):.1f}x the plain script's ESS/s")
    print("stages of one fit (fresh process, warm caches):")
    for name, seconds in _stages(env, args.draws, args.chains, work / "stages"):
        print(f"  {name:<32} {seconds:>6.1f} s")


#: One fit, timed stage by stage (run as a fresh process; prints "stage seconds" lines).
STAGES = """
import sys, time
t = time.perf_counter()
def stage(name):
    global t
    now = time.perf_counter(); print(name, now - t, flush=True); t = now
import bayescale as bs, nutpie, numpy as np
from bayescale.inference import sampling
from bayescale.report.answer import write_results
from bayescale.report.recipe import Recipe
stage("import")
recipe = Recipe.read(sys.argv[1])
model = recipe.scaling_law()
model.model
stage("model and graph")
sampling.clear_compile_cache()
compiled = nutpie.compile_pymc_model(model.model)
sampling._COMPILED[model.compile_key()] = compiled
stage("nutpie compile")
kwargs = recipe.fit_kwargs(draws=int(sys.argv[2]), chains=int(sys.argv[3]), progressbar=False)
from bayescale.model.discrepancy import attach
from bayescale.model.family import Family
fit = Family.fit(model, **kwargs)
stage("sampling (and log-likelihood)")
fit = attach(fit, model, sampler=kwargs["sampler"], target_accept=kwargs["target_accept"])
stage("discrepancy: two backtest fits and its scale")
write_results(fit, sys.argv[4], budgets=recipe.budgets, overwrite=True)
stage("results folder")
"""


def _stages(env: dict, draws: int, chains: int, out: Path) -> list[tuple[str, float]]:
    done = subprocess.run([sys.executable, "-c", STAGES, str(ROOT / "models" / "chinchilla.toml"),
                           str(draws), str(chains), str(out)], env=env, capture_output=True,
                          text=True, check=True)
    rows = [line.rsplit(" ", 1) for line in done.stdout.splitlines() if line.strip()]
    return [(name, float(seconds)) for name, seconds in rows]


if __name__ == "__main__":
    main()
