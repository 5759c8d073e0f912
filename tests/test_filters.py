"""Row filters (`[data] query`): bayescale's own expression language; a recipe selects runs but
never runs code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import bayescale as bs
from bayescale.data.filters import MAX_DEPTH, MAX_LENGTH, filter_rows, parse_filter
from bayescale.report.cli import main
from bayescale.report.recipe import Recipe

ROOT = Path(__file__).resolve().parents[1]

RUNS = pd.DataFrame({
    "params": [1e8, 2e8, 4e8, 8e8], "tokens": [2e9, 4e9, 8e9, 1.6e10],
    "flops": [1.2e18, 4.8e18, 1.92e19, 7.68e19], "loss": [3.4, 3.1, 9.5, 2.6],
    "optimizer": ["adam", "lion", "adam", "sgd"], "Model Size": [1, 2, 3, 4],
})

#: (filter, the rows it keeps), as pandas' query reads the same text too
ORDINARY = [
    ("loss < 9.334", [0, 1, 3]),                      # models/cs336_api.toml, docs
    ("loss < 9.334 and flops >= 1e15", [0, 1, 3]),    # models/cs336_design.toml
    ("flops >= 1e15", [0, 1, 2, 3]),                  # docs/recipes.md
    ("loss < 10", [0, 1, 2, 3]),                      # recipe.py's docstring
    ("1e18 <= flops < 1e19", [0, 1]),
    ("optimizer in ['adam', 'lion']", [0, 1, 2]),
    ("optimizer not in [\"adam\"]", [1, 3]),
    ("not (loss > 3) or optimizer == 'lion'", [1, 3]),
    ("flops / (6 * params) > 3e9", [1, 2, 3]),
    ("flops / (6 * params) >= 2e9 and `Model Size` ** 2 > 4", [2, 3]),
    ("-loss > -3.2", [1, 3]),
    ("loss != 3.4 and (params > 1e8 or tokens < 1e9)", [1, 2, 3]),
    ("`Model Size` in [1, -2, 4]", [0, 3]),
]

#: the porian2024_owt2 selections of benchmarks/extrapolation.py
PORIAN = [f"hparams == '{h}' and warmup == '{w}' and decay == '{d}'"
          for h, w, d in [("base", "long", "kaplan"), ("base", "short", "chinchilla"),
                          ("base", "short", "kaplan"), ("tuned", "short", "const")]]

PWNED = "@pd.core.frame.com.builtins.__import__('os').system('id > pwned.txt') == 0"

HOSTILE = [
    PWNED,
    "@pd.__class__ == 0",
    "__import__('os').system('id') == 0",
    "loss.__class__.__mro__ == 0",
    "loss.__class__ == 0",
    "loss.values.sum() > 0",
    "params.astype(str) == 'x'",
    "open('/etc/passwd') == 0",
    "eval('1') == 1",
    "exec('import os')",
    "import os",
    "lambda: 1",
    "(lambda x: x)(1) == 1",
    "f'{loss}' == 'x'",
    "F\"{__import__('os')}\" == 0",
    "loss[0] > 1",
    "loss[::2] > 1",
    "[x for x in loss] == 1",
    "{x: 1 for x in loss}",
    "(x := 1) == 1",
    "loss if loss > 1 else 0",
    "loss > 1; import os",
    "`loss`.__class__ == 0",
    "@loss > 1",
    "loss @ loss > 1",
    "b'x' == loss",
    "'\\x41' == loss",
    "loss > 1 \\\n and loss < 2",
    "loss > 1 # comment",
    "__builtins__ == 0",
    "`__class__` == 0",
    "loss in loss",
    "loss ~ 1",
    "loss & loss",
    "loss > 1 and",
    "",
    "   ",
    "(" * (MAX_DEPTH + 1) + "loss > 1" + ")" * (MAX_DEPTH + 1),
    "not " * (MAX_DEPTH + 1) + "loss > 1",
    "-" * (MAX_DEPTH + 1) + "loss > 1",
    "2" + "**2" * (MAX_DEPTH + 1) + " > loss",
    "(" * 500 + "1" + ")" * 500,
    "loss > 1 and " * 200 + "loss > 1",  # past MAX_LENGTH
    "loss + " * 400 + "loss > 1",        # past MAX_LENGTH
]


def test_there_are_enough_hostile_filters():
    assert len(HOSTILE) >= 20


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t[:30]))
def test_hostile_filters_are_refused_when_parsed(text):
    with pytest.raises(ValueError, match="filter"):
        parse_filter(text)


def test_a_filter_that_is_not_a_string_is_a_type_error():
    with pytest.raises(TypeError, match="string"):
        parse_filter(["loss < 1"])


@pytest.mark.parametrize(("text", "kept"), ORDINARY, ids=[t for t, _ in ORDINARY])
def test_ordinary_filters_keep_the_rows_python_would(text, kept):
    assert filter_rows(RUNS, text).index.tolist() == kept
    assert RUNS.query(text).index.tolist() == kept  # the reference reading (pandas)


@pytest.mark.parametrize("text", [q for q, _ in ORDINARY[:4]] + PORIAN)
def test_ordinary_filters_agree_with_pandas_on_the_bundled_runs(text):
    """The selections recipes and benchmarks make: the same rows as pandas' query did."""
    name = "porian2024_owt2" if "hparams" in text else "cs336_api_2024"
    runs = bs.datasets.load(name)
    kept = filter_rows(runs, text)
    assert kept.index.equals(runs.query(text).index) and 0 < len(kept) <= len(runs)
    assert kept.attrs == runs.attrs


def test_every_query_of_the_models_recipes_parses_and_selects():
    recipes = [Recipe.read(p) for p in sorted((ROOT / "models").glob("*.toml"))]
    with_query = [r for r in recipes if "query" in r.data]
    assert with_query
    for recipe in with_query:
        assert 0 < len(recipe.runs())


@pytest.mark.parametrize(("text", "named"), [
    ("nope < 1", "'nope'"),
    ("loss < 1 and `Model size` > 1", "'Model size'"),
])
def test_an_unknown_column_is_named_with_the_columns_there_are(text, named):
    with pytest.raises(ValueError, match=named) as err:
        filter_rows(RUNS, text)
    assert "'Model Size'" in str(err.value) and "'loss'" in str(err.value)


@pytest.mark.parametrize(("text", "why"), [
    ("loss", "not a condition"),
    ("loss + 1", "not a condition"),
    ("optimizer + 1 > 2", "needs numbers"),
    ("loss + 'a' > 1", "needs numbers"),
    ("(loss > 1) * 2 > 1", "needs numbers"),
    ("optimizer < 3", "cannot be evaluated"),
    ("not loss", "needs conditions"),
    ("loss and params", "needs conditions"),
])
def test_a_filter_that_cannot_be_evaluated_is_a_value_error(text, why):
    with pytest.raises(ValueError, match=why):
        filter_rows(RUNS, text)


def test_limits():
    assert MAX_LENGTH == 2000
    deep = "(" * MAX_DEPTH + "loss > 1" + ")" * MAX_DEPTH
    assert filter_rows(RUNS, deep).index.tolist() == [0, 1, 2, 3]
    long = " or ".join(["loss > 100"] * 140) + " or loss < 3"
    assert len(long) <= MAX_LENGTH and filter_rows(RUNS, long).index.tolist() == [3]
    # numbers are floats: a huge power is inf, not a long computation on integers
    assert filter_rows(RUNS, "10 ** 1000 > loss").index.tolist() == [0, 1, 2, 3]
    assert filter_rows(RUNS, "loss / 0 > 1").index.tolist() == [0, 1, 2, 3]


def test_a_hostile_query_is_refused_when_the_recipe_is_read(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(f'[data]\ndataset = "chinchilla"\nquery = "{PWNED}"\n')
    with pytest.raises(ValueError, match=r"\[data\] query.*unexpected character '@'"):
        Recipe.read(path)


def test_the_cli_refuses_a_recipe_that_would_run_a_shell_command(tmp_path):
    """The issue's recipe, through the real `bayescale fit`: exit 2, one line, nothing run."""
    recipe = tmp_path / "r.toml"
    recipe.write_text("[data]\ndataset = \"chinchilla\"\nquery = \"\"\"" + PWNED + "\"\"\"\n")
    done = subprocess.run([sys.executable, "-m", "bayescale.report.cli", "fit", "r.toml",
                           "--out", "x"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "query" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "pwned.txt").exists()
    assert not (tmp_path / "x").exists()


def test_the_cli_names_an_unknown_column_of_a_query(tmp_path, capsys):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[data]\ndataset = "chinchilla"\nquery = "los < 3"\n')
    assert main(["fit", str(recipe), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'los'" in err and "'loss'" in err
