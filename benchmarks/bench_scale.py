"""Scaling in the number of runs: fit simulated sweeps of 1k, 10k and 100k runs.

Each size is a fresh process (so peak memory is its own): ``bs.simulate`` draws the sweep
(Chinchilla law, num_heads offsets, a learning-rate optimum; budgets 1e16-1e19), and
``bs.ScalingLaw(runs, law="chinchilla", offsets=["num_heads", "batch_size", "learning_rate"])``
is fitted by nutpie, 4 chains x 1000 draws (1000 tuning), the same settings as the Chinchilla
recipe. Prints per size: wall time of model building + compilation + sampling + the fit's
log-likelihood, the stages, worst R-hat, and peak resident memory; then the growth factor
per 10x more runs.

    python benchmarks/bench_scale.py [--sizes 1000 10000 100000] [--discrepancy prior]

``--discrepancy`` (default ``backtest``, the package's default: two backtest fits and the
scale's fit after the main fit) is the model's option; ``prior`` makes one NUTS fit. Each
size's stages (the package's phase lines, with their times) go to stderr as they happen.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
import warnings

#: Simulated budgets per size: enough configurations per budget (at most 2240 distinct).
BUDGETS = {1000: 10, 10000: 10, 100000: 50}
OFFSETS = ["num_heads", "batch_size", "learning_rate"]


def one(size: int, draws: int, discrepancy: str = "backtest") -> dict:
    """Fit one simulated sweep of ``size`` runs in this process; return its figures."""
    import numpy as np

    import bayescale as bs

    n_budgets = BUDGETS.get(size, max(10, size // 2000))
    budgets = np.geomspace(1e16, 1e19, n_budgets)
    runs = bs.simulate(budgets=budgets, runs_per_budget=size // n_budgets, random_seed=0)
    from bayescale.inference.progress import listening

    start = time.perf_counter()

    def stage(what: str, depth: int) -> None:  # the profile: each phase as it starts
        print(f"  [{time.perf_counter() - start:7.1f} s] {'  ' * depth}{what}", file=sys.stderr,
              flush=True)

    model = bs.ScalingLaw(runs, law="chinchilla", offsets=OFFSETS, discrepancy=discrepancy)
    built = time.perf_counter()
    with warnings.catch_warnings(), listening(stage):
        warnings.simplefilter("ignore", bs.SamplerWarning)  # reported below
        fit = model.fit(draws=draws, tune=draws, chains=4, random_seed=0, progressbar=False)
    done = time.perf_counter()
    diag = fit.diagnostics()
    truth = runs.attrs["truth"].law
    med = {k: float(fit.posterior[k].median()) for k in ("E", "alpha", "beta")}
    return {"runs": len(runs), "budgets": n_budgets, "wall_s": done - start,
            "build_s": built - start, "fit_s": done - built,
            "max_r_hat": diag["max_r_hat"], "min_ess_bulk": diag["min_ess_bulk"],
            "divergences": diag["divergences"],
            "E": med["E"], "alpha": med["alpha"], "beta": med["beta"],
            "truth": {k: truth[k] for k in ("E", "alpha", "beta")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--discrepancy", default="backtest", choices=["backtest", "prior", "off"])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.draws, args.discrepancy)))
        return
    rows = []
    for size in args.sizes:
        proc = subprocess.run([sys.executable, __file__, "--one", str(size), "--draws",
                               str(args.draws), "--discrepancy", args.discrepancy],
                              stdout=subprocess.PIPE, text=True, check=True)
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        # the largest child so far: the sizes grow, so this is this size's own peak
        row["peak_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        rows.append(row)
        print(f"{row['runs']:>7} runs: {row['wall_s']:7.1f} s (build {row['build_s']:.1f}, "
              f"compile+sample+log-lik {row['fit_s']:.1f}), peak {row['peak_mib']:.0f} MiB, "
              f"R-hat {row['max_r_hat']:.4f}, ESS {row['min_ess_bulk']:.0f}, "
              f"divergences {row['divergences']}; E {row['E']:.3f} alpha {row['alpha']:.3f} "
              f"beta {row['beta']:.3f} (truth {row['truth']})", flush=True)
    print("\n| runs | wall s | peak MiB | growth of wall time per 10x runs | max R-hat |")
    print("|---:|---:|---:|---:|---:|")
    for prev, row in zip([None, *rows], rows):
        growth = ""
        if prev is not None:  # wall-time ratio scaled to a 10x step in runs
            decades = math.log10(row["runs"] / prev["runs"])
            growth = f"{(row['wall_s'] / prev['wall_s']) ** (1 / decades):.2f}x"
        print(f"| {row['runs']} | {row['wall_s']:.1f} | {row['peak_mib']:.0f} | {growth} | "
              f"{row['max_r_hat']:.4f} |")


if __name__ == "__main__":
    main()
