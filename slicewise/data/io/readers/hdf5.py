"""HDF5 (``.h5`` / ``.hdf5`` / ``.hdf``): dataset ``key`` (also ``"file.h5:key"`` or ``"file.h5/key"``);
without a key the file must hold exactly one dataset. Voxel size from the dataset attributes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slicewise.data.io.integrity import damaged
from slicewise.data.io.volume import Volume, attrs_voxel_size, check_channel_last
from slicewise.errors import InputError


def check_contained(f: Any, key: str, p: Path) -> None:
    """Refuse (one line) a dataset ``key`` of the open HDF5 file ``f`` that reads another file: an external link or a
    virtual dataset with sources elsewhere (metadata never leads out of its container; a missing source file
    would read as fill values, silently)."""
    import h5py

    try:
        link = f.get(key, getlink=True)
    except (KeyError, ValueError, TypeError):
        return
    if isinstance(link, h5py.ExternalLink):
        raise InputError(
            f"{p}: dataset {key!r} is an external link to {link.filename}:{link.path}, outside this file: "
            f"open that file itself"
        )
    obj = f.get(key)
    if isinstance(obj, h5py.Dataset) and obj.is_virtual and any(str(s.file_name) != "." for s in obj.virtual_sources()):
        raise InputError(
            f"{p}: dataset {key!r} is a virtual dataset reading other files (a missing one would read as "
            f"fill values): copy the data into one file (e.g. h5repack) and open that"
        )


def open_hdf5(p: Path, key: str | None) -> Volume:
    """Open dataset ``key`` of an HDF5 file lazily (the file stays open until :meth:`Volume.close`)."""
    import h5py

    try:
        f = h5py.File(p, "r")
    except OSError as err:
        raise InputError(
            f"cannot read {p} as HDF5 ({str(err).splitlines()[0][:160]}): the file is damaged, incomplete "
            f"or not HDF5: re-export or re-download it"
        ) from None
    names: list[str] = []
    try:
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    except Exception as err:
        f.close()
        raise damaged(p, err) from None
    if key is None:
        if len(names) != 1:
            f.close()
            raise InputError(
                f"{p} holds {len(names)} datasets ({', '.join(names) or 'none'}): choose one with key=... or '{p}:KEY'"
            )
        key = names[0]
    try:
        check_contained(f, key, p)
    except InputError:
        f.close()
        raise
    if key not in f or not isinstance(f[key], h5py.Dataset):
        f.close()
        raise InputError(f"{p} has no dataset {key!r}: available datasets are {', '.join(names) or 'none'}")
    ds = f[key]
    try:
        check_channel_last(ds.shape, f"{p}:{key}")
        return Volume(
            ds,
            voxel_size=attrs_voxel_size(ds.attrs),
            source=f"{p}:{key}",
            add_depth=ds.ndim == 2,
            closer=f,
            reopen=(open_hdf5, (p, key)),
        )
    except InputError:
        f.close()
        raise
