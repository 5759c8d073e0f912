"""Results trees (``xarray.DataTree``): a group as a Dataset, replacing groups, checksums of
the groups' data, and the atomic write of a tree to netCDF. Needs no model, so a fit's
``save`` calls down to it."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

__all__ = ["group", "set_groups", "save_idata", "checksums", "dataset_digest", "CHECKSUMS_ATTR",
           "file_mode", "leftovers", "temporary_name"]

#: The posterior attr holding the JSON ``{group: sha256}`` of every group of a saved tree.
CHECKSUMS_ATTR = "checksums"
#: numpy dtype kinds and the dtype their values are hashed in (what survives netCDF).
_CANONICAL = {"b": "u1", "i": "<i8", "u": "<u8", "f": "<f8", "c": "<c16"}
#: What marks bayescale's temporary and set-aside paths: ``.<name>.bayescale-<kind>-<pid>...``.
_TAG = "bayescale"


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


def _value_bytes(values) -> bytes:
    """The values of an array in a form that a netCDF round trip keeps: numbers in one
    little-endian dtype per kind, strings as JSON, dates as their integer ticks."""
    array = np.asarray(values)
    kind = array.dtype.kind
    if kind in "mM":
        array = array.view("<i8")
    elif kind in _CANONICAL:
        array = array.astype(_CANONICAL[kind])
    else:
        text = [v.decode() if isinstance(v, bytes) else str(v) for v in array.ravel()]
        return json.dumps(text).encode()
    return kind.encode() + np.ascontiguousarray(array).tobytes()


def checksums(tree: xr.DataTree) -> dict[str, str]:
    """SHA-256 of every group of ``tree``: the names, dims, shapes and values of its data and
    coordinate variables, in name order (attrs are not covered: the spec has its own hash)."""
    return {name: dataset_digest(tree[name].to_dataset()) for name in sorted(tree.children)}


def dataset_digest(ds: xr.Dataset) -> str:
    """SHA-256 of the names, dims, shapes and values of ``ds``'s data and coordinate
    variables, in name order (attrs are not covered)."""
    digest = hashlib.sha256()
    for var in sorted(map(str, ds.variables)):
        da = ds[var]
        header = json.dumps([var, list(map(str, da.dims)), list(da.shape)])
        digest.update(header.encode() + b"\0" + _value_bytes(da.values) + b"\0")
    return digest.hexdigest()


def file_mode() -> int:
    """The mode a new file gets from the process's umask (``0o666 & ~umask``)."""
    try:
        with open("/proc/self/status") as status:  # reading it does not change the umask
            mask = next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def temporary_name(target: Path, kind: str = "tmp") -> Path:
    """The path beside ``target`` where this process writes it (``kind`` "tmp") or sets an
    old one aside ("old"): ``.<name>.bayescale-<kind>-<pid>``."""
    return target.parent / f".{target.name}.{_TAG}-{kind}-{os.getpid()}"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # not being written now: a leftover of an earlier try of this process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def leftovers(target) -> list[tuple[str, Path]]:
    """(kind, path) of what writes of ``target`` left beside it in processes that are gone
    (killed outright: SIGKILL, a power cut)."""
    target = Path(target)
    name = "".join(f"[{c}]" if c in "*?[" else c for c in target.name)  # taken literally
    out = []
    for path in sorted(target.parent.glob(f".{name}.{_TAG}-*-*")):
        kind, pid = (path.name[len(target.name) + len(_TAG) + 3:].split("-") + [""])[:2]
        if kind in ("tmp", "old") and pid.isdigit() and not _alive(int(pid)):
            out.append((kind, path))
    return out


def save_idata(idata: xr.DataTree, path, *, overwrite: bool = False) -> Path:
    """Write ``idata`` to ``path`` via a temporary file in the same folder and a rename.

    The posterior's attrs record the :func:`checksums` of every group (what
    :func:`bayescale.load` verifies); the file's mode follows the umask. Temporary files
    that killed writes of ``path`` left are removed.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (CLI: --force) to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {path.parent} does not exist")
    for _, stale in leftovers(path):
        if stale.is_file():
            stale.unlink(missing_ok=True)
    tree = idata.copy(deep=False)
    if "posterior" in tree.children:
        tree["posterior"].attrs[CHECKSUMS_ATTR] = json.dumps(checksums(tree), sort_keys=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{temporary_name(path).name}-", dir=path.parent)
    os.close(fd)
    try:
        tree.to_netcdf(tmp, engine="h5netcdf")
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
