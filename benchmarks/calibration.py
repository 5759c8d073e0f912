"""Calibration study: coverage of 50% and 90% intervals over many simulated data sets.

For each law, fits ``--datasets`` data sets drawn from the calibration prior (simulation-based
calibration) and ``--fixed`` data sets from one fixed truth, with :func:`bayescale.analysis.calibration.
calibrate`, and prints the coverage tables (markdown) that go in ``benchmarks/RESULTS.md``.
Saves each result (netCDF) and its rank histograms (PNG) under ``--out``.

    python benchmarks/calibration.py [--datasets 200] [--fixed 100] [--laws chinchilla flops]
        [--seed 2026] [--executor serial|threads|dask] [--out benchmarks/calibration]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from bayescale.analysis import calibration  # noqa: E402

#: Acceptance band of the calibration issue: coverage of the nominal 90% and 50% intervals.
BANDS = {90: (0.85, 0.95), 50: (0.42, 0.58)}


@contextmanager
def make_executor(kind: str):
    if kind == "serial":
        yield None
    elif kind == "threads":
        with ThreadPoolExecutor(2) as pool:
            yield pool
    else:
        from dask.distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster, \
                Client(cluster) as client:
            yield client.get_executor()


def report(result, seconds: float) -> str:
    table = calibration.coverage(result)
    attrs = result.attrs
    lines = [f"### law `{attrs['law']}`, mode `{attrs['mode']}`: {result.sizes['dataset']} data "
             f"sets, {seconds / 60:.1f} min",
             "",
             f"Fits: nutpie, {attrs['chains']} chains x {attrs['draws']} draws "
             f"({attrs['tune']} tuning), seed {attrs['random_seed']}; divergent fits "
             f"{int((result['divergences'] > 0).sum())}, fits with R-hat > 1.01 "
             f"{int((result['max_r_hat'] > 1.01).sum())}, worst R-hat "
             f"{float(result['max_r_hat'].max()):.3f}.",
             "",
             "| quantity | 50% coverage | 90% coverage | rank uniformity p |",
             "|---|---:|---:|---:|"]
    for name, row in table.iterrows():
        flags = ["" if BANDS[p][0] <= row[f"coverage_{p}"] <= BANDS[p][1] else " (outside)"
                 for p in (50, 90)]
        p_text = "" if name == "all" else f"{row['rank_p']:.2f}"
        lines.append(f"| {name} | {row['coverage_50']:.3f}{flags[0]} | "
                     f"{row['coverage_90']:.3f}{flags[1]} | {p_text} |")
    lines.append(f"\nBinomial standard error at the nominal rate: 50%: {table['se_50'].iloc[0]:.3f}"
                 f", 90%: {table['se_90'].iloc[0]:.3f}.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=200, help="prior-drawn data sets per law")
    parser.add_argument("--fixed", type=int, default=100, help="fixed-truth data sets per law")
    parser.add_argument("--laws", nargs="+", default=["chinchilla", "flops"])
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--executor", choices=["serial", "threads", "dask"], default="serial")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/calibration"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with make_executor(args.executor) as executor:
        for law in args.laws:
            for mode, n in (("prior", args.datasets), ("fixed", args.fixed)):
                if n == 0:
                    continue
                start = time.perf_counter()
                result = calibration.calibrate(
                    law, datasets=n, mode=mode, draws=args.draws, tune=args.draws,
                    chains=args.chains, executor=executor, random_seed=args.seed,
                    progress=lambda done, total: print(f"  {done}/{total}", flush=True))
                seconds = time.perf_counter() - start
                stem = f"{law}_{mode}" + ("" if args.seed == 2026 else f"_seed{args.seed}")
                result.to_netcdf(args.out / f"{stem}.nc")
                fig = calibration.plot_calibration(result)
                fig.savefig(args.out / f"ranks_{stem}.png", dpi=110)
                print(report(result, seconds), "\n", flush=True)


if __name__ == "__main__":
    main()
