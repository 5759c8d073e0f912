"""Results trees (``xarray.DataTree``): a group as a Dataset, replacing groups, and the
atomic write of a tree to netCDF. Needs no model, so a fit's ``save`` calls down to it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import xarray as xr

__all__ = ["group", "set_groups", "save_idata"]


def group(tree: xr.DataTree, name: str) -> xr.Dataset:
    """Group ``name`` of a results tree as a Dataset (KeyError naming the groups it has)."""
    if name not in tree.children:
        raise KeyError(f"the results have no {name!r} group; they have {list(tree.children)}")
    return tree[name].to_dataset()


def set_groups(tree: xr.DataTree, **datasets: xr.Dataset) -> None:
    """Put each Dataset into ``tree`` as the group of its keyword, replacing any there."""
    for name, ds in datasets.items():
        if name in tree.children:
            del tree[name]
        tree[name] = xr.DataTree(ds)


def save_idata(idata: xr.DataTree, path, *, overwrite: bool = False) -> Path:
    """Write ``idata`` to ``path`` via a temporary file in the same folder and a rename."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (CLI: --force) to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        idata.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
