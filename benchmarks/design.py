"""Closed-loop experiment design on simulated training APIs: grid, random runs and bs.design.

For each of ``--truths`` simulated truths (``bs.simulate``-style APIs with varied laws, noise and
learning-rate optima; every third one has latent num_heads offsets the fit ignores and a drift
of log loss in log compute that no Chinchilla law has, so the fitted law is not the truth), start
from a seed sweep (8 random configurations at each of 1e16, 3e16, 1e17 FLOPs) and spend FLOPs in
three rounds, after which the answer at the target budget (1e19 FLOPs) is scored:

- grid: at each round a grid of 5 model sizes (N*/4 to 4 N*, around the classic IsoFLOP line of
  the runs so far) at one budget (1e17, 2e17, 4e17 FLOPs: 0.5e18, 1.5e18, 3.5e18 spent), at the
  best learning rate seen; answered by the best run per budget and log-log lines (loss, N* and
  learning rate), and, after the last round, by a bayescale fit of the same runs;
- random: random candidates from the pool, as many as fit in the same FLOPs per round, refitted
  after each round;
- design: ``bs.design(fit, pool, budget=..., target=(loss_opt, params_opt, learning_rate),
  at=1e19)`` on the current fit, refitted after each round.

The pool: every model size of the simulated API's grid with 1 to 2000 tokens per parameter, at
each of 3e16, 1e17, 3e17, 1e18 FLOPs, with each of its 5 learning rates (a random num_heads each).

Each strategy draws from its own random stream, and the noise of each pool candidate's outcome
is drawn once with the pool, so a run that two strategies pick has the same loss in both.

Scores per truth and round: |log(estimate / truth)| of the loss at the optimum, N* and lr* at
1e19, and for fits the width (log upper / lower) and coverage of their 90% intervals. The script
also times one design of 10 runs from 1,000 candidates.

    python benchmarks/design.py [--truths 12] [--draws 500] [--out benchmarks/design]
    python benchmarks/design.py --timing-only
    python benchmarks/design.py --summarise benchmarks/design/results.csv
    python benchmarks/design.py --target loss_opt params_opt --out benchmarks/design/loss_params
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

import bayescale as bs
from bayescale.analysis.baselines import argmin_loglinear, best_per_budget, isoflop_argmin
from bayescale.model.simulate import GRID

TARGET = 1e19
SEED_BUDGETS = (1e16, 3e16, 1e17)
GRID_BUDGETS = (1e17, 2e17, 4e17)
GRID_SIZES = 5
POOL_BUDGETS = (3e16, 1e17, 3e17, 1e18)
QUANTITIES = ("loss_opt", "params_opt", "learning_rate")
PROB = 0.9


# -- truths and the simulated API --------------------------------------------------------------
def truths(n: int, seed: int = 2026) -> list[tuple[bs.Truth, float]]:
    """n truths with their drift (log loss per decade^2 of compute; 0 where the law is exact)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        law = {"E": rng.uniform(1.5, 2.2), "A": float(np.exp(rng.uniform(np.log(200), np.log(800)))),
               "B": float(np.exp(rng.uniform(np.log(1000), np.log(4000)))),
               "alpha": rng.uniform(0.28, 0.42), "beta": rng.uniform(0.28, 0.42)}
        wrong = i % 3 == 2
        truth = bs.Truth(law=law, sigma=float(rng.choice([0.005, 0.01, 0.02])),
                         heads_tau=0.03 if wrong else 0.0, lr_opt_slope=rng.uniform(-0.15, 0.0),
                         lr_kappa=rng.uniform(0.01, 0.03))
        out.append((truth.with_heads(rng), float(rng.choice([-0.002, 0.002])) if wrong else 0.0))
    return out


def answer(truth: bs.Truth, drift: float) -> dict[str, float]:
    """The true loss at the optimum (the average heads level), N* and lr* at TARGET."""
    opt = truth.optimal([TARGET])
    return {"loss_opt": float(opt["loss_opt"][0] * np.exp(truth.heads_mean + _drift(drift, TARGET))),
            "params_opt": float(opt["params_opt"][0]),
            "learning_rate": float(truth.learning_rate_opt([TARGET])[0])}


def _drift(drift: float, flops) -> np.ndarray:
    return drift * np.log10(np.asarray(flops, float) / 1e17) ** 2


def train(truth: bs.Truth, drift: float, configs: pd.DataFrame, rng=None) -> pd.DataFrame:
    """Run configurations on the simulated API: their final losses. A pool candidate's noise
    was drawn with the pool (its ``noise`` column), so that it is the same whichever strategy
    picks it; other configurations draw theirs from ``rng``."""
    log_loss = truth.log_mean_loss(configs) + _drift(drift, configs["flops"])
    noise = (configs["noise"].to_numpy() if "noise" in configs
             else truth.sigma * rng.standard_normal(len(configs)))
    return configs.assign(loss=np.exp(log_loss + noise))


def pool(rng, budgets=POOL_BUDGETS, ratio=(1.0, 2000.0)) -> pd.DataFrame:
    sizes = sorted({12.0 * layers * d ** 2 for d in GRID["d_model"] for layers in GRID["num_layers"]})
    rows = [(n, c, lr) for c in budgets for n in sizes for lr in GRID["learning_rate"]
            if ratio[0] <= c / (6 * n * n) <= ratio[1]]
    table = pd.DataFrame(rows, columns=["params", "flops", "learning_rate"])
    table.insert(1, "tokens", table["flops"] / (6 * table["params"]))
    return table.assign(num_heads=rng.choice(GRID["num_heads"], len(table)))


def seed_sweep(truth, drift, rng) -> pd.DataFrame:
    grid = pool(rng, budgets=SEED_BUDGETS, ratio=(0.5, 1e5))
    picks = [grid[grid["flops"] == c].sample(8, random_state=rng) for c in SEED_BUDGETS]
    return train(truth, drift, pd.concat(picks, ignore_index=True), rng)


# -- fits and scores -----------------------------------------------------------------------------
#: The fits' discrepancy option (``--discrepancy``): ``off`` takes the law as exact.
DISCREPANCY = "off"


def fit(runs: pd.DataFrame, draws: int, seed: int) -> tuple[bs.Fit, float]:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny sweeps; R-hat and divergences are recorded
        out = bs.ScalingLaw(runs[["params", "tokens", "flops", "learning_rate", "loss"]],
                            law="chinchilla", continuous=["learning_rate"],
                            discrepancy=DISCREPANCY).fit(
            draws=draws, tune=draws, chains=2, random_seed=seed, progressbar=False)
    return out, time.perf_counter() - start


def score_fit(result: bs.Fit, true: dict) -> dict:
    draws = {"loss_opt": result.optimal([TARGET])["loss_opt"].values.ravel(),
             "params_opt": result.optimal([TARGET])["params_opt"].values.ravel(),
             "learning_rate": result.optimal_hyperparameters([TARGET])["learning_rate"].values.ravel()}
    row = {}
    for q, values in draws.items():
        lo, mid, hi = np.quantile(values, [(1 - PROB) / 2, 0.5, (1 + PROB) / 2])
        row |= {f"err_{q}": abs(np.log(mid / true[q])), f"width_{q}": np.log(hi / lo),
                f"cover_{q}": float(lo <= true[q] <= hi)}
    d = result.diagnostics()
    return row | {"r_hat": d["max_r_hat"], "divergences": d["divergences"]}


def score_classic(runs: pd.DataFrame, true: dict) -> dict:
    loss = float(argmin_loglinear(runs).predict([TARGET])[0])
    params = float(isoflop_argmin(runs).predict([TARGET])["params_opt"].iloc[0])
    best = best_per_budget(runs)
    slope, icept = np.polyfit(np.log(best["flops"]), np.log(best["learning_rate"]), 1)
    lr = float(np.exp(icept + slope * np.log(TARGET)))
    return {f"err_{q}": abs(np.log(v / true[q]))
            for q, v in zip(QUANTITIES, (loss, params, lr))}


# -- the three strategies ------------------------------------------------------------------------
def grid_round(runs: pd.DataFrame, budget: float, candidates: pd.DataFrame) -> pd.DataFrame:
    """5 sizes from N*/4 to 4 N* (classic IsoFLOP line of the runs) at the best lr seen."""
    guess = float(isoflop_argmin(runs).predict([budget])["params_opt"].iloc[0])
    sizes = np.unique(candidates["params"])
    wanted = guess * np.geomspace(0.25, 4.0, GRID_SIZES)
    chosen = np.unique([sizes[np.argmin(np.abs(np.log(sizes / w)))] for w in wanted])
    lr = float(runs.loc[runs["loss"].idxmin(), "learning_rate"])
    heads = candidates["num_heads"].to_numpy()[: chosen.size]
    return pd.DataFrame({"params": chosen, "tokens": budget / (6 * chosen), "flops": budget,
                         "learning_rate": lr, "num_heads": heads})


def random_round(candidates: pd.DataFrame, budget: float, rng) -> pd.DataFrame:
    order = rng.permutation(len(candidates))
    left, keep = budget, []
    for i in order:
        cost = candidates["flops"].iloc[i]
        if cost <= left:
            keep.append(i)
            left -= cost
    return candidates.iloc[keep]


def design_round(current: bs.Fit, candidates: pd.DataFrame, budget: float,
                 target: tuple[str, ...]) -> tuple[pd.DataFrame, float]:
    start = time.perf_counter()
    chosen = bs.design(current, candidates.drop(columns=["num_heads", "noise"]), budget=budget,
                       target=target, at=TARGET)
    return candidates.loc[chosen.index], time.perf_counter() - start


def run_truth(i: int, truth: bs.Truth, drift: float, draws: int,
              target: tuple[str, ...] = QUANTITIES) -> list[dict]:
    """One truth through the loop. Each strategy has its own random stream, and a pool
    candidate's outcome is the same whichever strategy picks it."""
    rng = np.random.default_rng(1000 + i)
    true = answer(truth, drift)
    seed = seed_sweep(truth, drift, rng)
    candidates = pool(rng)
    candidates["noise"] = truth.sigma * rng.standard_normal(len(candidates))
    grid_rng, random_rng = (np.random.default_rng([1000 + i, k]) for k in (1, 2))
    seed_fit, seconds = fit(seed, draws, i)
    base = {"truth": i, "misspecified": drift != 0}
    rows = [base | {"strategy": s, "round": 0, "spent": 0.0, "runs": len(seed), "fit_s": seconds}
            | score_fit(seed_fit, true) for s in ("design", "random")]
    rows.append(base | {"strategy": "grid", "round": 0, "spent": 0.0, "runs": len(seed)}
                | score_classic(seed, true))
    runs = {name: seed for name in ("grid", "random", "design")}
    used = {"random": [], "design": []}
    current = seed_fit
    for r, grid_budget in enumerate(GRID_BUDGETS, 1):
        new = grid_round(runs["grid"], grid_budget, candidates)
        runs["grid"] = pd.concat([runs["grid"], train(truth, drift, new, grid_rng)],
                                 ignore_index=True)
        cost = float(new["flops"].sum())
        rows.append(base | {"strategy": "grid", "round": r, "runs": len(runs["grid"]),
                            "spent": _spent(runs["grid"], seed)} | score_classic(runs["grid"], true))
        for name in ("random", "design"):
            free = candidates.drop(index=used[name])
            if name == "random":
                new, design_s = random_round(free, cost, random_rng), np.nan
            else:
                new, design_s = design_round(current, free, cost, target)
            used[name] += list(new.index)
            runs[name] = pd.concat([runs[name], train(truth, drift, new)], ignore_index=True)
            result, seconds = fit(runs[name], draws, 100 * i + r)
            current = result if name == "design" else current
            rows.append(base | {"strategy": name, "round": r, "runs": len(runs[name]),
                                "spent": _spent(runs[name], seed), "fit_s": seconds,
                                "design_s": design_s} | score_fit(result, true))
    final, seconds = fit(runs["grid"], draws, 7 + i)
    rows.append(base | {"strategy": "grid+bayescale", "round": len(GRID_BUDGETS),
                        "runs": len(runs["grid"]), "spent": _spent(runs["grid"], seed),
                        "fit_s": seconds} | score_fit(final, true))
    return rows


def _spent(runs: pd.DataFrame, seed: pd.DataFrame) -> float:
    return float(runs["flops"].sum() - seed["flops"].sum())


def time_design(draws: int) -> dict:
    """Seconds for one design of 10 runs from 1,000 candidates (after one warm-up call), and
    the effective sample size importance weights would have for the chosen batch."""
    truth, drift = truths(1, seed=7)[0]
    rng = np.random.default_rng(7)
    result, _ = fit(seed_sweep(truth, drift, rng), draws, 0)
    big = pool(rng, budgets=np.geomspace(1e16, 1e18, 6), ratio=(0.0, np.inf))
    big = big.iloc[:1000].drop(columns="num_heads")
    bs.design(result, big.iloc[:50], budget=1e19, at=TARGET, max_runs=2)
    start = time.perf_counter()
    chosen = bs.design(result, big, budget=1e30, target=QUANTITIES, at=TARGET, max_runs=10)
    return {"seconds": time.perf_counter() - start, "candidates": len(big), "runs": len(chosen),
            "draws": 2 * draws, "ess": importance_ess(result, chosen, rng)}


def importance_ess(result: bs.Fit, batch: pd.DataFrame, rng, scenarios: int = 200) -> tuple:
    """Median and 10% quantile over simulated outcomes of the batch of the effective sample
    size of preposterior importance weights (what reweighting the draws would rest on)."""
    mu = result.model.log_mean_draws(result.posterior, result.model.points(batch), rng)
    mu = mu.reshape(-1, len(batch))
    noise = result.model.noise_model(result.posterior).flat()
    per_draw = noise.map(lambda v: v[:, None])
    ess = []
    for _ in range(scenarios):
        s = rng.integers(mu.shape[0])
        y = mu[s] + noise.map(lambda v: v[s]).draw((len(batch),), rng)
        log_w = per_draw.logpdf(y[None, :], mu).sum(axis=1)
        w = np.exp(log_w - log_w.max())
        ess.append(w.sum() ** 2 / np.sum(w ** 2))
    return float(np.median(ess)), float(np.quantile(ess, 0.1))


# -- the report ----------------------------------------------------------------------------------
def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean over truths per strategy and round: errors, widths, coverage, FLOPs spent."""
    errors = [f"err_{q}" for q in QUANTITIES]
    cols = ["spent", *errors, *(f"width_{q}" for q in QUANTITIES),
            *(f"cover_{q}" for q in QUANTITIES)]
    out = table.groupby(["strategy", "round"])[[c for c in cols if c in table]].mean()
    return out.reset_index()


def acceptance(table: pd.DataFrame) -> list[str]:
    """The checks the design is held to, as lines of text: against the grid's classic answer
    and against a bayescale fit of the grid's runs, the round at which the design's mean error
    first reaches the grid's final one, the paired comparison at equal FLOPs, and coverage."""
    mean = table.groupby(["strategy", "round"]).mean(numeric_only=True)
    last = len(GRID_BUDGETS)
    lines = []
    for grid in ("grid", "grid+bayescale"):
        final = mean.loc[(grid, last)]
        for q in ("loss_opt", "params_opt"):
            need = final[f"err_{q}"]
            reached = [r for r in range(last + 1) if mean.loc[("design", r), f"err_{q}"] <= need]
            where = "never"
            if reached:
                spent = mean.loc[("design", min(reached)), "spent"]
                where = (f"first at round {min(reached)} ({spent:.3g} FLOPs, "
                         f"{spent / final['spent']:.2f} of the grid's)")
            lines.append(f"{q} vs {grid}: its final error {need:.4f} at {final['spent']:.3g} "
                         f"FLOPs; design reaches it {where}; " + _paired(table, grid, q, last))
    final = table[(table["strategy"] == "design") & (table["round"] == last)]
    cover = final[[f"cover_{q}" for q in QUANTITIES]].to_numpy()
    lines.append(f"design final 90% coverage over {len(final)} truths x {len(QUANTITIES)} "
                 f"quantities: {cover.mean():.3f} ({int(cover.sum())}/{cover.size})")
    return lines


def _paired(table: pd.DataFrame, grid: str, q: str, last: int) -> str:
    """Design against ``grid`` at the last round, truth by truth."""
    def errors(name):
        part = table[(table["strategy"] == name) & (table["round"] == last)]
        return part.set_index("truth")[f"err_{q}"]

    diff = (errors("design") - errors(grid)).dropna()
    return (f"at equal FLOPs design {errors('design').mean():.4f}, lower on {(diff < 0).sum()}/"
            f"{len(diff)} truths, mean difference {diff.mean():+.4f} "
            f"(standard error {diff.std(ddof=1) / np.sqrt(len(diff)):.4f})")


def plot(table: pd.DataFrame, path: Path) -> None:
    """Mean error over truths against FLOPs spent, one panel per quantity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean = summarise(table)
    fig, axes = plt.subplots(1, len(QUANTITIES), figsize=(12, 3.6))
    styles = {"grid": "o-", "random": "s-", "design": "^-", "grid+bayescale": "D"}
    for ax, q in zip(axes, QUANTITIES):
        for name, style in styles.items():
            part = mean[mean["strategy"] == name]
            ax.plot(part["spent"] + 1e16, part[f"err_{q}"], style, label=name)
        ax.set(xscale="log", yscale="log", xlabel="FLOPs spent after the seed sweep (+1e16)",
               ylabel=f"mean |log error| of {q} at 1e19", title=q)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--truths", type=int, default=12)
    parser.add_argument("--draws", type=int, default=500, help="draws (and tuning steps) per chain")
    parser.add_argument("--out", default="benchmarks/design")
    parser.add_argument("--target", nargs="+", default=list(QUANTITIES),
                        help="the design's targets (default: loss_opt params_opt learning_rate)")
    parser.add_argument("--timing-only", action="store_true",
                        help="only time one design of 10 runs from 1,000 candidates")
    parser.add_argument("--summarise", metavar="RESULTS_CSV",
                        help="print the summary of a results.csv this script wrote, and stop")
    parser.add_argument("--discrepancy", default="off", choices=["off", "prior", "backtest"],
                        help="the fits' discrepancy past the runs (default: off, the law taken "
                             "as exact)")
    args = parser.parse_args()
    global DISCREPANCY
    DISCREPANCY = args.discrepancy
    if args.summarise:
        report(pd.read_csv(args.summarise))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    timing = time_design(args.draws)
    print(f"design of {timing['runs']} runs from {timing['candidates']} candidates "
          f"({timing['draws']} draws): {timing['seconds']:.2f} s; importance weights for that "
          f"batch would have an ESS of {timing['ess'][0]:.0f} draws (median over outcomes; "
          f"10% quantile {timing['ess'][1]:.0f})", flush=True)
    if args.timing_only:
        return
    rows = []
    for i, (truth, drift) in enumerate(truths(args.truths)):
        start = time.perf_counter()
        rows += run_truth(i, truth, drift, args.draws, tuple(args.target))
        pd.DataFrame(rows).to_csv(out / "results.csv", index=False)
        print(f"truth {i} done in {time.perf_counter() - start:.0f} s", flush=True)
    table = pd.DataFrame(rows)
    plot(table, out / "errors.png")
    report(table)


def report(table: pd.DataFrame) -> None:
    with pd.option_context("display.width", 220, "display.max_columns", 30,
                           "display.float_format", "{:.4g}".format):
        print(summarise(table).to_string(index=False))
    print("\n".join(acceptance(table)))


if __name__ == "__main__":
    main()
