"""Safe results files: atomic writes, no silent overwrite, clear refusals on load."""

from __future__ import annotations

import xarray as xr
import numpy as np
import pytest

import bayescale as bs


def test_interrupted_save_leaves_the_previous_file_intact(fake_fit, tmp_path, monkeypatch):
    path = tmp_path / "fit.nc"
    fake_fit.save(path)
    before = path.read_bytes()

    def dies_midway(self, filename, *args, **kwargs):
        with open(filename, "wb") as fh:  # a partial write, then the process is interrupted
            fh.write(b"\x89HDF half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.DataTree, "to_netcdf", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        fake_fit.save(path, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.nc"]  # no temporary left over
    monkeypatch.undo()
    again = bs.load(path)
    assert np.array_equal(again.posterior["alpha"].values, fake_fit.posterior["alpha"].values)


def test_save_into_a_missing_folder_says_which(fake_fit, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        fake_fit.save(tmp_path / "nowhere" / "fit.nc")


def test_newer_format_is_refused_with_the_version(fake_fit, tmp_path):
    path = tmp_path / "fit.nc"
    fake_fit.save(path)
    idata = xr.open_datatree(path).load()
    idata["posterior"].attrs["bayescale_format"] = 99
    idata.to_netcdf(tmp_path / "newer.nc")
    with pytest.raises(ValueError, match="format 99"):
        bs.load(tmp_path / "newer.nc")


def test_a_format_1_results_file_is_converted_on_load(fake_fit, tmp_path):
    """bayescale 0.1 wrote format 1: no family in a scaling law's spec."""
    import hashlib
    import json

    fake_fit.save(tmp_path / "now.nc")
    tree = xr.open_datatree(tmp_path / "now.nc").load()
    old = {k: v for k, v in json.loads(tree["posterior"].attrs["spec"]).items() if k != "model"}
    text = json.dumps(old, sort_keys=True)
    tree["posterior"].attrs.update(bayescale_format=1, spec=text,
                                   spec_hash=hashlib.sha256(text.encode()).hexdigest())
    tree.to_netcdf(tmp_path / "v1.nc", engine="h5netcdf")
    back = bs.load(tmp_path / "v1.nc")
    assert back.spec["model"] == "scaling_law"
    np.testing.assert_allclose(back.optimal([1e21])["params_opt"].values,
                               fake_fit.optimal([1e21])["params_opt"].values, rtol=1e-12)


def test_a_format_1_fit_with_free_offsets_keeps_their_new_level_scale(tmp_path):
    """0.1 fits made before offsets summed to zero drew a new level with sd tau, not
    tau sqrt(1 + 1/k): loading one keeps that."""
    import hashlib
    import json

    import pandas as pd

    rng = np.random.default_rng(0)
    runs = bs.prepare(pd.DataFrame({"flops": np.repeat([1e18, 1e19, 1e20], 4),
                                    "loss": rng.uniform(2, 3, 12), "lr": ["a", "b"] * 6}))
    model = bs.ScalingLaw(runs, law="flops", offsets=["lr"], noise="normal")
    draws = {"E": np.full((1, 4000), 1.5), "A": np.full((1, 4000), 10.0),
             "alpha": np.full((1, 4000), 0.05), "sigma": np.full((1, 4000), 0.01),
             "lr_tau": np.full((1, 4000), 0.1), "lr_offset": np.zeros((1, 4000, 2))}
    draws |= bs.laws.get_law("flops").sampled_from(draws, model.spec["log_reference"])
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset(
        {k: (("chain", "draw", "lr") if v.ndim == 3 else ("chain", "draw"), v)
         for k, v in draws.items()}, coords={"lr": ["a", "b"]})})
    fit = bs.Fit.from_sampler(tree, spec=model.spec, runs=runs, sampler="fake", seed=0)
    fit.save(tmp_path / "now.nc")
    saved = xr.open_datatree(tmp_path / "now.nc").load()
    old = {k: v for k, v in json.loads(saved["posterior"].attrs["spec"]).items()
           if k not in ("model", "offsets_sum_to_zero", "version")}
    text = json.dumps(old, sort_keys=True)
    saved["posterior"].attrs.update(bayescale_format=1, spec=text,
                                    spec_hash=hashlib.sha256(text.encode()).hexdigest())
    saved.to_netcdf(tmp_path / "v1.nc", engine="h5netcdf")
    point = {"flops": [1e19], "lr": ["new"]}
    spread = {name: float(np.log(f.predict(point, random_seed=1)["loss"]).std())
              for name, f in (("now", fit), ("v1", bs.load(tmp_path / "v1.nc")))}
    assert spread["v1"] == pytest.approx(0.1, rel=0.05)
    assert spread["now"] == pytest.approx(0.1 * np.sqrt(1.5), rel=0.05)


# -- integrity: the data of every group are checked against the checksums recorded at save ----
def _tampered(fit, tmp_path, edit):
    """Save ``fit``, edit the saved tree with ``edit(tree)`` and write it back as another file
    (the recorded attrs, checksums included, travel with it)."""
    fit.save(tmp_path / "fit.nc")
    tree = xr.open_datatree(tmp_path / "fit.nc", engine="h5netcdf").load()
    edit(tree)
    path = tmp_path / "tampered.nc"
    tree.to_netcdf(path, engine="h5netcdf")
    return path


def _scale_alpha(tree):
    tree["posterior"]["alpha"] = tree["posterior"]["alpha"] * 10


def _nan_draws(tree):
    alpha = tree["posterior"]["alpha"].copy()
    alpha[0, :10] = np.nan
    tree["posterior"]["alpha"] = alpha


def _shift_observed(tree):
    tree["observed_data"]["log_loss"] = tree["observed_data"]["log_loss"] + 0.01


def _drop_a_run(tree):
    tree["constant_data"]["params"] = tree["constant_data"]["params"] * 2


@pytest.mark.parametrize(("edit", "named"), [
    (_scale_alpha, "'posterior'"), (_nan_draws, "'posterior'"),
    (_shift_observed, "'observed_data'"), (_drop_a_run, "'constant_data'")],
    ids=["draws-x10", "nan-draws", "observed-data", "constant-data"])
def test_load_refuses_data_that_do_not_match_their_checksum(fake_fit, tmp_path, edit, named):
    path = _tampered(fake_fit, tmp_path, edit)
    with pytest.raises(ValueError, match=f"tampered.nc: the data of group.*{named}.*checksum"):
        bs.load(path)


def test_an_untouched_file_passes_its_checksums_and_a_rewrite_does_too(fake_fit, tmp_path):
    path = _tampered(fake_fit, tmp_path, lambda tree: None)  # read and written back unchanged
    again = bs.load(path)
    assert np.array_equal(again.posterior["alpha"].values, fake_fit.posterior["alpha"].values)
    recorded = xr.open_datatree(path).load()["posterior"].attrs["checksums"]
    import json

    assert set(json.loads(recorded)) == set(fake_fit.idata.children)  # every group
    assert "checksums" not in fake_fit.idata["posterior"].attrs  # saving leaves the fit alone


def test_a_file_saved_before_checksums_still_loads(fake_fit, tmp_path):
    def forget(tree):
        del tree["posterior"].attrs["checksums"]

    path = _tampered(fake_fit, tmp_path, forget)
    assert isinstance(bs.load(path), bs.Fit)


def test_a_rehashed_spec_that_is_not_json_names_the_file(fake_fit, tmp_path):
    import hashlib

    def garble(tree):
        text = "{not json"
        tree["posterior"].attrs.update(spec=text,
                                       spec_hash=hashlib.sha256(text.encode()).hexdigest())

    path = _tampered(fake_fit, tmp_path, garble)
    with pytest.raises(ValueError, match="tampered.nc: the spec recorded in the file is not "
                                         "valid JSON"):
        bs.load(path)


def test_saved_files_take_their_mode_from_the_umask(fake_fit, tmp_path):
    import os

    previous = os.umask(0o027)
    try:
        fake_fit.save(tmp_path / "fit.nc")
    finally:
        os.umask(previous)
    assert (tmp_path / "fit.nc").stat().st_mode & 0o777 == 0o640


def test_a_save_removes_the_temporary_files_of_killed_saves(fake_fit, tmp_path):
    import os
    import subprocess
    import sys

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)
    stale = tmp_path / f".fit.nc.bayescale-tmp-{dead}-k3j2h1"
    stale.write_bytes(b"\x89HDF half a file")  # a save killed by SIGKILL
    live = tmp_path / f".fit.nc.bayescale-tmp-{os.getppid()}-a1b2c3"
    live.write_bytes(b"\x89HDF being written")  # another process's save, under way
    fake_fit.save(tmp_path / "fit.nc")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["fit.nc", live.name])
