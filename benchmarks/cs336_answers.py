"""The CS336 recipe against a second user's answers of the same API outside the bundled grid.

Fits ``models/cs336_api.toml`` as the CLI does (its data, model and sampler settings; fewer
draws with ``--draws``), predicts every answer at 3e15 FLOPs or more in
``../shared/data/cs336_api_2024_answers_b.csv`` (14 queries, none in the grid) as a new run,
and prints how many lie inside the 50% and 90% intervals, with the recipe's answer at 1e19
(N*, D*/N*, loss and the identification warning).

    python benchmarks/cs336_answers.py [--draws 1000] [--noise skewed] [--query "loss < 8.3"]

``--query`` replaces the recipe's ``[data] query`` (which runs count as trained).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

import bayescale as bs
from bayescale.data.runs import add_shape_columns
from bayescale.report.answer import targets_table
from bayescale.report.recipe import Recipe

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BAYESCALE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def answers() -> pd.DataFrame:
    raw = pd.read_csv(SHARED / "cs336_api_2024_answers_b.csv")
    raw = raw[raw["train_flops"] >= 3e15].reset_index(drop=True)
    raw.insert(0, "params", 12.0 * raw["num_layers"] * raw["d_model"].astype(float) ** 2)
    return add_shape_columns(bs.prepare(raw, params="params", flops="train_flops", loss="loss"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=None, help="draws and tune per chain")
    parser.add_argument("--noise", default=None, help="override the recipe's noise")
    parser.add_argument("--query", default=None, help="override the recipe's [data] query")
    args = parser.parse_args()
    recipe = Recipe.read(ROOT / "models" / "cs336_api.toml")
    if args.query:
        recipe = Recipe.from_dict({"data": {**recipe.data, "query": args.query},
                                   "model": recipe.model, "fit": recipe.fit,
                                   "targets": recipe.targets})
    runs = recipe.runs()
    print(f"{len(runs)} runs (query {recipe.data['query']!r})")
    model = recipe.scaling_law(runs)
    if args.noise:
        model = type(model)(model.runs, **{**type(model).options(model.spec), "noise": args.noise})
    kwargs = recipe.fit_kwargs(**({"draws": args.draws, "tune": args.draws} if args.draws else {}))
    t0 = time.time()
    fit = model.fit(**kwargs)
    held = answers()
    pred = fit.predict(held, kind="new_run")["loss"].values.reshape(-1, len(held))
    loss = held["loss"].to_numpy()
    rows = pd.DataFrame({"flops": held["flops"], "params": held["params"], "loss": loss,
                         "median": np.median(pred, 0)})
    for p in (0.5, 0.9):
        lo, hi = np.quantile(pred, [(1 - p) / 2, (1 + p) / 2], axis=0)
        rows[f"in{round(100 * p)}"] = (loss >= lo) & (loss <= hi)
        rows[f"lower{round(100 * p)}"], rows[f"upper{round(100 * p)}"] = lo, hi
    print(rows.round(4).to_string(index=False))
    print(f"inside 90%: {int(rows['in90'].sum())} of {len(rows)}; inside 50%: "
          f"{int(rows['in50'].sum())}; fit {time.time() - t0:.0f} s, noise {model.noise}")
    table = targets_table(fit, recipe.budgets, prob=recipe.prob)
    print(table.drop(columns="warning", errors="ignore").T.to_string())
    print("warnings:", table.attrs.get("warnings"))


if __name__ == "__main__":
    main()
