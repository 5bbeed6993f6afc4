"""N5 (``.n5``): only through zarr-python 2 (``zarr.N5Store``); zarr 3 dropped N5, so with zarr 3 an N5
path is a one-line error suggesting a conversion to Zarr or HDF5."""

from __future__ import annotations

from pathlib import Path

from slicewise.data.io.readers.zarr_store import open_zarr
from slicewise.data.io.volume import Volume
from slicewise.errors import InputError


def open_n5(p: Path, key: str | None) -> Volume:
    """Open an N5 container through zarr-python 2, or refuse in one line with zarr 3."""
    import zarr

    if not hasattr(zarr, "N5Store"):
        raise InputError(
            f"N5 ({p}) is not supported with the installed zarr {zarr.__version__} (zarr 3 dropped N5Store): "
            f"convert it to Zarr or HDF5 first (e.g. with zarr<3 or z5py) and pass that file"
        )
    return open_zarr(p, key, store=zarr.N5Store(str(p)))  # pragma: no cover - zarr 2 only
