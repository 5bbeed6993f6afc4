"""Label maps read back from files with the offset they record.

:func:`open_label_map` opens a label file lazily with its (z, y, x) offset in the volume it was made from: a
``slicewise predict`` store (an NGFF / Zarr group or an HDF5 file with a ``labels`` array, read with
:func:`~slicewise.data.io.predictions.read_prediction`) gives its labels and recorded offset; any other label file
(``slicewise segment`` output, any volume :func:`~slicewise.data.io.readers.open_volume` reads) its ``offset``
attribute (Zarr / HDF5 attribute, TIFF metadata) when it has one, else (0, 0, 0).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from slicewise.data.io.formats import HDF5_SUFFIXES, TIFF_SUFFIXES, ZARR_SUFFIXES
from slicewise.data.io.integrity import tifffile_warnings
from slicewise.data.io.predictions import LABEL_KEY, PROB_KEY, read_prediction
from slicewise.data.io.readers import open_volume
from slicewise.errors import InputError
from slicewise.utils.inputs import check_input_path

__all__ = ["open_label_map"]

#: what :func:`_recorded_offset` returns for a ``slicewise predict`` store (labels and offset come from it); a
#: sentinel compared by identity, since a recorded offset may be an array (``==`` would compare elementwise).
_STORE = object()


def open_label_map(path: str | os.PathLike, key: str | None = None) -> tuple[Any, tuple[int, int, int]]:
    """A label file opened lazily and its (z, y, x) offset in voxels (see the module docstring).

    A predict store holding only probabilities is refused in one line naming ``slicewise segment``; an offset
    attribute that is not three voxel counts >= 0 is refused in one line naming the file. A file that cannot be
    read is reported by :func:`~slicewise.data.io.readers.open_volume`, in one line.
    """
    p = check_input_path(path, "labels")  # a FIFO / device / link loop: refused before tifffile or h5py open it
    try:
        found = _recorded_offset(p, key)
        if found is _STORE:
            return _store_labels(p)
    except (OSError, KeyError, ValueError, TypeError):
        found = None  # an unreadable file is reported by the reader below, in one line
    return open_volume(path, key=key), _offset(found, p)


def _recorded_offset(p: Path, key: str | None) -> Any:
    """The raw ``offset`` a label file records (None without one), or :data:`_STORE` for a predict store."""
    sfx = p.suffix.lower()
    if not p.exists():
        return None
    if sfx in ZARR_SUFFIXES and key is None:
        return _zarr_offset(p)
    if sfx in HDF5_SUFFIXES:
        return _hdf5_offset(p, key)
    if sfx in TIFF_SUFFIXES:
        return _tiff_offset(p)
    return None


def _zarr_offset(p: Path) -> Any:
    import zarr

    node = zarr.open(str(p), mode="r")
    return _STORE if isinstance(node, zarr.Group) else node.attrs.get("offset")


def _hdf5_offset(p: Path, key: str | None) -> Any:
    import h5py

    with h5py.File(p, "r") as f:
        if key is None and (LABEL_KEY in f or PROB_KEY in f):
            return _STORE
        ds = f[key] if key and key in f else f.get("data")
        return ds.attrs.get("offset") if ds is not None else None


def _tiff_offset(p: Path) -> Any:
    import tifffile

    with tifffile_warnings(), tifffile.TiffFile(p) as tif:
        md = (tif.shaped_metadata or [{}])[0] or {}
    meta = md.get("slicewise") or {}
    return md.get("offset") or (meta.get("offset") if isinstance(meta, dict) else None)


def _store_labels(p: Path) -> tuple[Any, tuple[int, int, int]]:
    pred = read_prediction(p)
    if pred.labels is None:
        raise InputError(
            f"{p} holds probabilities, not labels: make instance labels with `slicewise segment {p} labels.zarr` "
            f"(or predict with --output-kind labels) and evaluate those"
        )
    return pred.labels, tuple(int(v) for v in pred.offset)  # type: ignore[return-value]


def _offset(found: Any, p: Path) -> tuple[int, int, int]:
    """A recorded ``offset`` attribute (untrusted: any type, or its JSON text) as three voxel counts >= 0."""
    if found is None:
        return (0, 0, 0)
    try:
        if isinstance(found, (str, bytes)):
            found = json.loads(found)
        vals = [int(v) for v in found]
    except (TypeError, ValueError, OverflowError):
        raise InputError(
            f"{p} records an offset attribute {str(found)[:40]!r} that is not three voxel counts (z, y, x): "
            f"fix or remove the attribute"
        ) from None
    if len(vals) != 3 or min(vals) < 0:
        raise InputError(f"{p} records offset {vals}: expected three voxel counts >= 0 (z, y, x)")
    return tuple(vals)  # type: ignore[return-value]
