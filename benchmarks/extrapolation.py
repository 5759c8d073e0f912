"""Extrapolation on real sweeps: hold out the largest budgets, fit the rest, score the held-out runs.

Every bundled real sweep (Chinchilla, the OLMo ladder finals, the four training setups of the
Porian et al. OWT2 sweep, the CS336 API grid with its hyperparameter model) is cut twice: the
runs within 1 and within 2 decades of the largest budget are held out (CS336: 1 decade only;
below 1e16 its grid has two budgets of mostly untrained runs). Each cut is scored for

- ``today``: the law taken as exact past the data (``discrepancy="off"``);
- ``prior``: the discrepancy with the default scale prior alone;
- ``backtest``: the discrepancy whose scale is learned from backtests inside the training
  runs (``discrepancy="backtest"``);
- ``huber``: the Huber L-BFGS fit of Hoffmann et al. with a 200-replicate bootstrap;

by coverage of 50% / 90% new-run intervals, median absolute relative error of the median,
median relative width of the 90% interval and the 90% interval score (Gneiting & Raftery
2007), in percent of the loss. The scale prior used on a sweep is the hierarchical population
prior of the *other studies* (leave one study out; the four Porian setups are one study), so
no sweep is scored with a prior learned from itself. The prior over all sweeps, the package
default, is printed last. ``--sims N`` adds N data sets simulated from an exact law.

    python benchmarks/extrapolation.py [--draws 1000] [--chains 2] [--sims 5]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import bayescale as bs
from bayescale.analysis.baselines import huber_lbfgs
from bayescale.data.filters import filter_rows
from bayescale.model import discrepancy as disc
from bayescale.model.laws import get_law, log_mean

P = "porian2024_owt2"
CS336 = {"offsets": ["num_heads"], "continuous": ["learning_rate", "batch_size", "aspect_ratio"]}
#: name -> (dataset, query, model options, study, cuts in decades)
SWEEPS = {
    "chinchilla": ("chinchilla", None, {}, "chinchilla", (1, 2)),
    "olmo_ladder": ("olmo_ladder", None, {}, "olmo", (1, 2)),
    **{f"porian_{h}_{w}_{d}": (P, f"hparams == '{h}' and warmup == '{w}' and decay == '{d}'",
                               {}, "porian", (1, 2))
       for h, w, d in [("base", "long", "kaplan"), ("base", "short", "chinchilla"),
                       ("base", "short", "kaplan"), ("tuned", "short", "const")]},
    "cs336_api": ("cs336_api_2024", "loss < 9.334", CS336, "cs336", (1,)),
}
HUBER_GRID = {"e": [-1.0, 0.5, 1.0], "a": [0, 5, 10], "b": [0, 5, 10],
              "alpha": [0.2, 0.5], "beta": [0.2, 0.5]}


def sweep_runs(name: str) -> tuple[pd.DataFrame, dict]:
    dataset, query, options, _, _ = SWEEPS[name]
    runs = bs.datasets.load(dataset)
    runs = filter_rows(runs, query) if query else runs
    keep = ["params", "tokens", "flops", "loss", *options.get("offsets", []),
            *options.get("continuous", [])]
    out = runs[keep].copy()
    out.attrs = dict(runs.attrs)
    return out, options


def split(runs: pd.DataFrame, cut: float):
    below = runs["flops"] <= runs["flops"].max() / 10 ** cut * (1 + 1e-9)
    return runs[below], runs[~below]


def quiet_fit(model, args, seed=0):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bs.SamplerWarning)
        fit = model.fit(draws=args.draws, tune=args.draws, chains=args.chains,
                        random_seed=seed, progressbar=False,
                        target_accept=0.95 if model.continuous else 0.9)
    return fit, len([w for w in caught if issubclass(w.category, bs.SamplerWarning)])


RUNS: list[pd.DataFrame] = []  # one row per held-out run and method (the coverage plot)


def score(log_pred: np.ndarray, y: np.ndarray, distance=None, method: str = "") -> dict:
    """Scores of predictive draws (draws x runs, log loss) against observed log losses y."""
    loss = np.exp(y)
    row, inside = {}, {}
    for p in (0.5, 0.9):
        lo, hi = np.exp(np.quantile(log_pred, [(1 - p) / 2, (1 + p) / 2], axis=0))
        inside[p] = (loss >= lo) & (loss <= hi)
        row[f"cov{round(p * 100)}"] = float(np.mean(inside[p]))
    penalty = 20 * ((lo - loss) * (loss < lo) + (loss - hi) * (loss > hi))
    row["interval_score_%"] = float(100 * np.mean((hi - lo + penalty) / loss))
    row["width90_%"] = float(100 * np.median((hi - lo) / loss))
    row["error_%"] = float(100 * np.median(np.abs(np.exp(np.median(log_pred, 0)) / loss - 1)))
    if distance is not None:
        RUNS.append(pd.DataFrame({"method": method, "decades": distance,
                                  "in50": inside[0.5], "in90": inside[0.9]}))
    return row


def predictive(model, post, table, rng) -> np.ndarray:
    """New-run log-loss draws (draws x points) of ``model`` from posterior ``post``."""
    log_mu = model.log_mean_draws(post, table, rng)
    return (log_mu + model.noise_draws(post, log_mu.shape, rng)).reshape(-1, len(table))


def huber_draws(train, test, seed) -> np.ndarray:
    h = huber_lbfgs(train, grid=HUBER_GRID, bootstrap=200, random_seed=seed)
    law = get_law("chinchilla")
    theta = {k: h.bootstrap_draws[k].to_numpy()[:, None] for k in ("E", "A", "B", "alpha", "beta")}
    return log_mean(law, theta, {x: test[x].to_numpy(float)[None, :] for x in law.inputs})


def stage_today(args) -> tuple[list[dict], dict]:
    """Fit every cut with the law taken as exact; keep each as a backtest of its sweep."""
    rows, groups = [], {}
    for name, (_, _, _, study, cuts) in SWEEPS.items():
        runs, options = sweep_runs(name)
        for cut in cuts:
            train, test = split(runs, cut)
            t0 = time.time()
            model = bs.ScalingLaw(train, law="chinchilla", discrepancy="off", **options)
            fit, warned = quiet_fit(model, args)
            term = model.discrepancy_term
            d = term.distance(test, term.ranges(train))
            y = np.log(test["loss"].to_numpy())
            base = dict(sweep=name, study=study, cut=cut, n_train=len(train), n_test=len(test),
                        decades=float(np.median(d)))
            rows.append(base | {"method": "today", "seconds": time.time() - t0,
                                "max_r_hat": fit.diagnostics()["max_r_hat"]}
                        | score(predictive(model, fit.posterior, test, np.random.default_rng(0)),
                                y, d, "today"))
            rows.append(base | {"method": "huber"}
                        | score(huber_draws(train, test, 0), y, d, "huber"))
            groups.setdefault(name, []).append(disc.backtest_from_fit(model, fit, test, cut, 0))
            print(f"  today {name} cut {cut}: {len(train)} -> {len(test)} runs, "
                  f"{time.time() - t0:.0f} s, sampler warnings {warned}", flush=True)
    return rows, groups


def stage_discrepancy(args, priors: dict) -> list[dict]:
    """Fit every cut with the discrepancy learned by backtests under the study's prior."""
    rows = []
    for name, (_, _, _, study, cuts) in SWEEPS.items():
        runs, options = sweep_runs(name)
        for cut in cuts:
            train, test = split(runs, cut)
            t0 = time.time()
            model = bs.ScalingLaw(train, law="chinchilla", discrepancy="backtest",
                                  priors={"discrepancy_scale": priors[study]}, **options)
            fit, warned = quiet_fit(model, args)
            d = model.discrepancy_term.distance(test, model.discrepancy_term.ranges(train))
            y = np.log(test["loss"].to_numpy())
            base = dict(sweep=name, study=study, cut=cut, n_train=len(train), n_test=len(test))
            scale = float(fit.posterior["discrepancy_scale"].median())
            cuts_used = sorted(set(fit.idata["backtests"]["cut_decades"].values.tolist()))
            rows.append(base | {"method": "backtest", "seconds": time.time() - t0,
                                "scale": scale, "backtests": len(cuts_used)}
                        | score(predictive(model, fit.posterior, test, np.random.default_rng(0)),
                                y, d, "backtest"))
            prior = disc.learn_scale([], priors[study], chains=args.chains, draws=args.draws,
                                     tune=0, seed=1)
            post = fit.posterior.assign(discrepancy_scale=(("chain", "draw"), prior))
            rows.append(base | {"method": "prior", "scale": float(np.median(prior))}
                        | score(predictive(model, post, test, np.random.default_rng(0)),
                                y, d, "prior"))
            print(f"  discrepancy {name} cut {cut}: scale {scale:.4f} from {len(cuts_used)} "
                  f"backtests, {time.time() - t0:.0f} s, sampler warnings {warned}", flush=True)
    return rows


def leave_one_study_out(groups: dict, args) -> dict:
    """The population prior of each study's scale from the other studies' backtests."""
    priors = {}
    for study in sorted({s[3] for s in SWEEPS.values()}):
        others = {n: g for n, g in groups.items() if SWEEPS[n][3] != study}
        priors[study] = disc.population_prior(others, draws=args.draws, chains=args.chains)
        print(f"  prior without {study}: {_fmt(priors[study])}", flush=True)
    priors["all"] = disc.population_prior(groups, draws=args.draws, chains=args.chains)
    return priors


def _fmt(prior: dict) -> str:
    return (f"LogNormal(mu={prior['mu']:.3f}, sigma={prior['sigma']:.3f}): median "
            f"{np.exp(prior['mu']):.4f} per decade")


def pooled(table: pd.DataFrame) -> pd.DataFrame:
    rows = {}
    for method, g in table.groupby("method"):
        w = g["n_test"]
        rows[method] = {"pooled cov50": np.average(g["cov50"], weights=w),
                        "pooled cov90": np.average(g["cov90"], weights=w),
                        "min cov90": g["cov90"].min(), "min cov50": g["cov50"].min(),
                        "max cov50": g["cov50"].max(),
                        "median error %": g["error_%"].median(),
                        "mean interval score %": g["interval_score_%"].mean()}
    return pd.DataFrame(rows).T


def coverage_plot(runs: pd.DataFrame, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    bins = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 10.0])
    for ax, p in zip(axes, (50, 90)):
        for method, g in runs.groupby("method"):
            which = np.digitize(g["decades"], bins)
            agg = g.groupby(which).agg(x=("decades", "median"), cov=(f"in{p}", "mean"))
            ax.plot(agg["x"], agg["cov"], "o-", label=method)
        ax.axhline(p / 100, color="k", lw=0.8, ls="--")
        ax.set_xlabel("decades past the training runs (binned)")
        ax.set_title(f"{p}% new-run intervals, all sweeps and cuts")
    axes[0].set_ylabel("coverage of held-out runs")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def simulated(args, prior: dict) -> pd.DataFrame:
    """Exact-law data sets (the calibration design and truth): widths at 10x and 100x."""
    from bayescale.analysis.calibration import REFERENCE_TRUTHS, default_design
    truth = REFERENCE_TRUTHS["chinchilla"]
    law = get_law("chinchilla")
    design = default_design("chinchilla")
    top = 6.0 * float((design["params"] * design["tokens"]).max())
    targets = np.array([10 * top, 100 * top])
    true_loss = law.optimum({k: np.asarray(truth[k]) for k in law.params}, targets)["loss_opt"]
    rows = []
    for i in range(args.sims):
        rng = np.random.default_rng(100 + i)
        runs = design.copy()
        log_mu = log_mean(law, truth, {x: runs[x].to_numpy() for x in law.inputs})
        runs["loss"] = np.exp(log_mu + truth["sigma"] * rng.standard_t(truth["nu"], len(runs)))
        for mode in ("off", "backtest"):
            model = bs.ScalingLaw(runs, law="chinchilla", discrepancy=mode,
                                  **({"priors": {"discrepancy_scale": prior}}
                                     if mode != "off" else {}))
            fit, _ = quiet_fit(model, args, seed=i)
            opt = fit.optimal(targets, random_seed=0)["loss_opt"].values.reshape(-1, 2)
            lo, hi = np.quantile(opt, [0.05, 0.95], axis=0)
            for j, m in enumerate((10, 100)):
                rows.append({"dataset": i, "mode": mode, "multiple": m,
                             "width90": hi[j] - lo[j],
                             "covered": bool(lo[j] <= true_loss[j] <= hi[j])})
    table = pd.DataFrame(rows)
    wide = table.pivot_table(index=["dataset", "multiple"], columns="mode", values="width90")
    wide["ratio"] = wide["backtest"] / wide["off"]
    print(wide.round(4).to_string())
    print(table.groupby(["mode", "multiple"])["covered"].mean().to_string())
    return wide


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--sims", type=int, default=0)
    parser.add_argument("--plot", default="benchmarks/extrapolation.png")
    args = parser.parse_args()
    print("the law taken as exact, and the Huber bootstrap:")
    rows, groups = stage_today(args)
    print("population priors of the discrepancy scale (leave one study out):")
    priors = leave_one_study_out(groups, args)
    print("the discrepancy learned by backtests:")
    rows += stage_discrepancy(args, priors)
    table = pd.DataFrame(rows)
    show = ["sweep", "cut", "method", "n_test", "cov50", "cov90", "error_%", "width90_%",
            "interval_score_%", "scale"]
    with pd.option_context("display.width", 250, "display.max_columns", 30,
                           "display.float_format", "{:.3f}".format):
        print(table[show].sort_values(["sweep", "cut", "method"]).to_string(index=False))
        print(pooled(table).to_string())
    coverage_plot(pd.concat(RUNS, ignore_index=True), args.plot)
    print(f"coverage plot: {args.plot}")
    print(f"default prior (all sweeps): {priors['all']}  {_fmt(priors['all'])}")
    if args.sims:
        simulated(args, priors["all"])


if __name__ == "__main__":
    main()
