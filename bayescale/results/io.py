"""Saving and loading fits: netCDF files written atomically and checked on the way back."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import xarray as xr

from bayescale.inference.trees import CHECKSUMS_ATTR, checksums
from bayescale.model.fit import FORMAT_VERSION, Fit, family_of

__all__ = ["load"]


def load(path):
    """Load a fit saved by :meth:`bayescale.Fit.save` (any model family).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a readable netCDF file, was not written by bayescale, was written
        by a newer file format, its spec does not match its recorded hash or is not JSON, or
        the data of a group (posterior draws, observed or constant data, ...) do not match the
        checksum recorded when it was saved (files saved before checksums load unchecked).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results file at {path}")
    try:
        with xr.open_datatree(path, engine="h5netcdf") as tree:
            idata = tree.load().copy()
    except Exception as err:  # noqa: BLE001 - any reader failure means the file is unusable
        raise ValueError(f"{path} is not a readable netCDF results file ({type(err).__name__}: "
                         f"{err})") from None
    groups = list(idata.children)
    attrs = idata["posterior"].attrs if "posterior" in groups else {}
    if "bayescale_format" not in attrs or "spec" not in attrs:
        raise ValueError(f"{path} was not written by bayescale (no 'bayescale_format'/'spec' "
                         "attrs on its posterior)")
    if int(attrs["bayescale_format"]) > FORMAT_VERSION:
        raise ValueError(f"{path} has results format {attrs['bayescale_format']}, newer than "
                         f"this bayescale reads ({FORMAT_VERSION}); upgrade bayescale")
    text = attrs["spec"]
    if hashlib.sha256(text.encode()).hexdigest() != attrs.get("spec_hash"):
        raise ValueError(f"{path}: the model spec does not match its recorded hash; the file was "
                         "edited or corrupted")
    missing = [g for g in ("posterior", "observed_data", "constant_data") if g not in groups]
    if missing:
        raise ValueError(f"{path} lacks group(s) {missing}")
    _check_data(path, idata)
    spec = _upgrade(_json(path, text, "spec"), int(attrs["bayescale_format"]))
    family_of(spec)  # a family this bayescale knows (ValueError naming the known ones)
    return Fit(idata, spec)


def _json(path: Path, text, what: str):
    """``text`` parsed as JSON, or a ValueError naming the file and the attr."""
    try:
        return json.loads(text)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: the {what} recorded in the file is not valid JSON ({err}); "
                         "the file was edited or corrupted") from None


def _check_data(path: Path, idata: xr.DataTree) -> None:
    """Refuse a file whose groups' data differ from the checksums recorded at save (which are
    dropped from the loaded tree: a loaded fit is the fit that was saved)."""
    recorded = idata["posterior"].attrs.pop(CHECKSUMS_ATTR, None)
    if recorded is None:  # saved by a bayescale without checksums
        return
    recorded = _json(path, recorded, "checksums")
    if not isinstance(recorded, dict):
        raise ValueError(f"{path}: the checksums recorded in the file are not a mapping")
    now = checksums(idata)
    changed = sorted(set(recorded) ^ set(now)) + sorted(
        g for g in set(recorded) & set(now) if recorded[g] != now[g])
    if changed:
        raise ValueError(f"{path}: the data of group(s) {changed} do not match the checksum "
                         "recorded when the file was saved; the file was edited or corrupted")


def _upgrade(spec: dict, version: int) -> dict:
    """A spec of an older results format in the current one (format 1: name the family)."""
    if version < 2:
        spec = {"model": "scaling_law"} | spec
        if spec["model"] == "scaling_law" and spec.get("offsets"):
            spec.setdefault("offsets_sum_to_zero", False)  # offsets before they summed to 0
    return spec
