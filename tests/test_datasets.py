"""Bundled data sets: row counts, values against the raw files read here with pandas, the
registry's attribution, and unknown names.

The raw files are read from ../shared/data beside the repository (the curated copies the
package bundles), or, where that folder is absent, from the package's own data folder.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayescale as bs

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BUNDLED = Path(str(resources.files("bayescale.data.datasets").joinpath("data")))
RAW = SHARED if SHARED.is_dir() else BUNDLED

#: name -> (file, documented rows, "repo @ commit" from SOURCES.md, licence keyword)
EXPECTED = {
    "chinchilla": ("chinchilla_epoch.csv", 245, "epoch-research/analyzing-chinchilla @ 92258837",
                   "none stated"),
    "cs336_isoflops": ("cs336_isoflops_synthetic.json", 72,
                       "stanford-cs336/assignment3-scaling @ 24a558ee", "MIT"),
    "cs336_api_2024": ("cs336_api_2024_grid.csv", 2479,
                       "ZitongYang/cs336-assignment3-scaling @ 37e2e7ac", "none stated"),
    "olmo_ladder": ("olmo_ladder_final.csv", 30, "allenai/OLMo-ladder @ 67a3f440", "Apache-2.0"),
    "olmo_ladder_curves": ("olmo_ladder_curves.csv", 3569, "allenai/OLMo-ladder @ 67a3f440",
                           "Apache-2.0"),
    "porian2024_owt2": ("porian2024_owt2.csv", 468,
                        "formll/resolving-scaling-law-discrepancies @ 0dc60d91", "none stated"),
    "gemstones_cool_end": ("gemstones_mcleish2025.csv", 199,
                           "mcleish7/gemstone-scaling-laws @ 5f420478", "MIT"),
}


@pytest.fixture(scope="module")
def loaded() -> dict[str, pd.DataFrame]:
    return {name: bs.datasets.load(name) for name in EXPECTED}


def assert_canonical(runs: pd.DataFrame, params, tokens, flops, loss) -> None:
    assert list(runs.columns[:4]) == ["params", "tokens", "flops", "loss"]
    for column, expected in (("params", params), ("tokens", tokens), ("flops", flops),
                             ("loss", loss)):
        np.testing.assert_allclose(runs[column].to_numpy(), np.asarray(expected, float),
                                   rtol=1e-12, err_msg=column)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_row_counts(loaded, name):
    rows = EXPECTED[name][1]
    assert len(loaded[name]) == rows
    listed = bs.datasets.list().set_index("name")
    assert listed.loc[name, "rows"] == rows
    assert bs.datasets.info(name).rows == rows


@pytest.mark.parametrize("name", list(EXPECTED))
def test_bundled_file_is_the_curated_one(name):
    """The numbers are never edited: the package's file is byte-identical to the shared one."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not available")
    file = EXPECTED[name][0]
    assert (BUNDLED / file).read_bytes() == (SHARED / file).read_bytes()


def test_chinchilla_values(loaded):
    raw = pd.read_csv(RAW / "chinchilla_epoch.csv")
    n, c = raw["Model Size"], raw["Training FLOP"]
    assert_canonical(loaded["chinchilla"], n, c / (6 * n), c, raw["loss"])


def test_cs336_isoflops_values(loaded):
    raw = pd.DataFrame(json.loads((RAW / "cs336_isoflops_synthetic.json").read_text()))
    n, c = raw["parameters"], raw["compute_budget"]
    runs = loaded["cs336_isoflops"]
    assert_canonical(runs, n, c / (6 * n), c, raw["final_loss"])
    assert runs["flops"].nunique() == 9


def test_cs336_api_values(loaded):
    raw = pd.read_csv(RAW / "cs336_api_2024_grid.csv")
    n = 12.0 * raw["num_layers"] * raw["d_model"] ** 2
    c = raw["train_flops"]
    runs = loaded["cs336_api_2024"]
    assert_canonical(runs, n, c / (6 * n), c, raw["loss"])
    for column in ("d_model", "num_layers", "num_heads", "batch_size", "learning_rate"):
        np.testing.assert_array_equal(runs[column].to_numpy(), raw[column].to_numpy(), column)


@pytest.mark.parametrize("name, file", [("olmo_ladder", "olmo_ladder_final.csv"),
                                        ("olmo_ladder_curves", "olmo_ladder_curves.csv")])
def test_olmo_values(loaded, name, file):
    raw = pd.read_csv(RAW / file)
    runs = loaded[name]
    assert_canonical(runs, raw["params_N"], raw["total_tokens"],
                     raw["total_training_Gflops"] * 1e9, raw["c4_en_CE"])
    for column in ("run", "pile_CE", "wikitext_103_CE", "chinchilla_mult"):
        np.testing.assert_array_equal(runs[column].to_numpy(), raw[column].to_numpy(), column)


def test_list_has_attribution_and_licence():
    listed = bs.datasets.list()
    assert set(listed.columns) >= {"name", "rows", "loss", "description", "source", "licence"}
    assert list(listed["name"]) == list(EXPECTED)
    for _, row in listed.iterrows():
        file, _, source, licence = EXPECTED[row["name"]]
        assert source in row["source"], row["name"]
        assert licence in row["licence"], row["name"]
        assert row["description"].strip(), row["name"]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_load_records_provenance_in_attrs(loaded, name):
    attrs = loaded[name].attrs
    assert attrs["dataset"] == name
    assert EXPECTED[name][2] in attrs["source"]
    assert EXPECTED[name][3] in attrs["licence"]


def test_load_returns_a_fresh_table():
    first = bs.datasets.load("olmo_ladder")
    first.loc[:, "loss"] = 99.0
    assert (bs.datasets.load("olmo_ladder")["loss"] < 10).all()


@pytest.mark.parametrize("function", [bs.datasets.load, bs.datasets.info])
def test_unknown_name_raises_naming_it(function):
    with pytest.raises(ValueError, match=r"unknown dataset 'chinchila'.*'chinchilla'"):
        function("chinchila")


def test_porian_sweep_has_its_four_setups_and_twelve_doubling_budgets(loaded):
    runs = loaded["porian2024_owt2"]
    setups = runs.groupby(["hparams", "warmup", "decay"]).size()
    assert len(setups) == 4 and setups.sum() == 468
    assert sorted(runs["setup"].unique()) == ["base/long/kaplan", "base/short/chinchilla",
                                              "base/short/kaplan", "tuned/short/const"]
    budgets = np.unique(runs["flops"])
    np.testing.assert_allclose(budgets, 1.25e16 * 2.0 ** np.arange(12), rtol=1e-9)
    np.testing.assert_allclose(runs["flops"], 6 * runs["params"] * runs["tokens"], rtol=1e-6)


def test_gemstones_cool_end_values(loaded):
    raw = pd.read_csv(RAW / "gemstones_mcleish2025.csv")
    raw = raw[raw["variant"] == "cool_end"]
    runs = loaded["gemstones_cool_end"]
    assert_canonical(runs, raw["params"], raw["tokens"], raw["flops"], raw["loss"])
    assert runs["shape"].nunique() == 20 and "variant" not in runs.columns
