"""Learning curves on the OLMo ladder: do checkpoints narrow the prediction of larger runs?

Predicts the final losses of the runs of a held-out larger size (new-run 90% predictive
intervals; every held-out run is an unseen ``curve`` and gets a fresh offset) from the runs of
the smaller sizes, two ways:

- ``finals``: :class:`bayescale.ScalingLaw` on one row per run, its final loss;
- ``curves``: :class:`bayescale.LearningCurves` on :func:`bayescale.learning_curves` (the
  checkpoints from 30% of each run on, 12 per run evenly spaced in log tokens, each with the
  learning rate not yet annealed, from the ladder's schedule).

each with the discrepancy term off and with its prior (``discrepancy="prior"``). Splits:
``test`` fits 190M-1B and predicts 3B; ``validation`` fits 190M-760M and predicts 1B.

Then **a run not yet finished**: for each size in turn, its six runs are cut at 50% of their
tokens (their schedules' ends known: ``final_tokens`` and ``final_lr``) and the other sizes'
runs are kept whole; the fit predicts the six final losses (each run keeps its learned
offset). Over the five sizes that is all 30 runs. Last (unless ``--no-seeds``): the
pre-decay excess table and the ladder's seed noise, as before.

Usage (the results in ``benchmarks/RESULTS.md``)::

    python benchmarks/olmo_curves.py                 # both splits, the 50% runs, seed noise
    python benchmarks/olmo_curves.py --split test --no-half --no-seeds
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
import xarray as xr

import bayescale as bs

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


def scored(fit: bs.Fit, runs: pd.DataFrame, prob: float, seed: int) -> pd.DataFrame:
    """``bs.final_losses`` of ``runs`` (with ``final_tokens``, ``curve`` and the observed
    final ``loss``) against that loss: inside the interval, relative error and width."""
    pred = bs.final_losses(fit, runs, prob=prob, random_seed=seed)
    y = runs["loss"].to_numpy()
    return pred.assign(run=runs["run"].to_numpy(), loss=y,
                       inside=(y >= pred["lower"]) & (y <= pred["upper"]),
                       error=pred["median"] / y - 1,
                       width=(pred["upper"] - pred["lower"]) / pred["median"])


def predict_finals(fit: bs.Fit, held_out: pd.DataFrame, prob: float, seed: int) -> pd.DataFrame:
    runs = held_out.assign(final_tokens=held_out["tokens"], curve=held_out["run"].astype(str))
    return scored(fit, runs, prob, seed)


def quiet_fit(model, settings: dict) -> bs.Fit:
    """Fit ``model``; diagnostics are printed in the tables, not warned."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplerWarning)
        return model.fit(**settings)


def split_rows(split: str, curves, finals, settings, prob, seed):
    sizes, target = SPLITS[split]
    held_out = finals[finals["size"] == target]
    rows, details = [], []
    for discrepancy in ("off", "prior"):
        choices = {
            "finals": lambda: bs.ScalingLaw(finals[finals["size"].isin(sizes)],
                                            law="chinchilla", discrepancy=discrepancy),
            "curves": lambda: bs.LearningCurves(
                bs.learning_curves(curves[curves["size"].isin(sizes)]),
                discrepancy=discrepancy),
        }
        for name, make in choices.items():
            model = make()
            start = time.perf_counter()
            fit = quiet_fit(model, settings)
            seconds = time.perf_counter() - start
            pred = predict_finals(fit, held_out, prob, seed + 1)
            diag = fit.diagnostics()
            rows.append({"split": f"{'+'.join(sizes)} -> {target}", "data": name,
                         "discrepancy": discrepancy, "rows": len(model.runs),
                         "coverage": f"{int(pred['inside'].sum())}/{len(pred)}",
                         "median width": f"{pred['width'].median():.2%}",
                         "median error": f"{pred['error'].abs().median():.2%}",
                         "max R-hat": f"{diag['max_r_hat']:.3f}",
                         "min bulk ESS": int(diag["min_ess_bulk"]),
                         "divergences": diag["divergences"], "seconds": round(seconds)})
            details.append(pred.assign(split=split, data=name, discrepancy=discrepancy))
            print(markdown(pd.DataFrame(rows[-1:])), flush=True)
    return rows, details


def law_exact(fit: bs.Fit) -> bs.Fit:
    """The same fit answering with the law taken as exact (no discrepancy draws)."""
    idata = fit.idata.copy()
    posterior = idata["posterior"]
    idata["posterior"] = xr.DataTree(bs.discrepancy.without_discrepancy(posterior.to_dataset()))
    idata["posterior"].attrs = dict(posterior.attrs)
    return bs.Fit(idata, fit.spec)


def half_runs(curves: pd.DataFrame, settings: dict, prob: float, seed: int) -> pd.DataFrame:
    """Each size's runs cut at 50% of their tokens, the others whole: their final losses,
    with the discrepancy's prior (along each run's own curve) and with the law exact."""
    final = curves.groupby("run")["tokens"].transform("max")
    whole = curves.assign(final_T=final, lr_end=bs.datasets.olmo_ladder_lr(
        curves["params"], final, final))
    out = []
    for size in SIZES:
        cut = whole[(whole["size"] != size) | (whole["tokens"] <= 0.5 * whole["final_T"])]
        table = bs.learning_curves(cut, final_tokens="final_T", final_lr="lr_end")
        fit = quiet_fit(bs.LearningCurves(table, discrepancy="prior"), settings)
        ends = whole[whole["size"] == size].sort_values("tokens").groupby("run").tail(1)
        runs = ends.assign(final_tokens=ends["final_T"], curve=ends["run"].astype(str))
        diag = fit.diagnostics()
        for name, answer in (("prior", fit), ("off", law_exact(fit))):
            out.append(scored(answer, runs, prob, seed).assign(
                discrepancy=name, max_r_hat=diag["max_r_hat"],
                divergences=diag["divergences"]))
            print(f"{size}, discrepancy {name}: {int(out[-1]['inside'].sum())}/6 inside, "
                  f"R-hat {diag['max_r_hat']:.3f}", flush=True)
    return pd.concat(out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=[*SPLITS, "both"], default="both")
    parser.add_argument("--no-seeds", action="store_true", help="skip the seed-noise fit")
    parser.add_argument("--no-half", action="store_true", help="skip the runs cut at 50%%")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prob", type=float, default=0.9)
    args = parser.parse_args(argv)
    curves = bs.datasets.load("olmo_ladder_curves")
    finals = bs.datasets.load("olmo_ladder")
    settings = {"draws": args.draws, "tune": args.tune, "chains": args.chains,
                "random_seed": args.seed, "progressbar": False}
    rows, details = [], []
    for split in (list(SPLITS) if args.split == "both" else [args.split]):
        more_rows, more_details = split_rows(split, curves, finals, settings, args.prob,
                                             args.seed)
        rows, details = rows + more_rows, details + more_details
    print(f"\n{args.prob:.0%} new-run predictive intervals of the held-out final losses")
    print(markdown(pd.DataFrame(rows)))
    print()
    print(markdown(pd.concat(details)[["split", "data", "discrepancy", "run", "loss", "lower",
                                       "median", "upper", "inside"]].round(4)))
    if not args.no_half:
        half = half_runs(curves, settings, args.prob, args.seed + 2)
        for name, part in half.groupby("discrepancy"):
            print(f"\nRuns cut at 50% of their tokens, discrepancy {name}: "
                  f"{int(part['inside'].sum())}/{len(part)} final losses inside their "
                  f"{args.prob:.0%} intervals (coverage {part['inside'].mean():.3f}); median "
                  f"|error| {part['error'].abs().median():.2%}, largest "
                  f"{part['error'].abs().max():.2%}; median width {part['width'].median():.2%}; "
                  f"max R-hat {part['max_r_hat'].max():.3f}")
        print(markdown(half[["discrepancy", "run", "loss", "lower", "median", "upper", "inside",
                             "error", "width", "decades_along"]].round(4)))
    if not args.no_seeds:
        print("\nPre-decay excess on 190M-1B: mean log(checkpoint loss / smoothed finals of "
              "its size), all runs and by run length (token multiplier)")
        print(markdown(pre_decay_excess(curves[curves["size"].isin(SIZES[:4])], finals)
                       .round(4).reset_index().astype(str)))
        print("\nSeed noise: the 30 final losses, configuration = (size, chinchilla_mult); the 5 "
              "1xC runs have a re-run")
        print(markdown(seed_noise(finals, settings, args.prob)))


def seed_noise(finals: pd.DataFrame, settings: dict, prob: float) -> pd.DataFrame:
    """sigma_seed and sigma_misfit of the finals, with the configurations as offsets."""
    runs = bs.replicates(finals, by=["size", "chinchilla_mult"])
    fit = quiet_fit(bs.ScalingLaw(runs, law="chinchilla", offsets=["config"],
                                  discrepancy="off"), settings)
    table = fit.summary(prob=prob).loc[["sigma_seed", "sigma_misfit", "nu"]]
    return table[["median", "lower", "upper", "r_hat"]].reset_index().round(5)


if __name__ == "__main__":
    main()
