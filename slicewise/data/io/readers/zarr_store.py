"""Zarr v2 / v3 (``.zarr``, or a folder holding ``.zarray`` / ``.zgroup`` / ``zarr.json``): a group needs
``key`` unless it holds exactly one array. An OME-Zarr (NGFF) image opens its level 0, ``"img.zarr:2"``
its level with dataset path ``2`` (:mod:`slicewise.data.ome_zarr`). Voxel size from the array attributes.

Missing chunks: zarr reads a chunk whose file is missing as the fill value, silently. Opening an array counts
its chunks against the store listing (:func:`warn_missing_chunks`) and warns in one line with the count,
unless the array or its group declares sparse data with the attribute ``"sparse": true`` (chunks left out on
purpose because they equal the fill value, as zarr-python does by default). slicewise writes every chunk of
its own stores (``write_empty_chunks``), so a missing chunk there is a lost file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from slicewise.data.io.checks import damaged
from slicewise.data.io.volume import Volume, attrs_voxel_size, check_channel_last
from slicewise.errors import InputError

log = logging.getLogger(__name__)

ZARR_SUFFIXES = (".zarr",)
ZARR_MARKERS = (".zarray", ".zgroup", "zarr.json")
SPARSE_ATTR = "sparse"
_warned: set[str] = set()


def _declares_sparse(attrs: Any) -> bool:
    try:
        return dict(attrs or {}).get(SPARSE_ATTR) is True
    except (TypeError, ValueError):
        return False


def warn_missing_chunks(arr: Any, source: str, group_attrs: Any = None) -> int:
    """The number of chunks of zarr array ``arr`` missing from its store (compared with the expected chunk keys);
    one warning line per source and process when it is not 0 and neither the array nor its group (``group_attrs``)
    declares ``"sparse": true``. Returns 0 for declared-sparse arrays and stores that cannot be listed."""
    if _declares_sparse(getattr(arr, "attrs", None)) or _declares_sparse(group_attrs):
        return 0
    try:
        total, present = int(arr.nchunks), int(arr.nchunks_initialized)
    except Exception:  # noqa: BLE001 - a store that cannot list its keys (N5 adaptors, ...): nothing to compare
        return 0
    missing = max(0, total - present)
    if missing and source not in _warned:
        _warned.add(source)
        log.warning(
            "%s: %d of %d chunks are missing and read as the fill value %s: restore the missing chunk files "
            '(an incomplete copy?), or set the attribute "sparse": true if they were left out on purpose',
            source,
            missing,
            total,
            getattr(arr, "fill_value", 0),
        )
    return missing


def _zarr_array_paths(group: Any) -> list[str]:
    import zarr

    if hasattr(group, "members"):
        return sorted(name for name, obj in group.members(max_depth=None) if isinstance(obj, zarr.Array))
    found: list[str] = []
    group.visititems(lambda name, obj: found.append(name) if isinstance(obj, zarr.Array) else None)
    return sorted(found)


def open_zarr(p: Path, key: str | None, store: Any = None) -> Volume:
    """Open array ``key`` of a Zarr store (or an NGFF level) lazily; ``store`` overrides the path (N5)."""
    import zarr

    from slicewise.data.ome_zarr import open_ngff_key

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
        reopen=(str(p), key) if store is None else None,
    )
