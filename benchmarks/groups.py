"""Laws that differ by group (issue 25): coverage on simulated variants, and Porian's setups
fitted jointly against each setup alone.

Stage ``simulate``: ``--datasets`` (200) data sets of the recovery test's truth
(``tests/test_groups.py``: 4 variants differing in E and alpha, 6 budgets 1e17-1e20 x 5 sizes
each, 1% noise; data set k is ``_sweep(k)``), each fitted with ``ScalingLaw(runs,
group="variant", group_params=["E", "alpha"], discrepancy="off")`` (2 x 500 draws, 500 tuning
steps, seed k). Per data set: is each variant's alpha and E inside its 90% interval, and the
compute multiplier of v1, v2, v3 over v0 at 100x the largest run's compute (the truth of v3 is
inf: v3's floor lies above v0's loss there; counted inside when the 95% quantile of its draws
is inf). Prints the coverage per quantity (over all data sets, and the lowest in each block of
50 seeds: the issue's 50 data sets), the fraction of data sets with every quantity inside,
and the sampler's diagnostics. Controls: ``--noise normal`` (the truth's noise; the
default fits a Student-t) and ``--fits separate`` (each variant fitted alone, no pooling; the
multiplier from the two fits' draws paired by index).

Stage ``porian``: Porian et al.'s four OWT2 setups (a ``setup`` column). Per setup in turn,
that setup is cut to its smallest third of distinct budgets and the other three kept whole;
fitted jointly as the recipe ``models/porian_owt2_setups.toml`` fits the setups (its
``group_params``, ``group_centred`` and noise; ``--joint-noise`` overrides the noise), and with
two other groupings (E, alpha, beta; all five and ``sigma``), and the cut setup alone
(``ScalingLaw(cut)``); all with the default discrepancy, every fit at the recipe's
``target_accept`` (``--target-accept`` overrides it).
Each is scored on the cut setup's held-out larger budgets (new-run draws): 50% / 90%
coverage, median error of the median, and the 90% interval score (``extrapolation.score``), in
percent of the loss; per setup and pooled. Each setup is also fitted alone on all its budgets
(not scored): the reference of the printed table of the cut setup's law under each fit.

    python benchmarks/groups.py simulate [--datasets 200] [--noise normal] [--fits separate]
    python benchmarks/groups.py porian [--draws 1000]

Fits' answers are cached in ``benchmarks/cache/groups/`` (``--refit`` to redo them).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import bayescale as bs  # noqa: E402
from bayescale.model.groups import _loss_curve, _multiplier  # noqa: E402
from bayescale.model.profiles import _budgets  # noqa: E402
from bayescale.report.recipe import Recipe  # noqa: E402
from extrapolation import PORIAN, score  # noqa: E402
from tests.test_groups import BUDGETS, TRUTHS, _sweep  # noqa: E402

CACHE = Path(__file__).resolve().parent / "cache" / "groups"
#: The recipe whose joint fit the porian stage scores (its group_params, noise, target_accept).
RECIPE = Recipe.read(ROOT / "models" / "porian_owt2_setups.toml")
#: The joint fits' grouped parameters: name -> group_params; the first is the recipe's.
JOINT = {f"joint (recipe: {', '.join(RECIPE.model['group_params'])})":
         list(RECIPE.model["group_params"]),
         "joint (E, alpha, beta)": ["E", "alpha", "beta"],
         "joint (E, A, B, alpha, beta, sigma)": ["E", "A", "B", "alpha", "beta", "sigma"]}


def _fit(model, seed: int, draws: int, tune: int, target_accept: float = 0.9):
    """The fit, its count of sampler warnings and their messages."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bs.SamplerWarning)
        warnings.simplefilter("always", bs.ExtrapolationWarning)
        fit = model.fit(draws=draws, tune=tune, chains=2, random_seed=seed, progressbar=False,
                        target_accept=target_accept)
    sampler = [str(w.message) for w in caught if issubclass(w.category, bs.SamplerWarning)]
    return fit, len(sampler), " | ".join(sampler)


# -- stage 1: simulated variants ----------------------------------------------------------------
def _truth_multipliers(model, budget: float) -> dict[str, float]:
    log10_c = np.log10([budget])
    truth = {lv: {k: np.array([[[v]]]) for k, v in th.items()} for lv, th in TRUTHS.items()}
    target = _loss_curve(model, truth["v0"], log10_c)
    return {lv: float(_multiplier(model, truth[lv], target, log10_c).ravel()[0])
            for lv in ("v1", "v2", "v3")}


def simulate_one(seed: int, args) -> dict:
    path = CACHE / f"sim_{args.fits}_{args.noise}_{seed}.npz"
    if path.exists() and not args.refit:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    runs = _sweep(seed)
    budget = 100 * BUDGETS.max()
    t0 = time.time()
    if args.fits == "grouped":
        model = bs.ScalingLaw(runs, law="chinchilla", group="variant", group_params=["E", "alpha"],
                              discrepancy="off", noise=args.noise)
        fit, warned, messages = _fit(model, seed, args.draws, args.draws)
        out = {"warned": warned, "messages": messages}
        thetas = {lv: fit.model.law_theta(fit.posterior, level=lv) for lv in TRUTHS}
        answer = fit.groups([budget], reference="v0")
        multipliers = {lv: answer["multiplier"].sel(variant=lv).values.ravel()
                       for lv in ("v1", "v2", "v3")}
        out |= {k: float(v) for k, v in fit.diagnostics().items()}
    else:  # each variant fitted alone; the multiplier from the draws of the two fits, paired
        thetas, diags, out = {}, [], {"warned": 0, "messages": ""}
        for lv in TRUTHS:
            model = bs.ScalingLaw(_table(runs[runs["variant"] == lv].drop(columns="variant"),
                                         runs.attrs), law="chinchilla", discrepancy="off",
                                  noise=args.noise)
            fit, warned, messages = _fit(model, seed, args.draws, args.draws)
            thetas[lv] = fit.model.law_theta(fit.posterior)
            diags.append(fit.diagnostics())
            out["warned"] += warned
            out["messages"] += messages
        log10_c = np.log10([budget])
        target = _loss_curve(model, thetas["v0"], log10_c)
        multipliers = {lv: _multiplier(model, thetas[lv], target, log10_c).ravel()
                       for lv in ("v1", "v2", "v3")}
        out |= {"divergences": sum(d["divergences"] for d in diags),
                "max_r_hat": max(d["max_r_hat"] for d in diags),
                "min_ess_bulk": min(d["min_ess_bulk"] for d in diags)}
    out["seconds"] = time.time() - t0
    for level, theta in thetas.items():
        for name in ("E", "alpha"):
            out[f"{level}_{name}"] = np.asarray(theta[name]).ravel()
    for level, true in _truth_multipliers(model, budget).items():
        out[f"{level}_multiplier"] = multipliers[level]
        out[f"{level}_multiplier_truth"] = true
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{k: np.asarray(v) for k, v in out.items()})
    return out


def _quantiles(draws: np.ndarray, q) -> np.ndarray:
    """Quantiles of draws that may be +inf (a level that never reaches the target): inf where
    the quantile falls among the infinite draws (numpy's interpolation would give NaN)."""
    big = np.finfo(float).max / 4
    out = np.quantile(np.where(np.isposinf(draws), big, draws), q)
    return np.where(out >= big, np.inf, out)


def stage_simulate(args) -> None:
    rows = []
    t0 = time.time()
    for seed in range(args.datasets):
        out = simulate_one(seed, args)
        row = {"seed": seed, "seconds": float(out["seconds"]), "warned": int(out["warned"]),
               "divergences": int(out["divergences"]), "max_r_hat": float(out["max_r_hat"]),
               "min_ess_bulk": float(out["min_ess_bulk"])}
        for level, truth in TRUTHS.items():
            for name in ("E", "alpha"):
                lo, hi = np.quantile(out[f"{level}_{name}"], [0.05, 0.95])
                row[f"{level} {name}"] = bool(lo <= truth[name] <= hi)
                # where the truth falls among the draws (uniform for a calibrated posterior)
                row[f"{level} {name} pit"] = float(np.mean(out[f"{level}_{name}"] < truth[name]))
        for level in ("v1", "v2", "v3"):
            draws, true = out[f"{level}_multiplier"], float(out[f"{level}_multiplier_truth"])
            lo, hi = _quantiles(draws, [0.05, 0.95])
            row[f"{level} multiplier"] = bool(hi == np.inf if np.isinf(true) else lo <= true <= hi)
            row[f"{level} mult q05"], row[f"{level} mult q95"] = float(lo), float(hi)
            row[f"{level} mult truth"] = true
            row[f"{level} mult inf share"] = float(np.mean(np.isinf(draws)))
            row[f"{level} mult nan share"] = float(np.mean(np.isnan(draws)))
        rows.append(row)
        print(f"  data set {seed}: {row['seconds']:.0f} s, divergences {row['divergences']}, "
              f"max R-hat {row['max_r_hat']:.3f}, inside "
              f"{sum(v for k, v in row.items() if isinstance(v, bool))}/11", flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(CACHE / f"simulate_{args.fits}_{args.noise}.csv", index=False)
    quantities = [f"{lv} {n}" for lv in TRUTHS for n in ("E", "alpha")] + \
                 [f"{lv} multiplier" for lv in ("v1", "v2", "v3")]
    coverage = table[quantities].mean()
    print(f"\n{args.fits} fits, noise {args.noise}: {len(table)} data sets, "
          f"{time.time() - t0:.0f} s this run "
          f"(fits {table['seconds'].sum():.0f} s in all)")
    print("coverage of the 90% interval per quantity:")
    print(coverage.to_frame("coverage").to_string(float_format="{:.2f}".format))
    print(f"every quantity >= 0.8: {bool((coverage >= 0.8).all())}; "
          f"data sets with all {len(quantities)} inside: "
          f"{table[quantities].all(axis=1).mean():.2f}")
    blocks = table.groupby(table["seed"] // 50)[quantities].mean()
    if len(blocks) > 1:  # the reading: 50 data sets; each block of 50 seeds in turn
        for block, row in blocks.iterrows():
            print(f"  seeds {50 * block}-{50 * block + 49}: lowest coverage {row.min():.2f} "
                  f"({row.idxmin()}), every quantity >= 0.8: {bool((row >= 0.8).all())}")
    bins = [0, 0.05, 0.25, 0.5, 0.75, 0.95, 1]
    print(f"where the truth falls among the draws (PIT), data sets per bin {bins} "
          f"(calibrated: {', '.join(f'{len(table) * (b - a):.1f}' for a, b in zip(bins, bins[1:]))}):")
    for name in ("E", "alpha"):
        for lv in TRUTHS:
            pit = table[f"{lv} {name} pit"].to_numpy()
            print(f"  {lv} {name:<5} {np.histogram(pit, bins=bins)[0]}  below the median "
                  f"{np.mean(pit < 0.5):.2f}")
    print("true multipliers: " + ", ".join(f"{lv} {table[f'{lv} mult truth'].iloc[0]:.4g}"
                                           for lv in ("v1", "v2", "v3")))
    for lv in ("v1", "v2", "v3"):
        print(f"  {lv}: median 90% interval [{table[f'{lv} mult q05'].median():.4g}, "
              f"{table[f'{lv} mult q95'].median():.4g}], inf share of draws median "
              f"{table[f'{lv} mult inf share'].median():.2f} (min "
              f"{table[f'{lv} mult inf share'].min():.2f}), nan share max "
              f"{table[f'{lv} mult nan share'].max():.2f}")
    print(f"diagnostics: divergences total {table['divergences'].sum()} in "
          f"{(table['divergences'] > 0).sum()} data sets (max {table['divergences'].max()}); "
          f"max R-hat median {table['max_r_hat'].median():.3f}, max {table['max_r_hat'].max():.3f}"
          f", > 1.01 in {(table['max_r_hat'] > 1.01).sum()}; min bulk ESS median "
          f"{table['min_ess_bulk'].median():.0f}, min {table['min_ess_bulk'].min():.0f}; "
          f"sampler warnings in {(table['warned'] > 0).sum()} data sets")


# -- stage 2: Porian's setups -------------------------------------------------------------------
def porian_runs() -> pd.DataFrame:
    raw = bs.datasets.load("porian2024_owt2")
    keep = np.zeros(len(raw), bool)
    setup = np.empty(len(raw), dtype=object)
    for h, w, d in PORIAN:
        mask = ((raw["hparams"] == h) & (raw["warmup"] == w) & (raw["decay"] == d)).to_numpy()
        keep |= mask
        setup[mask] = f"{h}/{w}/{d}"
    out = raw.assign(setup=setup)[keep][["params", "tokens", "flops", "loss", "setup"]]
    out = out.reset_index(drop=True)
    out.attrs = dict(raw.attrs)
    return out


def cut_setup(runs: pd.DataFrame, name: str):
    """(the cut setup's runs at its smallest third of distinct budgets, its held-out runs)."""
    own = runs[runs["setup"] == name]
    levels = _budgets(np.log10(own["flops"].to_numpy(float)))
    distinct = np.unique(levels)
    keep = np.isin(levels, distinct[:math.ceil(distinct.size / 3)])
    return own[keep].reset_index(drop=True), own[~keep].reset_index(drop=True), distinct.size


def _table(frame: pd.DataFrame, attrs: dict) -> pd.DataFrame:
    frame = frame.reset_index(drop=True)
    frame.attrs = dict(attrs)
    return frame


def _accept_suffix(args) -> str:
    """The cache names' mark of the target acceptance (none for 0.9)."""
    return f"_ta{args.target_accept:g}" if args.target_accept != 0.9 else ""


def _slug(name: str, label: str, args) -> str:
    """The cache name of one fit: the setup and fit, and what a joint fit takes beyond the
    defaults (its grouping, discrepancy, noise, non-centred deviations), the target_accept."""
    marks = [name.replace("/", "_") + "_", label.split(" ")[0]]
    if label in JOINT:
        marks.append("".join(JOINT[label]))
        marks += [args.joint_discrepancy] if args.joint_discrepancy != "backtest" else []
        marks += [args.joint_noise] if args.joint_noise != "student_t" else []
        marks += ["nc"] if RECIPE.model.get("group_centred") is False else []
    return "_".join(marks) + _accept_suffix(args)


def porian_one(name: str, label: str, runs: pd.DataFrame, args) -> dict:
    path = CACHE / f"porian_{_slug(name, label, args)}.npz"
    if path.exists() and not args.refit:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    cut, held, _ = cut_setup(runs, name)
    if label == "whole setup":  # the reference: all 12 budgets of the setup, alone
        model = bs.ScalingLaw(_table(runs[runs["setup"] == name].drop(columns="setup"),
                                     runs.attrs), law="chinchilla")
        points = held.drop(columns="setup")
    elif label == "separate":
        model = bs.ScalingLaw(_table(cut.drop(columns="setup"), runs.attrs), law="chinchilla")
        points = held.drop(columns="setup")
    else:
        train = _table(pd.concat([runs[runs["setup"] != name], cut]), runs.attrs)
        model = bs.ScalingLaw(train, law="chinchilla", group="setup", group_params=JOINT[label],
                              discrepancy=args.joint_discrepancy, noise=args.joint_noise,
                              group_centred=RECIPE.model.get("group_centred"))
        points = held
    t0 = time.time()
    fit, warned, messages = _fit(model, 0, args.draws, args.draws, args.target_accept)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ExtrapolationWarning)
        pred = fit.predict(points, kind="new_run", random_seed=0)["loss"].values
    with np.errstate(divide="ignore"):  # a heavy-tailed new run may reach 0 or inf
        log_pred = np.log(pred.reshape(-1, pred.shape[-1]))
    level = name if model.groups is not None else None
    theta = fit.model.law_theta(fit.posterior, level=level)
    out = {"log_pred": log_pred, "seconds": time.time() - t0, "warned": warned,
           "messages": messages, **{k: float(v) for k, v in fit.diagnostics().items()},
           **{f"theta_{k}": np.asarray(v).ravel() for k, v in theta.items()}}
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{k: np.asarray(v) for k, v in out.items()})
    return out


def _params_row(name: str, label: str, out: dict) -> dict:
    row = {"setup": name, "fit": label}
    for k in ("E", "A", "B", "alpha", "beta"):
        lo, mid, hi = np.quantile(out[f"theta_{k}"], [0.05, 0.5, 0.95])
        fmt = "{:.3g}" if k in ("A", "B") else "{:.3f}"
        row[k] = f"{fmt.format(mid)} [{fmt.format(lo)}, {fmt.format(hi)}]"
    return row


def stage_porian(args) -> None:
    runs = porian_runs()
    rows, params = [], []
    for h, w, d in PORIAN:
        name = f"{h}/{w}/{d}"
        cut, held, n_budgets = cut_setup(runs, name)
        for label in ["separate", *JOINT]:
            out = porian_one(name, label, runs, args)
            params.append(_params_row(name, label, out))
            row = {"setup": name, "fit": label, "train": len(cut), "budgets": n_budgets,
                   "seconds": float(out["seconds"]), "warned": int(out["warned"]),
                   "divergences": int(out["divergences"]), "max_r_hat": float(out["max_r_hat"])}
            row["nonfinite"] = float(np.mean(~np.isfinite(out["log_pred"])))
            rows.append(row | score(out["log_pred"], np.log(held["loss"].to_numpy(float))))
            print(f"  {name} {label}: {len(cut)} runs ({math.ceil(n_budgets / 3)} of {n_budgets}"
                  f" budgets) -> {len(held)} held out, {row['seconds']:.0f} s, divergences "
                  f"{row['divergences']}, max R-hat {row['max_r_hat']:.3f}, sampler warnings "
                  f"{row['warned']} {out['messages']}", flush=True)
    table = pd.DataFrame(rows)
    CACHE.mkdir(parents=True, exist_ok=True)
    table.to_csv(CACHE / f"porian_{args.joint_discrepancy}_{args.joint_noise}"
                 f"{_accept_suffix(args)}.csv", index=False)
    table["cov50"] = table["in50"] / table["n"]
    table["cov90"] = table["in90"] / table["n"]
    table["interval_score_%"] = table["score_sum"] / table["n"]
    cols = ["setup", "fit", "n", "cov50", "cov90", "interval_score_%", "error_%", "width90_%",
            "divergences", "max_r_hat", "warned", "nonfinite", "seconds"]
    with pd.option_context("display.width", 250, "display.max_columns", 30,
                           "display.float_format", "{:.3f}".format):
        print(table[cols].to_string(index=False))
        g = table.groupby("fit", sort=False)
        pooled = pd.DataFrame({"runs": g["n"].sum(), "cov50": g["in50"].sum() / g["n"].sum(),
                               "cov90": g["in90"].sum() / g["n"].sum(),
                               "interval_score_%": g["score_sum"].sum() / g["n"].sum(),
                               "median_error_% (of setups)": g["error_%"].median()})
        print(pooled.to_string())
    for h, w, d in PORIAN:
        params.append(_params_row(f"{h}/{w}/{d}", "whole setup",
                                  porian_one(f"{h}/{w}/{d}", "whole setup", runs, args)))
    params = pd.DataFrame(params).sort_values(["setup", "fit"], kind="stable")
    print("the cut setup's law: median [5%, 95%] (whole setup: fitted alone on all its budgets)")
    print(params.to_string(index=False))
    wide = table.pivot(index="setup", columns="fit", values="interval_score_%")
    for label in JOINT:
        better = int((wide[label] < wide["separate"]).sum())
        print(f"{label}: interval score better than separate on {better} of {len(wide)} setups; "
              f"pooled 90% coverage {pooled.loc[label, 'cov90']:.3f}; acceptance "
              f"{'met' if better >= 3 and pooled.loc[label, 'cov90'] >= 0.8 else 'not met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["simulate", "porian"])
    parser.add_argument("--datasets", type=int, default=200,
                        help="simulate: data sets (seeds 0, 1, ...; each block of 50 is "
                             "scored too)")
    parser.add_argument("--draws", type=int, default=None,
                        help="draws and tuning steps per chain (simulate 500, porian 1000)")
    parser.add_argument("--refit", action="store_true")
    parser.add_argument("--joint-discrepancy", default="backtest", choices=["backtest", "prior"],
                        help="porian: the joint fits' discrepancy (the separate fits keep the "
                             "default; with 4 budgets they have no backtest and take the prior)")
    parser.add_argument("--joint-noise", default=RECIPE.model.get("noise", "student_t"),
                        choices=["student_t", "normal"],
                        help="porian: the joint fits' noise (one noise for every setup; "
                             "default: the recipe's)")
    parser.add_argument("--target-accept", type=float,
                        default=RECIPE.fit_kwargs()["target_accept"],
                        help="porian: NUTS target acceptance of every fit (default: the "
                             "recipe's)")
    parser.add_argument("--fits", default="grouped", choices=["grouped", "separate"],
                        help="simulate: one grouped fit per data set (the benchmark), or each "
                             "variant fitted alone (a control)")
    parser.add_argument("--noise", default="student_t", choices=["student_t", "normal"],
                        help="simulate: the fits' noise (student_t: the default; the truth's "
                             "is normal)")
    args = parser.parse_args()
    if args.draws is None:
        args.draws = 500 if args.stage == "simulate" else 1000
    {"simulate": stage_simulate, "porian": stage_porian}[args.stage](args)


if __name__ == "__main__":
    main()
