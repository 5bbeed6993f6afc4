"""Writing volumes: :func:`write_volume` (format by suffix) and :func:`create_zarr` (an empty Zarr to fill).

TIFF (zlib, one page per slice, voxel size in the JSON description), HDF5 (gzip, chunked, default key
``"data"``), Zarr **format 2** (readable by zarr-python 2 and 3, napari, neuroglancer and PyTorch
Connectomics; attribute ``resolution``), and a folder of PNG slices (``slice_0000.png`` …) for a path
without suffix (uint8/uint16 only). Every write goes through :func:`slicewise.data.io.outputs.atomic_path`, except
adding a dataset to an *existing* HDF5 file: that file is modified in place, the dataset is written under
a temporary name and renamed to ``key`` only when complete (other datasets are untouched).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slicewise.data.io.coerce import as_volume
from slicewise.data.io.outputs import atomic_path
from slicewise.data.io.readers import (
    HDF5_SUFFIXES,
    N5_SUFFIXES,
    TIFF_SUFFIXES,
    ZARR_SUFFIXES,
    split_container_key,
)
from slicewise.data.io.volume import Volume, slab_depth
from slicewise.errors import InputError
from slicewise.utils.atomic import reserve_space

WRITE_SUPPORTED = ".tif/.tiff, .h5/.hdf5/.hdf (with key), .zarr, or a path without suffix (folder of PNG slices)"


def _default_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (1, min(shape[1], 512) or 1, min(shape[2], 512) or 1, *shape[3:])


def _normalize_chunks(chunks: Sequence[int] | None, shape: tuple[int, ...]) -> tuple[int, ...]:
    if chunks is None:
        return _default_chunks(shape)
    c = [int(v) for v in chunks] + list(shape[len(chunks) :])
    if len(c) != len(shape) or any(v < 1 for v in c):
        raise InputError(f"chunks {tuple(chunks)} do not fit a volume of shape {shape}: give positive (z, y, x) sizes")
    return tuple(min(v, max(n, 1)) for v, n in zip(c, shape))


def _is_zarr_v3_api() -> bool:
    import zarr

    return int(zarr.__version__.split(".")[0]) >= 3


def create_zarr(
    path: str | os.PathLike,
    shape: Sequence[int],
    dtype: Any,
    chunks: Sequence[int] | None = None,
    voxel_size: Sequence[float] | None = None,
    key: str | None = None,
    fill_value: Any = 0,
    overwrite: bool = False,
) -> Any:
    """Create an empty on-disk Zarr (format 2) array to be filled chunk by chunk; returns the zarr array.

    This writes directly at ``path`` (no atomic rename): :func:`write_volume` creates it inside
    ``with atomic_path(final) as tmp: arr = create_zarr(tmp, ...)`` and fills it slab by slab, and the
    rename at the end of that block publishes the finished array. Prediction stores (OME-Zarr with
    pyramids and resume state) are created by :mod:`slicewise.data.io.stores`, not here. ``key`` puts the
    array in a group at that path;
    ``voxel_size`` (z, y, x, nm) goes to the attribute ``resolution``.
    """
    import zarr

    shape = tuple(int(s) for s in shape)
    chunks = _normalize_chunks(chunks, shape)
    if Path(path).exists() and not overwrite:
        raise InputError(f"output {path} already exists: pass --overwrite (overwrite=True) or choose another path")
    kwargs: dict[str, Any] = dict(shape=shape, chunks=chunks, dtype=np.dtype(dtype), fill_value=fill_value)
    if _is_zarr_v3_api():
        kwargs["config"] = {"write_empty_chunks": True}  # every chunk stored: a lost chunk file is detectable
        if key:
            root = zarr.open_group(str(path), mode="w" if overwrite else "a", zarr_format=2)
            arr = root.create_array(key, overwrite=overwrite, **kwargs)
        else:
            arr = zarr.create_array(store=str(path), zarr_format=2, overwrite=overwrite, **kwargs)
    else:  # pragma: no cover - zarr 2
        if key:
            arr = zarr.open_group(str(path), mode="a").create_dataset(key, overwrite=overwrite, **kwargs)
        else:
            arr = zarr.open_array(str(path), mode="w", **kwargs)
    if voxel_size is not None:
        arr.attrs["resolution"] = [float(v) for v in voxel_size]
    return arr


def write_volume(
    path: str | os.PathLike,
    array: Any,
    key: str | None = None,
    chunks: Sequence[int] | None = None,
    voxel_size: Sequence[float] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a Z×Y×X(×C) volume (numpy, :class:`Volume` or array-like; a 2-D image = depth 1) by suffix.

    Data are streamed slab by slab, so a lazy Volume is never loaded whole. Returns the final path
    (for HDF5 the file). An existing output (or HDF5 key) without ``overwrite`` is an error.
    ``voxel_size`` is (z, y, x) in nm; when ``None`` the input's own voxel size is kept.
    """
    vol = as_volume(array)
    if vol.size == 0:
        raise InputError(f"nothing to write to {path}: the volume is empty (shape {vol.shape})")
    if voxel_size is None:
        voxel_size = vol.voxel_size
    if voxel_size is not None and len(voxel_size) != 3:
        raise InputError(f"voxel_size must be (z, y, x), got {tuple(voxel_size)}")
    p, key = split_container_key(Path(path), key)
    suffix = p.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        with atomic_path(p, overwrite=overwrite) as tmp:
            _write_tiff(tmp, vol, voxel_size)
    elif suffix in HDF5_SUFFIXES:
        _write_hdf5(p, vol, key or "data", chunks, voxel_size, overwrite)
    elif suffix in ZARR_SUFFIXES:
        with atomic_path(p, overwrite=overwrite) as tmp:
            arr = create_zarr(tmp, vol.shape, vol.dtype, chunks, voxel_size, key=key)
            _fill(arr, vol, arr.chunks[0])
    elif suffix in N5_SUFFIXES:
        raise InputError(f"writing N5 ({p}) is not supported: write .zarr (Zarr v2) instead")
    elif suffix == "":
        with atomic_path(p, overwrite=overwrite, kind="png") as tmp:  # replaces only a folder of PNG slices
            _write_png_folder(tmp, vol)
    else:
        raise InputError(f"cannot write {suffix!r} ({p}): supported outputs are {WRITE_SUPPORTED}")
    return p


def _fill(target: Any, vol: Volume, chunk_z: int) -> None:
    """Copy ``vol`` into ``target`` in Z slabs aligned to the target's Z chunks."""
    chunk_z = max(1, int(chunk_z))
    for sl, block in vol.iter_chunks((max(chunk_z, slab_depth(vol) // chunk_z * chunk_z),)):
        target[sl] = block


def _write_tiff(tmp: Path, vol: Volume, voxel_size: Sequence[float] | None) -> None:
    import tifffile

    c = vol.channels
    photometric = "rgb" if c in (3, 4) and vol.dtype in (np.uint8, np.uint16) else "minisblack"
    metadata: dict[str, Any] = {"axes": "ZYXS" if c else "ZYX"}
    if voxel_size is not None:
        metadata["voxel_size"] = [float(v) for v in voxel_size]
    pages = (vol[z] for z in range(vol.shape[0]))
    tifffile.imwrite(
        tmp,
        pages,
        shape=vol.shape,
        dtype=vol.dtype,
        photometric=photometric,
        planarconfig="contig" if c else None,
        compression="zlib",
        metadata=metadata,
        bigtiff=vol.size * vol.dtype.itemsize > 2**31,
    )


def _write_hdf5(
    p: Path, vol: Volume, key: str, chunks: Sequence[int] | None, voxel_size: Sequence[float] | None, overwrite: bool
) -> None:
    import h5py

    chunk_t = _normalize_chunks(chunks, vol.shape)

    def create(f: Any, name: str) -> None:
        ds = f.create_dataset(
            name, shape=vol.shape, dtype=vol.dtype, chunks=chunk_t, compression="gzip", compression_opts=4
        )
        if voxel_size is not None:
            ds.attrs["resolution"] = np.asarray(voxel_size, dtype=np.float64)
        _fill(ds, vol, chunk_t[0])

    if not p.exists():
        with atomic_path(p, overwrite=overwrite) as tmp:
            f = h5py.File(tmp, "w")
            with _reserved(f, tmp, vol.size * vol.dtype.itemsize, p):
                create(f, key)
        return
    try:
        f = h5py.File(p, "r+")
    except OSError as err:
        raise InputError(
            f"cannot add {key!r} to {p}: it is not a writable HDF5 file ({str(err).splitlines()[0]})"
        ) from None
    with _reserved(f, p, vol.size * vol.dtype.itemsize, p):
        if key in f and not overwrite:
            raise InputError(
                f"{p} already has dataset {key!r}: pass --overwrite (overwrite=True) or choose another key"
            )
        parent = key.rsplit("/", 1)[0] if "/" in key else ""
        tmp_name = f"{parent}/.{key.rsplit('/', 1)[-1]}.tmp-{uuid.uuid4().hex[:8]}".lstrip("/")
        try:
            create(f, tmp_name)
        except BaseException:
            if tmp_name in f:
                del f[tmp_name]
            raise
        if key in f:
            del f[key]
        f.move(tmp_name, key)


@contextlib.contextmanager
def _reserved(f: Any, path: Path, nbytes: int, output: Path) -> Iterator[None]:
    """Run the block with ``nbytes`` (plus 2 % and 64 KB of metadata) allocated on disk for the open HDF5 file ``f`` at
    ``path``, then close it and give back what it did not use. HDF5 crashes the process (SIGSEGV) when it closes a
    file whose writes met a full disk, so a lack of space must surface before it writes: here, as a one-line
    :class:`~slicewise.errors.WriteError` (:func:`slicewise.utils.atomic.reserve_space`)."""
    before, reserved = os.path.getsize(path), False
    try:
        reserve_space(path, before + nbytes + nbytes // 50 + 2**16, output)
        reserved = True
        yield
    finally:
        used = None
        if f.id.valid:
            if reserved:
                f.flush()
                used = max(int(f.id.get_filesize()), before)
            f.close()
        if used is not None:
            os.truncate(path, used)


def _write_png_folder(tmp: Path, vol: Volume) -> None:
    from PIL import Image

    if (
        vol.dtype not in (np.uint8, np.uint16)
        or (vol.channels not in (None, 3, 4))
        or (vol.channels and vol.dtype != np.uint8)
    ):
        raise InputError(
            f"a PNG folder holds uint8 gray/RGB or uint16 gray slices, not {vol.dtype} with "
            f"{vol.channels or 1} channel(s): write .tif, .h5 or .zarr instead"
        )
    tmp.mkdir(parents=True)
    width = max(4, len(str(vol.shape[0] - 1)))
    for z in range(vol.shape[0]):
        Image.fromarray(vol[z]).save(tmp / f"slice_{z:0{width}d}.png")
