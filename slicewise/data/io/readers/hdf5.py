"""HDF5 (``.h5`` / ``.hdf5`` / ``.hdf``): dataset ``key`` (also ``"file.h5:key"`` or ``"file.h5/key"``);
without a key the file must hold exactly one dataset. Voxel size from the dataset attributes."""

from __future__ import annotations

from pathlib import Path

from slicewise.data.io.checks import damaged
from slicewise.data.io.volume import Volume, attrs_voxel_size
from slicewise.errors import InputError

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")


def open_hdf5(p: Path, key: str | None) -> Volume:
    """Open dataset ``key`` of an HDF5 file lazily (the file stays open until :meth:`Volume.close`)."""
    import h5py

    try:
        f = h5py.File(p, "r")
    except OSError as err:
        raise InputError(f"cannot read {p} as HDF5 ({str(err).splitlines()[0][:160]}): the file is damaged, incomplete "
                         f"or not HDF5: re-export or re-download it") from None
    names: list[str] = []
    try:
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    except Exception as err:
        f.close()
        raise damaged(p, err) from None
    if key is None:
        if len(names) != 1:
            f.close()
            raise InputError(f"{p} holds {len(names)} datasets ({', '.join(names) or 'none'}): "
                             f"choose one with key=... or '{p}:KEY'")
        key = names[0]
    if key not in f or not isinstance(f[key], h5py.Dataset):
        f.close()
        raise InputError(f"{p} has no dataset {key!r}: available datasets are {', '.join(names) or 'none'}")
    ds = f[key]
    try:
        return Volume(ds, voxel_size=attrs_voxel_size(ds.attrs), source=f"{p}:{key}",
                      add_depth=ds.ndim == 2, closer=f, reopen=(str(p), key))
    except InputError:
        f.close()
        raise

