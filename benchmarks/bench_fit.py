"""Speed of the main job, `bayescale fit models/chinchilla.toml`, against its baselines.

Everything is measured in one run, each job as a new process, and reported as ratios to a
baseline measured in the same run (on a shared machine the load moves the absolute times):

1. the main job end to end (backtests, report and figures included; the second run, so
   that the compilations the first left on disk are used: the run starts with empty caches) against the Epoch-style point fit it replaces:
   ``bs.baselines.huber_lbfgs`` from Hoffmann's 4,500-start grid with 1,000 bootstrap refits;
2. its minimum bulk ESS (over the law's parameters, the noise and the discrepancy's scale)
   per second of the whole CLI wall time, against ``benchmarks/plain_pymc.py`` (the same law
   as a plain PyMC script would write it, ``pm.sample`` defaults, same draws and chains);
3. ``bayescale predict posterior.nc --budgets 1e24`` against reading the same file with
   xarray alone, and ``bayescale --help`` against ``import numpy, pandas`` (each pair run
   ``--repeats`` times, interleaved; medians);

then the stages of one fit in a fresh process (import, graph, nutpie's compilation,
sampling, the discrepancy's backtests and scale, the results folder) and the answer at
Chinchilla's budget with its R-hat and ESS. The load average before and after is printed:
the figures of a busy machine are not those of an idle one.

    python benchmarks/bench_fit.py [--draws 1000] [--chains 4] [--repeats 5] [--skip-baselines]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import arviz_stats as azs
import pandas as pd
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
#: The parameters whose ESS is compared (the plain script samples log E, log A, log B).
PARAMS = ["alpha", "beta", "sigma", "nu"]
HUBER = ("import bayescale as bs; bs.baselines.huber_lbfgs(bs.datasets.load('chinchilla'), "
         "bootstrap=1000, random_seed=0)")
#: The acceptance ratios: (what, at most or at least, bound).
TARGETS = {"main job / Huber point fit (wall)": ("<=", 0.2),
           "CLI ESS/s / plain PyMC ESS/s": (">=", 3.0),
           "predict / xarray.open_datatree (wall)": ("<=", 2.0),
           "--help / import numpy, pandas (wall)": ("<=", 2.0)}


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


def _ess(path: Path, names: list[str]) -> tuple[float, float]:
    """Minimum bulk ESS and maximum R-hat over ``names`` (those the file holds)."""
    with xr.open_datatree(path) as tree:
        post = tree["posterior"].to_dataset().load()
    post = post[[n for n in names if n in post]]
    ess, rhat = azs.ess(post, method="bulk"), azs.rhat(post)
    return (float(min(ess[v].min() for v in ess.data_vars)),
            float(max(rhat[v].max() for v in rhat.data_vars)))


def _paired(first: list[str], second: list[str], env: dict, repeats: int) -> tuple[float, float]:
    """Median wall seconds of two commands run ``repeats`` times, alternately."""
    a, b = [], []
    for _ in range(repeats):
        a.append(_run(first, env)[0])
        b.append(_run(second, env)[0])
    return statistics.median(a), statistics.median(b)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-baselines", action="store_true",
                        help="skip the Huber fit and the plain PyMC script (the slow ones)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bayescale-bench-"))
    # fresh compilation caches (PyTensor's, which holds the numba cache of the compiled
    # models, and numba's own): the first run compiles, the second loads
    env = dict(os.environ, NUMBA_CACHE_DIR=str(work / "numba"),
               PYTENSOR_FLAGS=f"base_compiledir={work / 'pytensor'}", PYTHONWARNINGS="ignore")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; {args.chains} chains x {args.draws} draws; "
          f"{time.strftime('%Y-%m-%d %H:%M')}; load average before: {_load()}", flush=True)
    exe = str(Path(sys.executable).parent / "bayescale")
    cli = [exe, "fit", str(ROOT / "models" / "chinchilla.toml"), "--no-progress", "--force",
           "--draws", str(args.draws), "--chains", str(args.chains)]
    out = work / "results"
    rows = {}
    for label in ("bayescale fit (first run)", "bayescale fit (second run)"):
        wall, rss = _run([*cli, "--out", str(out)], env)
        ess, rhat = _ess(out / "posterior.nc", ["E", "A", "B", *PARAMS, "discrepancy_scale"])
        rows[label] = (wall, ess, rhat, rss)
    main_wall = rows["bayescale fit (second run)"][0]
    if not args.skip_baselines:
        wall, rss = _run([sys.executable, "-c", HUBER], env)
        rows["Huber L-BFGS, 4500 starts + 1000 bootstrap"] = (wall, float("nan"),
                                                               float("nan"), rss)
        nc = work / "plain.nc"
        wall, rss = _run([sys.executable, str(ROOT / "benchmarks" / "plain_pymc.py"), str(nc),
                          str(args.draws), str(args.chains)], env)
        rows["plain PyMC script (pm.sample)"] = (wall, *_ess(nc, ["log_E", "log_A", "log_B",
                                                                  *PARAMS]), rss)
    nc = str(out / "posterior.nc")
    predict, read = _paired([exe, "predict", nc, "--budgets", "1e24"],
                            [sys.executable, "-c", f"import xarray; xarray.open_datatree({nc!r})"],
                            env, args.repeats)
    helped, numpy_pandas = _paired([exe, "--help"],
                                   [sys.executable, "-c", "import numpy, pandas"], env,
                                   args.repeats)
    print(f"\n{'run':<44} {'wall s':>7} {'min ESS':>8} {'ESS/s':>7} {'max R-hat':>9} "
          f"{'peak MiB':>9}")
    for label, (wall, ess, rhat, rss) in rows.items():
        print(f"{label:<44} {wall:>7.1f} {ess:>8.0f} {ess / wall:>7.1f} {rhat:>9.4f} {rss:>9.0f}")
    print(f"{'bayescale predict posterior.nc --budgets 1e24':<44} {predict:>7.2f}")
    print(f"{'python -c xarray.open_datatree(posterior.nc)':<44} {read:>7.2f}")
    print(f"{'bayescale --help':<44} {helped:>7.2f}")
    print(f"{'python -c import numpy, pandas':<44} {numpy_pandas:>7.2f}")
    ratios = {"predict / xarray.open_datatree (wall)": predict / read,
              "--help / import numpy, pandas (wall)": helped / numpy_pandas}
    if not args.skip_baselines:
        huber = rows["Huber L-BFGS, 4500 starts + 1000 bootstrap"][0]
        plain = rows["plain PyMC script (pm.sample)"]
        second = rows["bayescale fit (second run)"]
        ratios = {"main job / Huber point fit (wall)": main_wall / huber,
                  "CLI ESS/s / plain PyMC ESS/s": (second[1] / second[0]) / (plain[1] / plain[0]),
                  **ratios}
    print("\nratios (target):")
    for name, value in ratios.items():
        sign, bound = TARGETS[name]
        met = value <= bound if sign == "<=" else value >= bound
        print(f"  {name:<42} {value:>6.2f}  ({sign} {bound:g}: {'met' if met else 'NOT met'})")
    targets = pd.read_csv(out / "targets.csv")
    row = targets.iloc[0]
    print(f"\nanswer at C = {row['budget']:.3g}: loss at optimum {row['loss_opt']:.4g} "
          f"[{row['loss_opt_lower']:.4g}, {row['loss_opt_upper']:.4g}], N* {row['params_opt']:.4g} "
          f"[{row['params_opt_lower']:.4g}, {row['params_opt_upper']:.4g}]")
    print("stages of one fit (fresh process, the caches of the runs above):")
    for name, seconds in _stages(env, args.draws, args.chains, work / "stages"):
        print(f"  {name:<46} {seconds:>6.1f} s")
    print(f"load average after: {_load()}")


#: One fit, timed stage by stage (run as a fresh process; prints "stage<TAB>seconds" lines).
STAGES = """
import sys, time
t = time.perf_counter()
def stage(name):
    global t
    now = time.perf_counter(); print(name, now - t, sep="\\t", flush=True); t = now
import bayescale as bs
from bayescale.model.family import Family
from bayescale.report.answer import write_results
from bayescale.report.recipe import Recipe
stage("import bayescale")
recipe = Recipe.read(sys.argv[1])
model = recipe.scaling_law()
model.model
from bayescale.report.drawing import FigureWorker
worker = FigureWorker.start()  # as the command starts it: the law figure's process
stage("model and graph")
import nutpie
from bayescale.inference import sampling
from bayescale.inference.compiled import compile_pymc_model
stage("import PyMC and nutpie")
sampling._COMPILED[model.compile_key()] = (compile_pymc_model(model.model), model.model)
stage("compile (loaded from the disk cache)")
kwargs = recipe.fit_kwargs(draws=int(sys.argv[2]), chains=int(sys.argv[3]), progressbar=False)
from bayescale.inference.progress import listening
marks = []
with listening(lambda what, depth: marks.append((time.perf_counter(), "  " * depth + what))):
    fit = Family.fit(model, **kwargs)  # the discrepancy's backtests and scale included
end = time.perf_counter()
stage("the fit: sampling, log-likelihood, the discrepancy")
for (at, what), until in zip(marks, [m[0] for m in marks[1:]] + [end]):
    print("  " + what.split(":")[0], until - at, sep="\t", flush=True)
write_results(fit, sys.argv[4], budgets=recipe.budgets, overwrite=True, worker=worker)
stage("results folder: report and figures (the law's by a second process)")
"""


def _stages(env: dict, draws: int, chains: int, out: Path) -> list[tuple[str, float]]:
    done = subprocess.run([sys.executable, "-c", STAGES, str(ROOT / "models" / "chinchilla.toml"),
                           str(draws), str(chains), str(out)], env=env, capture_output=True,
                          text=True, check=True)
    rows = [line.split("\t") for line in done.stdout.splitlines() if "\t" in line]
    return [(name, float(seconds)) for name, seconds in rows]


if __name__ == "__main__":
    main()
