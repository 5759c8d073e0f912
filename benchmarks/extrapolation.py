"""Out-of-study extrapolation: every bundled study's largest budgets held out, scored under
defaults that never saw that study.

Studies (each scored as a whole; its sweeps and cuts pooled):

- ``chinchilla``: the 245 Chinchilla runs, cut at 1 and 2 decades under the largest budget;
- ``olmo``: the OLMo ladder finals, cut at 1 and 2 decades;
- ``porian``: the four OWT2 training setups of Porian et al. (one study), cut at 1 and 2 decades;
- ``cs336``: the CS336 API grid (its recipe's model: ``num_heads`` offsets; learning rate, batch
  size and aspect ratio continuous; normal noise) fitted whole, predicting a second user's
  answers of the same API at 6e15-3e17 FLOPs (``../shared/data/cs336_api_2024_answers_b.csv``,
  not bundled);
- ``gemstones``: the Gemstones ``cool_end`` runs, fitted below 1e20 FLOPs, predicting those at
  3e20 and above.

Stage ``fit`` (slow: 2 x 1000 draws per fit) fits each split with the law taken as exact, runs
the backtests inside its training runs, and caches the draws in ``benchmarks/cache/``. Stage
``score`` (seconds to minutes) turns the cached draws into new-run intervals under each way of
learning the discrepancy, **leaving the scored study out** of the population prior, and scores
them: 50% / 90% coverage, median error of the median, median 90% width and the 90% interval
score (Gneiting & Raftery 2007), in percent of the loss; per study and pooled. The Huber L-BFGS
fit with a 200-replicate bootstrap is scored beside them. The allocation check compares the 90%
interval of N* at each held-out budget that holds an isoFLOP profile with the optimum of a
parabola in log N fitted to that budget's own runs (Porian's setups, Chinchilla).

    python benchmarks/extrapolation.py fit [--draws 1000] [--chains 2]
    python benchmarks/extrapolation.py score [--plot benchmarks/extrapolation.png]

Stage ``stack`` (issue 21's hypothesis 4; after ``fit`` and ``score --variants V`` with the
Chinchilla law and with ``--law L``): each split's answer as the mixture of the two laws'
new-run draws (variant V of the discrepancy, learned as scored), weighted by stacking on the
split's own inner backtests (leave-future-out: the law-exact refits below each backtest cut,
scored on the training runs above it; :func:`bayescale.analysis.compare.stacking_weights`),
beside equal weights and each law alone. Nothing of the held-out runs informs the weights.

    python benchmarks/extrapolation.py stack --law chinchilla_sized --variants package

``--budget-effect`` (both stages; its own cache, ``benchmarks/cache/budget/``) tests issue 21's
hypothesis 2: every fit gets a partially pooled, zero-sum offset per compute budget (column
``budget_level``: runs within ``SAME_BUDGET_DECADES`` of each other share a level; a held-out
run at a new budget gets a fresh draw of the offset).

The noise: every split takes its recipe's (Student-t, but normal for the CS336 grid: see
``models/cs336_api.toml``). ``--noise normal`` puts every fit under normal noise, and ``--nu 4``
holds the Student-t's degrees of freedom at 4 in every fit (a LogNormal prior 1% wide); each
has its own cache.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

import bayescale as bs
from bayescale.analysis.baselines import huber_lbfgs
from bayescale.data.runs import add_shape_columns
from bayescale.model import discrepancy as disc
from bayescale.model.laws import get_law, log_mean
from bayescale.model.profiles import SAME_BUDGET_DECADES, _budgets, profile_optima
from bayescale.model.terms import Discrepancy

CACHE = Path(__file__).resolve().parent / "cache"
SHARED = Path(os.environ.get("BAYESCALE_SHARED_DATA",
                             Path(__file__).resolve().parents[2] / "shared" / "data"))
#: The CS336 grid's model: its recipe's offsets, continuous hyperparameters and noise (normal:
#: see ``models/cs336_api.toml``).
CS336 = {"offsets": ["num_heads"], "continuous": ["learning_rate", "batch_size", "aspect_ratio"],
         "noise": "normal"}
PORIAN = [("base", "long", "kaplan"), ("base", "short", "chinchilla"),
          ("base", "short", "kaplan"), ("tuned", "short", "const")]
HUBER_GRID = {"e": [-1.0, 0.5, 1.0], "a": [0, 5, 10], "b": [0, 5, 10],
              "alpha": [0.2, 0.5], "beta": [0.2, 0.5]}
#: The law every split is fitted with (``--law``; each law other than Chinchilla has its own
#: cache, ``benchmarks/cache/<law>/``).
LAW = "chinchilla"
KEEP = ["params", "tokens", "flops", "loss", "num_heads", "learning_rate", "batch_size",
        "aspect_ratio", "budget_level"]


# -- the studies -------------------------------------------------------------------------------
def _table(runs: pd.DataFrame, mask=None) -> pd.DataFrame:
    out = runs[mask] if mask is not None else runs
    out = out[[c for c in KEEP if c in out.columns]].reset_index(drop=True)
    out.attrs = dict(runs.attrs)
    return out


def _by_cut(runs: pd.DataFrame, cut: float):
    below = runs["flops"].to_numpy() <= runs["flops"].max() / 10 ** cut * (1 + 1e-9)
    return _table(runs, below), _table(runs, ~below)


def _cs336_answers() -> pd.DataFrame:
    raw = pd.read_csv(SHARED / "cs336_api_2024_answers_b.csv")
    raw = raw[raw["train_flops"] >= 3e15].reset_index(drop=True)
    raw.insert(0, "params", 12.0 * raw["num_layers"] * raw["d_model"].astype(float) ** 2)
    return add_shape_columns(bs.prepare(raw, params="params", flops="train_flops", loss="loss"))


def splits(budget_effect: bool = False) -> dict[str, tuple[str, dict, pd.DataFrame, pd.DataFrame]]:
    """name -> (study, model options, training runs, held-out runs); with ``budget_effect`` each
    table has a ``budget_level`` column, an offset of the model (:func:`with_budget_levels`)."""
    out = {}
    for name, study in (("chinchilla", "chinchilla"), ("olmo_ladder", "olmo")):
        runs = bs.datasets.load(name)
        for cut in (1, 2):
            out[f"{name}@{cut}"] = (study, {}, *_by_cut(runs, cut))
    porian = bs.datasets.load("porian2024_owt2")
    for h, w, d in PORIAN:
        setup = porian[(porian["hparams"] == h) & (porian["warmup"] == w) & (porian["decay"] == d)]
        for cut in (1, 2):
            out[f"porian_{h}_{w}_{d}@{cut}"] = ("porian", {}, *_by_cut(setup, cut))
    grid = bs.datasets.load("cs336_api_2024")
    out["cs336@answers"] = ("cs336", CS336, _table(grid, grid["loss"] < 9.334),
                            _table(_cs336_answers()))
    gem = bs.datasets.load("gemstones_cool_end")
    out["gemstones@1e20"] = ("gemstones", {}, _table(gem, gem["flops"] < 1e20),
                             _table(gem, gem["flops"] >= 3e20))
    if budget_effect:
        out = {name: with_budget_levels(*split) for name, split in out.items()}
    return out


# -- issue 21's hypothesis 2: a budget-level residual term -------------------------------------
def budget_levels(train: pd.DataFrame, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A categorical compute-budget level per training and per held-out run: runs chained by
    gaps of at most :data:`SAME_BUDGET_DECADES` in log10 FLOPs share a level (the package's
    convention for one budget, :mod:`bayescale.model.profiles`). A held-out run within that
    of a training run takes its level; the others chain among themselves into new levels."""
    log_train = np.log10(train["flops"].to_numpy(float))
    log_test = np.log10(test["flops"].to_numpy(float))
    train_label = np.array([f"C{v:.4f}" for v in _budgets(log_train)], dtype=object)
    test_label = np.empty(log_test.size, dtype=object)
    gap = np.abs(log_test[:, None] - log_train[None, :]) if log_train.size else None
    seen = (gap.min(1) <= SAME_BUDGET_DECADES if gap is not None
            else np.zeros(log_test.size, bool))
    if seen.any():
        test_label[seen] = train_label[gap[seen].argmin(1)]
    if (~seen).any():
        test_label[~seen] = [f"new{v:.4f}" for v in _budgets(log_test[~seen])]
    return train_label, test_label


def with_budget_levels(study, options, train, test):
    """The split with a ``budget_level`` column on both tables, an offset of the model."""
    train, test = train.copy(), test.copy()
    train["budget_level"], test["budget_level"] = budget_levels(train, test)
    options = {**options, "offsets": [*options.get("offsets", []), "budget_level"]}
    return study, options, train, test


# -- stage 1: fits, cached ---------------------------------------------------------------------
def quiet_fit(model, args, seed=0):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bs.SamplerWarning)
        fit = model.fit(draws=args.draws, tune=args.draws, chains=args.chains,
                        random_seed=seed, progressbar=False,
                        target_accept=0.95 if model.continuous else 0.9)
    return fit, sum(issubclass(w.category, bs.SamplerWarning) for w in caught)


def _flat(values: np.ndarray) -> np.ndarray:
    return values.reshape(-1, *values.shape[2:])


def fit_split(name: str, options: dict, train: pd.DataFrame, test: pd.DataFrame, args) -> dict:
    """The law-exact fit of ``train``: its new-run draws at ``test`` and its inner backtests.
    A study whose recipe names its noise keeps it under the default ``--noise``."""
    options = dict(options)
    recipe_noise = options.pop("noise", None)
    noise = recipe_noise if recipe_noise and args.noise == "student_t" else args.noise
    model = bs.ScalingLaw(train, law=args.law, discrepancy="off", noise=noise,
                          **(nu_priors(args) if noise == "student_t" else {}), **options)
    fit, warned = quiet_fit(model, args)
    post, rng = fit.posterior, np.random.default_rng(0)
    log_mu = model.log_mean_draws(post, test, rng)
    noise = model.noise_draws(post, log_mu.shape, rng)
    params = model.noise_model(post).flat()
    out = {"log_mu": _flat(log_mu), "noise": _flat(noise), "sigma": params.sigma,
           "nu": _nan_for_none(params.nu, params.sigma.size),
           "shortfall": _nan_for_none(params.shortfall, params.sigma.size),
           **{k: post[k].values.reshape(-1) for k in model.law.params},
           "max_r_hat": float(fit.diagnostics()["max_r_hat"]), "warned": warned,
           **({"budget_level_tau": post["budget_level_tau"].values.reshape(-1)}
              if "budget_level_tau" in post else {})}
    flops = train["flops"].to_numpy()
    cuts = [("flops", cut) for cut in disc.BACKTEST_CUTS]
    if args.size_backtests:  # also cut the largest models off, at every budget
        cuts += [("params", cut) for cut in disc.BACKTEST_CUTS]
    for j, (column, cut) in enumerate(cuts):
        x = train[column].to_numpy(float)
        below = x <= x.max() / 10 ** cut * (1 + 1e-9)
        if np.unique(flops[below]).size < disc.MIN_BUDGETS or below.all():
            continue
        try:
            sub = model.with_runs(_table(train, below))
        except ValueError as err:
            print(f"  {name}: no backtest below {cut} decades of {column}: {err}")
            continue
        sub_fit, _ = quiet_fit(sub, args, seed=1 + j)
        b = disc.backtest_from_fit(sub, sub_fit, _table(train, ~below), cut, 0)
        out |= {f"bt{j}_below": below, f"bt{j}_log_mu": b.log_mu, f"bt{j}_sigma": b.sigma,
                f"bt{j}_nu": _nan_for_none(b.nu, b.sigma.size),
                f"bt{j}_shortfall": _nan_for_none(b.shortfall, b.sigma.size),
                f"bt{j}_cut": cut}
    h = huber_lbfgs(train, grid=HUBER_GRID, bootstrap=200, random_seed=0)
    law = get_law("chinchilla")
    theta = {k: h.bootstrap_draws[k].to_numpy()[:, None] for k in ("E", "A", "B", "alpha", "beta")}
    out["huber"] = log_mean(law, theta, {x: test[x].to_numpy(float)[None, :] for x in law.inputs})
    return out


def stage_fit(args) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    for name, (study, options, train, test) in splits(args.budget_effect).items():
        path = CACHE / f"{name}.npz"
        if path.exists() and not args.refit:
            continue
        t0 = time.time()
        out = fit_split(name, options, train, test, args)
        np.savez_compressed(path, **{k: np.asarray(v) for k, v in out.items()})
        levels = (f", budget levels {train['budget_level'].nunique()} -> "
                  f"{test['budget_level'].nunique()} ({np.isin(test['budget_level'], train['budget_level']).sum()}"
                  f" held-out runs at a training level)" if "budget_level" in train else "")
        print(f"  {name}: {len(train)} -> {len(test)} runs, {time.time() - t0:.0f} s, max R-hat "
              f"{out['max_r_hat']:.3f}, sampler warnings {out['warned']}{levels}", flush=True)


def load_cache(name: str) -> dict:
    with np.load(CACHE / f"{name}.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


# -- stage 2: the discrepancy's variants, scored ------------------------------------------------
def _columns(options: dict, table: pd.DataFrame) -> tuple[str, ...]:
    cols = [c for c in ("params", "tokens", "flops") if c in table.columns]
    return (*cols, *options.get("continuous", []))


def farthest_coordinate(points: pd.DataFrame, runs: pd.DataFrame, columns) -> np.ndarray:
    """bayescale 0.2's distance: decades outside the runs' range in the farthest column."""
    d = np.zeros(len(points))
    for c in columns:
        x, lo, hi = (np.log10(v) for v in (points[c].to_numpy(float), runs[c].min(), runs[c].max()))
        d = np.maximum(d, np.maximum(x - hi, 0) + np.maximum(lo - x, 0))
    return d


def nearest_run(points: pd.DataFrame, runs: pd.DataFrame, columns) -> np.ndarray:
    """The package's distance: decades from the nearest run, jointly in the columns."""
    term = Discrepancy(tuple(columns))
    return np.asarray(term.distance(points, term.ranges(runs)), float)


def _nan_none(values: np.ndarray | None):
    """A cached noise parameter: None where the fit's noise has none (saved as NaN)."""
    return None if values is None or np.isnan(values).all() else values


def _nan_for_none(values: np.ndarray | None, size: int) -> np.ndarray:
    return np.full(size, np.nan) if values is None else values


def backtests_of(cached, train, options, metric) -> list[disc.Backtest]:
    """The inner backtests of a split, their distances under ``metric``."""
    out = []
    for j in range(2 * len(disc.BACKTEST_CUTS)):  # the compute cuts, then any size cuts
        if f"bt{j}_below" not in cached:
            continue
        cut = float(cached.get(f"bt{j}_cut", disc.BACKTEST_CUTS[j % len(disc.BACKTEST_CUTS)]))
        below = cached[f"bt{j}_below"]
        sub, held = _table(train, below), _table(train, ~below)
        out.append(disc.Backtest(cut=cut, log_loss=np.log(held["loss"].to_numpy(float)),
                                 log_mu=cached[f"bt{j}_log_mu"], sigma=cached[f"bt{j}_sigma"],
                                 nu=_nan_none(cached[f"bt{j}_nu"]),
                                 shortfall=_nan_none(cached.get(f"bt{j}_shortfall")),
                                 distance=metric(held, sub, _columns(options, train))))
    return out


def population_backtest(cached, train, test, options, metric) -> disc.Backtest:
    keep = np.random.default_rng(0).choice(len(cached["sigma"]), disc.KEPT_DRAWS, replace=False)
    return disc.Backtest(cut=0.0, log_loss=np.log(test["loss"].to_numpy(float)),
                         log_mu=cached["log_mu"][keep], sigma=cached["sigma"][keep],
                         nu=_nan_none(cached["nu"][keep]),
                         shortfall=_nan_none(cached["shortfall"][keep]
                                             if "shortfall" in cached else None),
                         distance=metric(test, train, _columns(options, train)))


#: name -> (distance, shared fraction of the misfit in the backtests' likelihood, bias: False
#: none, True its prior learned from the other studies, "default" the prior the package offers
#: (``DEFAULT_BIAS_PRIOR``; the package's default before 2026-12-06 learned it). ``package`` is
#: what ``discrepancy="backtest"`` does now: the same as ``nearest``.
VARIANTS = {
    "package": (nearest_run, 0.0, False),
    "package+bias": (nearest_run, 0.0, "default"),
    "today": (farthest_coordinate, 0.0, False),
    "nearest": (nearest_run, 0.0, False),
    "nearest+shared": (nearest_run, 1.0, False),
    "nearest+bias": (nearest_run, 0.0, True),
    "nearest+shared+bias": (nearest_run, 1.0, True),
    "nearest+half+bias": (nearest_run, 0.5, True),
}


def score(log_pred: np.ndarray, y: np.ndarray) -> dict:
    """Scores of predictive draws (draws x runs, log loss) against observed log losses y."""
    loss = np.exp(y)
    row = {}
    for p in (0.5, 0.9):
        lo, hi = np.exp(np.quantile(log_pred, [(1 - p) / 2, (1 + p) / 2], axis=0))
        row[f"in{round(p * 100)}"] = int(np.sum((loss >= lo) & (loss <= hi)))
    penalty = 20 * ((lo - loss) * (loss < lo) + (loss - hi) * (loss > hi))
    median = np.exp(np.median(log_pred, 0))
    row |= {"n": len(y), "score_sum": float(100 * np.sum((hi - lo + penalty) / loss)),
            "width90_%": float(100 * np.median((hi - lo) / loss)),
            "error_%": float(100 * np.median(np.abs(median / loss - 1))),
            "below_median": int(np.sum(loss < median))}
    return row


def run_variant(label, metric, shared, bias, table, args) -> tuple[list[dict], dict]:
    """The variant's scores per split, and its learned (scale, bias) draws per split."""
    groups = {n: [population_backtest(load_cache(n), tr, te, o, metric)]
              for n, (_, o, tr, te) in table.items()}
    priors = {}
    for study in sorted({s for s, *_ in table.values()}):
        others = {n: g for n, g in groups.items() if table[n][0] != study}
        priors[study] = disc.population_prior(others, draws=args.draws, chains=2, shared=shared,
                                              bias=bias is True)
    priors["all"] = disc.population_prior(groups, draws=args.draws, chains=2, shared=shared,
                                          bias=bias is True)
    if bias == "default":
        for prior in priors.values():
            prior["discrepancy_bias"] = dict(disc.DEFAULT_BIAS_PRIOR)
    rows, draws = [], {}
    for name, (study, options, train, test) in table.items():
        cached = load_cache(name)
        inner = backtests_of(cached, train, options, metric)
        learned = disc.learn_discrepancy(inner, priors[study], chains=2,
                                         draws=len(cached["sigma"]) // 2, tune=args.draws,
                                         seed=7, shared=shared)
        scale = learned["discrepancy_scale"].reshape(-1)
        b = learned.get("discrepancy_bias", np.zeros((1, 1))).reshape(-1)
        draws[name] = (scale, b)
        np.savez_compressed(CACHE / f"learned_{label}_{name}.npz", scale=scale, bias=b)
        d = metric(test, train, _columns(options, train))
        pred = new_run_draws(cached, scale, b, d)
        rows.append({"variant": label, "split": name, "study": study,
                     "prior_median": float(np.exp(priors[study]["discrepancy_scale"]["mu"])),
                     "scale": float(np.median(scale)), "bias": float(np.median(b)),
                     "decades": float(np.median(d))}
                    | score(pred, np.log(test["loss"].to_numpy(float))))
    print(f"  {label}: priors " + "; ".join(f"{k} {json.dumps(v)}" for k, v in priors.items()),
          flush=True)
    return rows, draws


def new_run_draws(cached: dict, scale, bias, distance) -> np.ndarray:
    """New-run draws of log loss at a split's held-out runs (draws x runs): the cached
    law-exact draws and noise, plus the discrepancy ``d (b + s z)`` with the learned ``s``,
    ``b`` and a direction ``z`` per draw (seed 11, the same for every variant and law)."""
    z = np.random.default_rng(11).standard_normal(scale.size)
    return cached["log_mu"] + cached["noise"] + (bias + scale * z)[:, None] * distance[None, :]


def measured_optima(study: str, test: pd.DataFrame) -> pd.DataFrame | None:
    """N* at each held-out budget that holds an isoFLOP profile, measured by a parabola in log
    N of that budget's own runs (as the studies did); None for a study without profiles."""
    if study not in ("porian", "chinchilla"):
        return None
    return profile_optima(test, budgets=CHINCHILLA_BUDGETS if study == "chinchilla" else None)


def baselines(table) -> list[dict]:
    rows = []
    for name, (study, options, train, test) in table.items():
        cached = load_cache(name)
        y = np.log(test["loss"].to_numpy(float))
        rows.append({"variant": "law exact", "split": name, "study": study}
                    | score(cached["log_mu"] + cached["noise"], y))
        rows.append({"variant": "huber", "split": name, "study": study}
                    | score(cached["huber"], y))
    return rows


def summarise(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    g = rows.groupby(by)
    out = pd.DataFrame({"runs": g["n"].sum(), "cov50": g["in50"].sum() / g["n"].sum(),
                        "cov90": g["in90"].sum() / g["n"].sum(),
                        "interval_score_%": g["score_sum"].sum() / g["n"].sum(),
                        "median_error_%": g["error_%"].median(),
                        "width90_%": g["width90_%"].median(),
                        "below_median": g["below_median"].sum() / g["n"].sum()})
    return out


# -- the allocation ----------------------------------------------------------------------------
#: Chinchilla's isoFLOP budgets (Hoffmann et al. 2022, approach 2); the digitised runs' FLOPs
#: scatter about them.
CHINCHILLA_BUDGETS = np.array([6e18, 1e19, 3e19, 6e19, 1e20, 3e20, 6e20, 1e21, 3e21])


def _posterior(cached: dict, scale=None, bias=None, seed: int = 13, law=None) -> xr.Dataset:
    """The cached law-exact draws as a posterior, with the discrepancy's learned draws (its
    directions z and tilt drawn from their N(0, 1) priors) when ``scale`` is given."""
    data = {k: cached[k] for k in get_law(law or LAW).params}
    if scale is not None:
        rng = np.random.default_rng(seed)
        data |= {"discrepancy_scale": scale, "discrepancy_bias": np.broadcast_to(bias, scale.shape),
                 "discrepancy_z": rng.standard_normal(scale.size),
                 "discrepancy_tilt": rng.standard_normal(scale.size)}
    return xr.Dataset({k: (("chain", "draw"), np.asarray(v, float)[None, :])
                       for k, v in data.items()})


def allocation(table, learned: dict[str, dict]) -> pd.DataFrame:
    """N* per held-out isoFLOP budget: its 90% interval under the law taken as exact and, per
    variant in ``learned`` (variant -> split -> (scale, bias) draws), as the package answers
    (:meth:`bayescale.ScalingLaw.optimal`: the discrepancy's tilt, and the drift of the
    training runs' own profiles from the law), and with the tilt alone; against the optimum
    measured from that budget's own runs."""
    rows = []
    for name, (study, options, train, test) in table.items():
        measured = measured_optima(study, test)
        if measured is None or measured.empty:
            continue
        cached = load_cache(name)
        # the allocation is answered without the budget-level term (its offsets aren't cached)
        options = {**options, "offsets": [c for c in options.get("offsets", [])
                                          if c != "budget_level"] or None}
        model = bs.ScalingLaw(train.drop(columns="budget_level", errors="ignore"),
                              law=LAW, **options)
        flops = measured["flops"].to_numpy()
        answers = {"law exact": (_posterior(cached), True)}
        for v in learned:
            if name in learned[v]:
                post = _posterior(cached, *learned[v][name])
                answers |= {f"{v}: tilt": (post, False), f"{v}: tilt + profiles": (post, True)}
        for variant, (post, profiles) in answers.items():
            model.profiles_measure_allocation = profiles
            opt = model.optimal(post, flops, np.random.default_rng(5))["params_opt"]
            opt = opt.reshape(-1, flops.size)
            lo, hi = np.quantile(opt, [0.05, 0.95], axis=0)
            rows += [{"variant": variant, "split": name, "flops": f, "measured": t, "lower": a,
                      "upper": b, "inside": bool(a <= t <= b),
                      "width_decades": float(np.log10(b / a)),
                      "decades_off": float(np.log10(np.median(o) / t))}
                     for f, t, a, b, o in zip(flops, measured["params_opt"], lo, hi, opt.T)]
    return pd.DataFrame(rows)


def stage_score(args) -> None:
    table = {k: v for k, v in splits(args.budget_effect).items()
             if not args.studies or v[0] in args.studies}
    rows, learned = baselines(table), {}
    for label in args.variants:
        scored, learned[label] = run_variant(label, *VARIANTS[label], table, args)
        rows += scored
    rows = pd.DataFrame(rows)
    rows.to_csv(CACHE / f"scores_{'_'.join(args.variants)}.csv", index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 30,
                           "display.float_format", "{:.3f}".format):
        print(rows.drop(columns=["score_sum"]).to_string(index=False))
        print(summarise(rows, ["variant", "study"]).to_string())
        print(summarise(rows, ["variant"]).to_string())
        report_allocation(allocation(table, learned), args)


# -- stacking two laws on the splits' own backtests (hypothesis 4) ------------------------------
def backtest_lpd(cached: dict, train: pd.DataFrame) -> np.ndarray | None:
    """Log predictive densities of the inner backtests' held-out training runs (law exact,
    the backtest fit's own noise), pooled over the backtests; None without backtests."""
    from bayescale.analysis.compare import log_predictive_density
    from bayescale.model.noise import Noise

    y_all, out = np.log(train["loss"].to_numpy(float)), []
    for j in range(len(disc.BACKTEST_CUTS)):
        if f"bt{j}_below" not in cached:
            continue
        below = cached[f"bt{j}_below"]
        noise = Noise(sigma=cached[f"bt{j}_sigma"][:, None],
                      nu=_none_or_column(cached[f"bt{j}_nu"]),
                      shortfall=_none_or_column(cached.get(f"bt{j}_shortfall")))
        out.append(log_predictive_density(y_all[~below], cached[f"bt{j}_log_mu"], noise))
    return np.concatenate(out) if out else None


def _none_or_column(values):
    values = _nan_none(values)
    return None if values is None else np.asarray(values, float)[:, None]


def nu_priors(args) -> dict:
    """``{"priors": ...}`` holding the Student-t's ``nu`` at ``--nu`` (a LogNormal prior 1%
    wide), or nothing."""
    if getattr(args, "nu", None) is None:
        return {}
    return {"priors": {"nu": {"dist": "LogNormal", "mu": float(np.log(args.nu)), "sigma": 0.01}}}


def cache_dir(law: str, args) -> Path:
    """Where the fits of ``law`` under the noise and terms of ``args`` are cached."""
    out = Path(__file__).resolve().parent / "cache"
    out = out / law if law != "chinchilla" else out
    out = out / args.noise if args.noise != "student_t" else out
    out = out / f"nu{args.nu:g}" if getattr(args, "nu", None) is not None else out
    out = out / "budget" if args.budget_effect else out
    return out / "sizecut" if getattr(args, "size_backtests", False) else out


def stage_stack(args) -> None:
    from bayescale.analysis.compare import stacking_weights

    if args.law == "chinchilla" or len(args.variants) != 1:
        raise SystemExit("stack: name the second law (--law) and one variant (--variants)")
    variant = args.variants[0]
    caches = {law: cache_dir(law, args) for law in ("chinchilla", args.law)}
    table = {k: v for k, v in splits(args.budget_effect).items()
             if not args.studies or v[0] in args.studies}
    rows, alloc = [], []
    for name, (study, options, train, test) in table.items():
        preds, lpd, nstar = {}, {}, {}
        measured = measured_optima(study, test)
        for law, cache in caches.items():
            with np.load(cache / f"{name}.npz", allow_pickle=False) as f:
                cached = dict(f)
            with np.load(cache / f"learned_{variant}_{name}.npz", allow_pickle=False) as f:
                scale, b = f["scale"], np.broadcast_to(f["bias"], f["scale"].shape)
            if measured is not None and not measured.empty:  # N* as the package answers it
                model = bs.ScalingLaw(train, law=law, **options)
                flops = measured["flops"].to_numpy()
                post = _posterior(cached, scale, b, law=law)
                nstar[law] = model.optimal(post, flops, np.random.default_rng(5))[
                    "params_opt"].reshape(-1, flops.size)
            d = nearest_run(test, train, _columns(options, train))
            preds[law] = new_run_draws(cached, scale, b, d)
            lpd[law] = backtest_lpd(cached, train)
        laws = list(caches)
        stacked = (stacking_weights(np.stack([lpd[k] for k in laws]))
                   if all(lpd[k] is not None for k in laws) else np.full(len(laws), 0.5))
        y = np.log(test["loss"].to_numpy(float))
        size = min(p.shape[0] for p in preds.values())
        for label, w in (("stacked (backtests)", stacked), ("equal weights", np.full(2, 0.5)),
                         *((f"{k} alone", np.eye(2)[i]) for i, k in enumerate(laws))):
            counts = np.round(np.asarray(w) * size).astype(int)
            counts[-1] = size - counts[:-1].sum()
            mix = np.concatenate([preds[k][:c] for k, c in zip(laws, counts)])
            rows.append({"variant": label, "split": name, "study": study,
                         f"weight_{args.law}": float(w[1])} | score(mix, y))
            if nstar:
                n = min(v.shape[0] for v in nstar.values())
                c = np.round(np.asarray(w) * n).astype(int)
                c[-1] = n - c[:-1].sum()
                opt = np.concatenate([nstar[k][:m] for k, m in zip(laws, c)])
                lo, hi = np.quantile(opt, [0.05, 0.95], axis=0)
                alloc += [{"variant": label, "split": name, "flops": f, "measured": t,
                           "inside": bool(a <= t <= bb), "width_decades": float(np.log10(bb / a)),
                           "decades_off": float(np.log10(np.median(o) / t))}
                          for f, t, a, bb, o in zip(measured["flops"], measured["params_opt"],
                                                    lo, hi, opt.T)]
    rows = pd.DataFrame(rows)
    rows.to_csv(CACHE / f"stack_{variant}.csv", index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 30,
                           "display.float_format", "{:.3f}".format):
        print(rows[rows["variant"] == "stacked (backtests)"].drop(columns=["score_sum"])
              .to_string(index=False))
        print(summarise(rows, ["variant", "study"]).to_string())
        print(summarise(rows, ["variant"]).to_string())
        alloc = pd.DataFrame(alloc)
        alloc.to_csv(CACHE / f"stack_allocation_{variant}.csv", index=False)
        print("N* at the held-out isoFLOP budgets (the package's answer: tilt and profiles):")
        print(alloc.groupby("variant").agg(
            inside=("inside", "sum"), budgets=("inside", "size"),
            width_decades=("width_decades", "median"),
            abs_off=("decades_off", lambda x: np.median(np.abs(x)))).to_string())


def stage_allocation(args) -> None:
    """The allocation check alone, from the learned draws a score stage saved."""
    table = {k: v for k, v in splits(args.budget_effect).items()
             if not args.studies or v[0] in args.studies}
    learned = {}
    for label in args.variants:
        for name in table:
            path = CACHE / f"learned_{label}_{name}.npz"
            if path.exists():
                with np.load(path, allow_pickle=False) as f:
                    learned.setdefault(label, {})[name] = (f["scale"], f["bias"])
    report_allocation(allocation(table, learned), args)


def report_allocation(alloc: pd.DataFrame, args) -> None:
    if alloc.empty:
        return
    alloc.to_csv(CACHE / f"allocation_{'_'.join(args.variants)}.csv", index=False)
    print(alloc.round(3).to_string(index=False))
    by = alloc.groupby(["variant", alloc["split"].str.split("@").str[0]])
    print("N* inside its 90% interval, per setup:\n", by["inside"].agg(["sum", "count"]).unstack(0)
          .to_string())
    print(alloc.groupby("variant").agg(inside=("inside", "sum"), budgets=("inside", "size"),
                                       width_decades=("width_decades", "median"),
                                       abs_off=("decades_off", lambda x: np.median(np.abs(x))))
          .to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["fit", "score", "allocation", "stack"])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--refit", action="store_true")
    parser.add_argument("--noise", default="student_t", choices=["student_t", "normal", "skewed"],
                        help="the fits' noise (student_t: the default; each noise has its own "
                             "cache, benchmarks/cache/<noise>/ for another)")
    parser.add_argument("--budget-effect", action="store_true",
                        help="issue 21's hypothesis 2: a partially pooled offset per compute "
                             "budget (column budget_level) in every fit; its own cache, "
                             "benchmarks/cache/budget/ (benchmarks/cache/<noise>/budget/)")
    parser.add_argument("--size-backtests", action="store_true",
                        help="inner backtests that also cut the largest model sizes off (0.5 "
                             "and 1 decade under the largest N, every budget kept); their own "
                             "cache, benchmarks/cache/.../sizecut/")
    parser.add_argument("--nu", type=float, default=None,
                        help="hold the Student-t's degrees of freedom at this value (a prior "
                             "1%% wide) in every fit; its own cache, benchmarks/cache/.../nu<X>/")
    parser.add_argument("--law", default="chinchilla",
                        help="the law of every fit (another than chinchilla: its own cache, "
                             "benchmarks/cache/<law>/)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--studies", nargs="+", default=None,
                        help="score only these studies (a quick check; priors from the rest)")
    args = parser.parse_args()
    global CACHE, LAW
    LAW = args.law
    CACHE = cache_dir(args.law, args)
    {"fit": stage_fit, "score": stage_score, "allocation": stage_allocation,
     "stack": stage_stack}[args.stage](args)


if __name__ == "__main__":
    main()
