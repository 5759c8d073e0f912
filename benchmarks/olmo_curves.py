"""Learning curves on the OLMo ladder: do checkpoints narrow the prediction of larger runs?

Fits the chinchilla law to the runs of the smaller sizes and predicts the final losses of the
runs of a held-out larger size (new-run 90% predictive intervals; every held-out run is an
unseen ``curve`` and gets a fresh offset). Two data choices are compared:

- ``finals``: one row per run, its final loss (the classic fit);
- ``checkpoints``: :func:`bayescale.checkpoints` with ``min_fraction`` (0.8 by default): the
  late checkpoints of every run, fitted with a shared offset per run (``offsets=["curve"]``).
  ``--per-run 5`` (default) keeps 5 of them per run, evenly spaced: neighbouring checkpoints
  of a smooth curve say nearly the same thing, and the full set (~20 per run) slows NUTS and
  mixes worse without moving the medians.

Splits: ``test`` fits 190M-1B and predicts 3B (the issue's acceptance); ``validation`` fits
190M-760M and predicts 1B, to judge choices without looking at the 3B runs.

It also prints the pre-decay excess on the training sizes: for every checkpoint whose tokens
lie within the final runs of its size, ``log(loss)`` minus a quadratic in log tokens through
those finals (the loss of a run trained and annealed to that many tokens), averaged by fraction
of the run. This measurement (on 190M-1B only) sets the default ``min_fraction``. Last, the
seed noise of the ladder: ``sigma_seed`` and ``sigma_misfit`` of the 30 final losses with the
configurations (size, token multiplier) as offsets; the five 1xC runs have a re-run.

Usage (the results in ``benchmarks/RESULTS.md``)::

    python benchmarks/olmo_curves.py                                # both splits
    python benchmarks/olmo_curves.py --offsets chinchilla_mult --no-seeds
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import bayescale as bs
from bayescale.data.curves import MIN_FRACTION

SIZES = ["190M", "370M", "760M", "1B", "3B"]
SPLITS = {"test": (SIZES[:4], "3B"), "validation": (SIZES[:3], "1B")}
BINS = [0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.999999, 1.0]


def markdown(table: pd.DataFrame) -> str:
    """A Markdown table of ``table``'s columns (no index)."""
    cells = [list(map(str, table.columns))] + [[str(v) for v in row] for row in table.to_numpy()]
    lines = ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join([lines[0], "|" + "---|" * len(table.columns), *lines[1:]])


def pre_decay_excess(curves: pd.DataFrame, finals: pd.DataFrame) -> pd.DataFrame:
    """Mean excess of checkpoints over the finals of their size (smoothed), by fraction."""
    curves = bs.checkpoints(curves, min_fraction=0.0)
    rows = []
    for size, part in curves.groupby("size"):
        ends = finals[(finals["size"] == size) & ~finals["rerun"]].sort_values("tokens")
        log_d, log_l = np.log(ends["tokens"].to_numpy()), np.log(ends["loss"].to_numpy())
        inside = part[(np.log(part["tokens"]) >= log_d[0]) & (np.log(part["tokens"]) <= log_d[-1])]
        # a quadratic in log D through the 5 finals: a chord would sit above the convex curve
        smooth = np.polyval(np.polyfit(log_d, log_l, 2), np.log(inside["tokens"]))
        excess = np.log(inside["loss"]) - smooth
        rows.append(inside.assign(excess=excess))
    table = pd.concat(rows)
    table["fraction of the run"] = pd.cut(table["fraction"], BINS, include_lowest=True)
    by = table.groupby("fraction of the run", observed=True)
    out = by["excess"].agg(["count", "mean"])
    by_length = table.pivot_table(index="fraction of the run", columns="chinchilla_mult",
                                  values="excess", observed=True)
    return out.join(by_length.rename(columns=lambda m: f"{m:g}xC"))


def thin(table: pd.DataFrame, per_run: int) -> pd.DataFrame:
    """At most ``per_run`` checkpoints of each curve, evenly spaced by position (0: all)."""
    if not per_run:
        return table
    keep = [index for _, one in table.sort_values("tokens").groupby("curve")
            for index in one.index[np.unique(np.linspace(0, len(one) - 1, per_run).round()
                                             .astype(int))]]
    return table.loc[sorted(keep)]


def predict_finals(fit: bs.Fit, held_out: pd.DataFrame, prob: float, seed: int) -> pd.DataFrame:
    points = held_out[["params", "tokens"]].assign(curve=held_out["run"].to_numpy())
    draws = fit.predict(points, kind="new_run", random_seed=seed)["loss"].values
    draws = draws.reshape(-1, len(held_out))
    lo, mid, hi = np.quantile(draws, [(1 - prob) / 2, 0.5, (1 + prob) / 2], axis=0)
    y = held_out["loss"].to_numpy()
    return pd.DataFrame({"run": held_out["run"].to_numpy(), "loss": y, "median": mid,
                         "lower": lo, "upper": hi, "inside": (y >= lo) & (y <= hi),
                         "width": (hi - lo) / mid})


def run_choice(name: str, train: pd.DataFrame, offsets, settings: dict) -> bs.Fit:
    """Fit the chinchilla law with ``offsets`` (diagnostics are reported, not warned)."""
    model = bs.ScalingLaw(train, law="chinchilla", offsets=offsets or None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplerWarning)  # diagnostics are printed below
        return model.fit(**settings)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=[*SPLITS, "both"], default="both")
    parser.add_argument("--min-fraction", type=float, default=MIN_FRACTION)
    parser.add_argument("--per-run", type=int, default=5,
                        help="keep this many checkpoints per run, evenly spaced (0: all)")
    parser.add_argument("--no-seeds", action="store_true", help="skip the seed-noise fit")
    parser.add_argument("--offsets", nargs="*", default=[],
                        help="extra offset columns for both choices (e.g. chinchilla_mult)")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=2000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prob", type=float, default=0.9)
    args = parser.parse_args(argv)
    curves = bs.datasets.load("olmo_ladder_curves")
    finals = bs.datasets.load("olmo_ladder")
    settings = {"draws": args.draws, "tune": args.tune, "chains": args.chains,
                "random_seed": args.seed, "progressbar": False, "target_accept": 0.95}

    print("Pre-decay excess on 190M-1B: mean log(checkpoint loss / smoothed finals of its "
          "size), all runs and by run length (token multiplier)")
    excess = pre_decay_excess(curves[curves["size"].isin(SIZES[:4])], finals)
    print(markdown(excess.round(4).reset_index().astype(str)))
    splits = list(SPLITS) if args.split == "both" else [args.split]
    rows, details = [], []
    for split in splits:
        sizes, target = SPLITS[split]
        held_out = finals[finals["size"] == target]
        choices = {
            "finals": (finals[finals["size"].isin(sizes)], list(args.offsets)),
            f"checkpoints >= {args.min_fraction:g}": (
                thin(bs.checkpoints(curves[curves["size"].isin(sizes)],
                                    min_fraction=args.min_fraction), args.per_run),
                ["curve", *args.offsets]),
        }
        for name, (train, offsets) in choices.items():
            start = time.perf_counter()
            fit = run_choice(name, train, offsets, settings)
            seconds = time.perf_counter() - start
            pred = predict_finals(fit, held_out, args.prob, args.seed + 1)
            diag = fit.diagnostics()
            rows.append({"split": f"{'+'.join(sizes)} -> {target}", "data": name,
                         "offsets": ", ".join(offsets) or "-", "rows": len(train),
                         "coverage": f"{int(pred['inside'].sum())}/{len(pred)}",
                         "median width": f"{pred['width'].median():.2%}",
                         "mean width": f"{pred['width'].mean():.2%}",
                         "max R-hat": f"{diag['max_r_hat']:.3f}",
                         "divergences": diag["divergences"], "seconds": round(seconds)})
            details.append(pred.assign(split=split, data=name))
            print(markdown(pd.DataFrame(rows[-1:])), flush=True)
    print(f"\n{args.prob:.0%} new-run predictive intervals of the held-out final losses")
    print(markdown(pd.DataFrame(rows)))
    print()
    print(markdown(pd.concat(details)[["split", "data", "run", "loss", "lower", "median",
                                       "upper", "inside"]].round(4)))
    if not args.no_seeds:
        print("\nSeed noise: the 30 final losses, configuration = (size, chinchilla_mult); the 5 "
              "1xC runs have a re-run")
        print(markdown(seed_noise(finals, settings, args.prob)))


def seed_noise(finals: pd.DataFrame, settings: dict, prob: float) -> pd.DataFrame:
    """sigma_seed and sigma_misfit of the finals, with the configurations as offsets."""
    runs = bs.replicates(finals, by=["size", "chinchilla_mult"])
    fit = run_choice("seeds", runs, ["config"], settings)
    table = fit.summary(prob=prob).loc[["sigma_seed", "sigma_misfit", "nu"]]
    return table[["median", "lower", "upper", "r_hat"]].reset_index().round(5)


if __name__ == "__main__":
    main()
