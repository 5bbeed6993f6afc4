"""Zarr v2 / v3 (``.zarr``, or a folder holding ``.zarray`` / ``.zgroup`` / ``zarr.json``): a group needs
``key`` unless it holds exactly one array. An OME-Zarr (NGFF) image opens its level 0, ``"img.zarr:2"``
its level with dataset path ``2`` (:mod:`slicewise.data.io.ngff`). Voxel size from the array attributes.
Opening an array counts the chunks missing from the store and warns about them
(:func:`slicewise.data.io.integrity.warn_missing_chunks`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slicewise.data.io.integrity import damaged, warn_missing_chunks, zarr_listing
from slicewise.data.io.ngff import open_ngff_key
from slicewise.data.io.volume import Volume, attrs_voxel_size, check_channel_last
from slicewise.errors import InputError


def _zarr_array_paths(group: Any) -> list[str]:
    import zarr

    if hasattr(group, "members"):
        with zarr_listing():
            members = group.members(max_depth=None)
        return sorted(name for name, obj in members if isinstance(obj, zarr.Array))
    found: list[str] = []
    group.visititems(lambda name, obj: found.append(name) if isinstance(obj, zarr.Array) else None)
    return sorted(found)


def open_zarr(p: Path, key: str | None, store: Any = None) -> Volume:
    """Open array ``key`` of a Zarr store (or an NGFF level) lazily; ``store`` overrides the path (N5)."""
    import zarr

    ngff = open_ngff_key(p, key) if store is None else None
    if ngff is not None:
        return ngff
    try:
        node = zarr.open(store if store is not None else str(p), mode="r")
    except Exception as err:  # zarr raises several types for a folder that is not a store
        raise InputError(
            f"cannot open {p} as Zarr ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from None
    try:
        return _zarr_volume(p, key, node, store)
    except (InputError, MemoryError):
        raise
    except Exception as err:  # unreadable metadata or attributes inside the store
        raise damaged(p, err) from None


def _zarr_volume(p: Path, key: str | None, node: Any, store: Any) -> Volume:
    import zarr

    if isinstance(node, zarr.Array):
        if key:
            raise InputError(f"{p} is a single Zarr array: it has no key {key!r}")
        arr = node
    else:
        names = _zarr_array_paths(node)
        if key is None:
            if len(names) != 1:
                raise InputError(
                    f"{p} holds {len(names)} arrays ({', '.join(names) or 'none'}): "
                    f"choose one with key=... or '{p}/KEY'"
                )
            key = names[0]
        if key not in names:
            raise InputError(f"{p} has no array {key!r}: available arrays are {', '.join(names) or 'none'}")
        arr = node[key]
    src = f"{p}/{key}" if key else str(p)
    check_channel_last(arr.shape, src)
    warn_missing_chunks(arr, src, None if isinstance(node, zarr.Array) else node.attrs)
    return Volume(
        arr,
        voxel_size=attrs_voxel_size(dict(arr.attrs)),
        source=src,
        add_depth=arr.ndim == 2,
        reopen=(open_zarr, (p, key)) if store is None else None,
    )
