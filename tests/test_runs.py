"""bayescale.prepare: canonical columns, derivation of N, D, C from C = k N D, kept columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayescale as bs

N = np.array([1e8, 4e8, 1.6e9])
D = np.array([2e9, 8e9, 3.2e10])
LOSS = np.array([3.2, 2.9, 2.6])


def table(**columns) -> pd.DataFrame:
    return pd.DataFrame(columns)


def test_flops_derived_from_params_and_tokens():
    runs = bs.prepare(table(params=N, tokens=D, loss=LOSS))
    assert list(runs.columns) == ["params", "tokens", "flops", "loss"]
    np.testing.assert_allclose(runs["flops"], [6 * 1e8 * 2e9, 6 * 4e8 * 8e9, 6 * 1.6e9 * 3.2e10],
                               rtol=1e-15)
    np.testing.assert_array_equal(runs["params"], N)
    np.testing.assert_array_equal(runs["tokens"], D)
    assert runs.attrs["derived"] == "flops"


def test_tokens_derived_from_params_and_flops():
    c = np.array([1.2e18, 1.92e19, 3.072e20])  # = 6 N D
    runs = bs.prepare(table(params=N, flops=c, loss=LOSS))
    np.testing.assert_allclose(runs["tokens"], D, rtol=1e-12)
    np.testing.assert_array_equal(runs["flops"], c)
    assert runs.attrs["derived"] == "tokens"


def test_params_derived_from_tokens_and_flops():
    c = np.array([1.2e18, 1.92e19, 3.072e20])
    runs = bs.prepare(table(tokens=D, flops=c, loss=LOSS))
    np.testing.assert_allclose(runs["params"], N, rtol=1e-12)
    assert runs.attrs["derived"] == "params"
    assert list(runs.columns) == ["params", "tokens", "flops", "loss"]


@pytest.mark.parametrize("k", [2.0, 8.0, 7.5])
def test_custom_flops_per_param_token(k):
    c = np.array([1e18, 1e19, 1e20])
    runs = bs.prepare(table(params=N, flops=c, loss=LOSS), flops_per_param_token=k)
    np.testing.assert_allclose(runs["tokens"], c / (k * N), rtol=1e-12)
    assert runs.attrs["flops_per_param_token"] == k
    runs = bs.prepare(table(params=N, tokens=D, loss=LOSS), flops_per_param_token=k)
    np.testing.assert_allclose(runs["flops"], k * N * D, rtol=1e-15)


def test_all_three_given_are_kept_as_is():
    """OLMo's FLOPs count more than 6 N D: given C is never overwritten by a derivation."""
    c = 7.3 * N * D
    runs = bs.prepare(table(params=N, tokens=D, flops=c, loss=LOSS))
    np.testing.assert_array_equal(runs["flops"], c)
    assert runs.attrs["derived"] is None


def test_user_columns_renamed_and_others_kept_in_order():
    df = pd.DataFrame({"name": ["a", "b", "c"], "Model Size": N, "lr": [1e-3, 3e-4, 1e-4],
                       "Training FLOP": [1e18, 1e19, 1e20], "val_loss": LOSS,
                       "rerun": [False, True, False]}, index=[10, 11, 12])
    runs = bs.prepare(df, params="Model Size", flops="Training FLOP", loss="val_loss")
    assert list(runs.columns) == ["params", "tokens", "flops", "loss", "name", "lr", "rerun"]
    np.testing.assert_array_equal(runs["params"], N)
    np.testing.assert_array_equal(runs["flops"], [1e18, 1e19, 1e20])
    np.testing.assert_array_equal(runs["loss"], LOSS)
    pd.testing.assert_frame_equal(runs[["name", "lr", "rerun"]], df[["name", "lr", "rerun"]])
    assert list(runs.index) == [10, 11, 12]
    # the caller's table is untouched
    assert list(df.columns) == ["name", "Model Size", "lr", "Training FLOP", "val_loss", "rerun"]


def test_canonical_names_found_without_arguments():
    runs = bs.prepare(table(loss=LOSS, flops=[1e18, 1e19, 1e20], params=N))
    assert list(runs.columns) == ["params", "tokens", "flops", "loss"]
    np.testing.assert_allclose(runs["tokens"], np.array([1e18, 1e19, 1e20]) / (6 * N), rtol=1e-12)


def test_integer_columns_become_float():
    runs = bs.prepare(table(params=[10**8, 10**9], tokens=[2 * 10**9, 2 * 10**10], loss=[3, 2]))
    assert all(runs[c].dtype == np.float64 for c in ("params", "tokens", "flops", "loss"))
    np.testing.assert_array_equal(runs["flops"], [1.2e18, 1.2e20])


def test_flops_only_table():
    df = table(C=[1e18, 1e19, 1e20], L=LOSS, batch=[64, 128, 256])
    runs = bs.prepare(df, flops="C", loss="L")
    assert list(runs.columns) == ["flops", "loss", "batch"]
    assert runs.attrs["derived"] is None
    np.testing.assert_array_equal(runs["flops"], [1e18, 1e19, 1e20])


def test_attrs_record_derivation_and_factor():
    runs = bs.prepare(table(params=N, tokens=D, loss=LOSS))
    assert runs.attrs["derived"] == "flops"
    assert runs.attrs["flops_per_param_token"] == 6.0


@pytest.mark.parametrize("given", [{"params": N}, {"tokens": D}])
def test_one_of_params_and_tokens_alone_is_not_enough(given):
    with pytest.raises(ValueError, match=r"found only \['(params|tokens)'\]"):
        bs.prepare(table(**given, loss=LOSS))


@pytest.mark.parametrize("k, error", [(0.0, ValueError), (-6.0, ValueError),
                                      (float("nan"), ValueError), (float("inf"), ValueError),
                                      ("6", TypeError), (True, TypeError)])
def test_bad_flops_per_param_token(k, error):
    with pytest.raises(error, match=r"flops_per_param_token .*" + repr(k).replace("(", r"\(")
                       .replace(")", r"\)")):
        bs.prepare(table(params=N, tokens=D, loss=LOSS), flops_per_param_token=k)


def test_not_a_dataframe():
    with pytest.raises(TypeError, match="df must be a pandas DataFrame, got dict"):
        bs.prepare({"params": N, "tokens": D, "loss": LOSS})


def test_integers_beyond_int64_read_as_object_are_numbers(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("params,flops,loss\n1e8,7960000000000000000000,3.1\n"
                    "2e8,3351310684600320,2.9\n")
    df = pd.read_csv(path)
    assert df["flops"].dtype == object  # what pandas does with integers past int64
    runs = bs.prepare(df, params="params", flops="flops", loss="loss")
    assert runs["flops"].dtype == np.float64
    np.testing.assert_array_equal(runs["flops"], [7.96e21, 3351310684600320.0])


def test_an_object_column_with_a_real_non_number_is_still_refused():
    df = pd.DataFrame({"params": [1e8, 2e8], "flops": [7960000000000000000000, "n/a"],
                       "loss": [3.1, 2.9]})
    with pytest.raises(TypeError, match=r"column 'flops' \(flops\) must be numeric; it holds 'n/a'"):
        bs.prepare(df, params="params", flops="flops", loss="loss")
