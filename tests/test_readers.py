"""Readers: run tables from files, and OPDA tuning logs (written here in that format)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import bayescale as bs

HYPER = {"n_embd": 256, "n_layer": 4, "n_head": 4, "sequence_length": 512, "total_steps": 1000,
         "warmup_steps": 100, "lr": 3e-4, "beta1": 0.9, "beta2": 0.95, "weight_decay": 0.1,
         "dropout": 0.0}


def _run(iteration, nan, losses, **hyper):
    curve = [{"step": 500 * (i + 1), "tokens": 500 * (i + 1) * 512 * 8, "lr": 1e-4 * (i + 1),
              "train_raw_loss": None if nan and i else loss + 0.1, "val_raw_loss": loss,
              "val_weight_averaged_loss": None if loss is None else loss - 0.05}
             for i, loss in enumerate(losses)]
    return {"iteration": iteration, "nan_train_loss": nan,
            "hyperparameters": HYPER | hyper, "learning_curve": curve}


@pytest.fixture
def opda_file(tmp_path):
    records = [_run(0, False, [4.0, 3.5]), _run(1, True, [4.2, None]),
               _run(2, False, [3.9, 3.3], n_embd=512, lr=1e-3)]
    path = tmp_path / "tuning.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def test_read_opda_gives_one_row_per_checkpoint_and_flags_nan_runs(opda_file):
    runs = bs.read_opda(opda_file)
    assert len(runs) == 6
    assert list(runs.columns[:4]) == ["params", "tokens", "flops", "loss"]
    assert runs["run"].tolist() == [0, 0, 1, 1, 2, 2]
    assert runs["step"].tolist() == [500, 1000] * 3
    assert runs.attrs["nan_runs"] == [1]
    assert runs["nan_train_loss"].tolist() == [False, False, True, True, False, False]
    np.testing.assert_allclose(runs["params"], 12 * 4 * np.array([256, 256, 256, 256, 512, 512]) ** 2.0)
    np.testing.assert_allclose(runs["tokens"], [500 * 512 * 8, 1000 * 512 * 8] * 3)
    np.testing.assert_allclose(runs["flops"], 6 * runs["params"] * runs["tokens"])
    assert runs["loss"].iloc[:2].tolist() == [4.0, 3.5] and np.isnan(runs["loss"].iloc[3])
    assert runs.loc[runs["run"] == 2, "lr"].tolist() == [1e-3, 1e-3]      # the run's peak rate
    assert runs["lr_at_step"].iloc[:2].tolist() == [1e-4, 2e-4]           # the schedule's rate
    assert runs["val_weight_averaged_loss"].iloc[1] == pytest.approx(3.45)


def test_nan_runs_are_refused_by_name_until_filtered(opda_file):
    runs = bs.read_opda(opda_file)
    with pytest.raises(ValueError, match="'loss'.*NaN"):
        bs.ScalingLaw(runs, law="chinchilla")
    kept = runs[~runs["nan_train_loss"]]
    assert len(kept) == 4
    bs.ScalingLaw(kept, law="chinchilla")  # builds: four finite checkpoints at two sizes


def test_read_opda_other_metric_and_bad_files(opda_file, tmp_path):
    runs = bs.read_opda(opda_file, loss="val_weight_averaged_loss")
    assert runs["loss"].iloc[0] == pytest.approx(3.95)
    with pytest.raises(ValueError, match="'no_such_loss'"):
        bs.read_opda(opda_file, loss="no_such_loss")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(_run(0, False, [4.0])) + "\n{not json\n")
    with pytest.raises(ValueError, match="line 2"):
        bs.read_opda(broken)
    record = _run(0, False, [4.0])
    del record["hyperparameters"]["n_head"]
    lacking = tmp_path / "lacking.jsonl"
    lacking.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="n_head"):
        bs.read_opda(lacking)
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl"):
        bs.read_opda(tmp_path / "nowhere.jsonl")


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl", ".parquet"])
def test_read_runs_every_format(tmp_path, suffix):
    table = pd.DataFrame({"N": [1e8, 2e8, 4e8], "C": [1e18, 4e18, 1e19], "val": [3.1, 2.9, 2.7],
                          "seed": [0, 1, 2]})
    path = tmp_path / f"runs{suffix}"
    {".csv": lambda: table.to_csv(path, index=False),
     ".json": lambda: table.to_json(path, orient="records"),
     ".jsonl": lambda: table.to_json(path, orient="records", lines=True),
     ".parquet": lambda: table.to_parquet(path)}[suffix]()
    runs = bs.read_runs(path, params="N", flops="C", loss="val")
    np.testing.assert_allclose(runs["tokens"], table["C"] / (6 * table["N"]))
    assert runs["seed"].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="'D'"):
        bs.read_runs(path, params="N", tokens="D", loss="val")
