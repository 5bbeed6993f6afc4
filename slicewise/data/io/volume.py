"""The lazy :class:`Volume` (Z×Y×X gray or Z×Y×X×C colour), :func:`as_volume`, and the metadata helpers
shared by the readers (voxel size from HDF5/Zarr attributes) and writers (slab depth).

Voxel sizes are ``(z, y, x)`` in nanometres; ``None`` when unknown.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from slicewise.errors import InputError
from slicewise.utils import progress


class Volume:
    """A lazy Z×Y×X (gray) or Z×Y×X×C (colour, C last) volume.

    Indexing follows numpy basic indexing (ints, slices with any step, ``...``) plus an
    integer list/array on the first axis, and returns numpy arrays; only the addressed
    slices/chunks are read from disk. ``voxel_size`` is ``(z, y, x)`` in nm or ``None``.
    """

    def __init__(
        self,
        array: Any,
        *,
        voxel_size: Sequence[float] | None = None,
        source: str = "array",
        add_depth: bool = False,
        closer: Any = None,
        reopen: tuple[str, str | None] | None = None,
    ) -> None:
        self._array = array
        self._reopen = reopen
        self._add_depth = add_depth
        self._closer = closer
        inner = tuple(int(s) for s in array.shape)
        self.shape: tuple[int, ...] = (1, *inner) if add_depth else inner
        self.dtype = np.dtype(array.dtype)
        self.voxel_size: tuple[float, float, float] | None = (
            tuple(float(v) for v in voxel_size) if voxel_size is not None else None  # type: ignore[assignment]
        )
        self.source = source
        self.intensity_checks: set[tuple[Any, ...]] = set()  # settings check_raw passed with on this volume
        if self.ndim not in (3, 4):
            raise InputError(f"{source}: a volume must be Z×Y×X or Z×Y×X×C, got shape {self.shape}")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def channels(self) -> int | None:
        """Number of colour channels (last axis) or ``None`` for a gray volume."""
        return self.shape[3] if self.ndim == 4 else None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"Volume(shape={self.shape}, dtype={self.dtype}, voxel_size={self.voxel_size}, source={self.source!r})"

    def __getitem__(self, key: Any) -> np.ndarray:
        key = _expand_key(key, self.ndim)
        if isinstance(key[0], (list, np.ndarray)):
            zs = np.asarray(key[0])
            if zs.dtype == bool:
                zs = np.flatnonzero(zs)
            parts = [self[(int(z), *key[1:])] for z in zs.ravel()]
            if not parts:
                return np.zeros((0, *self[(0, *key[1:])].shape), self.dtype)
            return np.stack(parts).reshape(*zs.shape, *parts[0].shape)
        pos: list[int | slice] = []
        flip: list[int] = []
        out_axis = 0
        for k, n in zip(key, self.shape):
            if isinstance(k, slice):
                start, stop, step = k.indices(n)
                rng = range(start, stop, step)
                if step < 0 and len(rng) > 0:
                    pos.append(slice(rng[-1], rng[0] + 1, -step))
                    flip.append(out_axis)
                else:
                    pos.append(slice(rng.start, rng.stop, rng.step) if len(rng) else slice(0, 0, 1))
                out_axis += 1
            else:
                i = operator.index(k)
                if not -n <= i < n:
                    raise IndexError(f"index {i} is out of bounds for axis of size {n}")
                pos.append(i % n)
        out = self._read(tuple(pos))
        return np.flip(out, axis=flip) if flip else out

    def _read(self, pos: tuple[int | slice, ...]) -> np.ndarray:
        if any(isinstance(p, slice) and p.stop == p.start for p in pos):
            shape = [len(range(*p.indices(n))) for p, n in zip(pos, self.shape) if isinstance(p, slice)]
            return np.zeros(shape, self.dtype)
        try:
            if self._add_depth:
                inner = np.asarray(self._array[pos[1:]])
                return inner[np.newaxis][(pos[0],)]
            return np.asarray(self._array[pos])
        except (InputError, IndexError, MemoryError):
            raise
        except Exception as err:  # codec, HDF5 and zarr errors of a file that opened but cannot be read
            from slicewise.data.io.checks import damaged

            raise damaged(self.source, err) from None

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        a = self[...]
        return a.astype(dtype, copy=False) if dtype is not None else a

    def numpy(self) -> np.ndarray:
        """The whole volume as a numpy array (loads everything)."""
        return self[...]

    to_numpy = numpy

    def iter_chunks(
        self, chunk_shape: int | Sequence[int | None] | None = None, desc: str = ""
    ) -> Iterator[tuple[tuple[slice, ...], np.ndarray]]:
        """Yield ``(slices, block)`` over Z (and Y, X): ``chunk_shape`` = ``(cz[, cy[, cx]])``,
        ``None`` entries take the whole axis; channels are always whole. Default: ~64 MB slabs in Z."""
        if chunk_shape is None:
            chunk_shape = (slab_depth(self),)
        if isinstance(chunk_shape, (int, np.integer)):
            chunk_shape = (int(chunk_shape),)
        cs = list(chunk_shape) + [None] * (3 - len(chunk_shape))
        steps = [n if c is None else max(1, int(c)) for c, n in zip(cs, self.shape[:3])]
        starts = [range(0, n, s) for n, s in zip(self.shape[:3], steps)]
        grid = [(z, y, x) for z in starts[0] for y in starts[1] for x in starts[2]]
        for z, y, x in progress(grid, desc=desc, total=len(grid), disable=None if desc else True):
            sl = tuple(slice(o, min(o + s, n)) for o, s, n in zip((z, y, x), steps, self.shape[:3]))
            yield sl, self[sl]

    def __getstate__(self) -> dict[str, Any]:
        """Pickle file-backed volumes as (path, key) so DataLoader workers re-open their own handle."""
        if self._reopen is None:
            return self.__dict__
        return {"_reopen": self._reopen}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if set(state) == {"_reopen"}:
            from slicewise.data.io.readers import open_volume

            path, key = state["_reopen"]
            state = open_volume(path, key=key).__dict__
        self.__dict__.update(state)

    def close(self) -> None:
        """Release the open file handle (HDF5 / TIFF), if any."""
        if self._closer is not None:
            self._closer.close()
            self._closer = None

    def __enter__(self) -> Volume:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _expand_key(key: Any, ndim: int) -> tuple[Any, ...]:
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is None for k in key):
        raise IndexError("Volume indexing does not support np.newaxis: index the result instead")
    if any(isinstance(k, (list, np.ndarray)) for k in key[1:]):
        raise IndexError("Volume supports integer lists/arrays on the first (Z) axis only")
    n_ell = sum(k is Ellipsis for k in key)
    if n_ell > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if n_ell:
        i = next(j for j, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (ndim - len(key) + 1) + key[i + 1 :]
    if len(key) > ndim:
        raise IndexError(f"too many indices for a {ndim}-d volume: {len(key)} were given")
    return key + (slice(None),) * (ndim - len(key))


def as_volume(x: Any, key: str | None = None) -> Volume:
    """Wrap ``x`` as a :class:`Volume`: a Volume is returned as is, a path is opened with
    :func:`open_volume` (``key`` for HDF5/Zarr/N5 containers), an array-like (numpy, h5py/zarr array) is wrapped without copying.
    A 2-D array is an image of depth 1; a 3-D array is Z×Y×X (use ``x[None]`` for one RGB image)."""
    if isinstance(x, Volume):
        return x
    if isinstance(x, (str, os.PathLike)):
        from slicewise.data.io.readers import open_volume

        return open_volume(x, key=key)
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().numpy()
    if not (hasattr(x, "shape") and hasattr(x, "dtype") and hasattr(x, "__getitem__")):
        x = np.asarray(x)
    if len(x.shape) not in (2, 3, 4):
        raise InputError(f"expected a 2-D image or a Z×Y×X(×C) volume, got an array of shape {tuple(x.shape)}")
    return Volume(x, add_depth=len(x.shape) == 2, voxel_size=attrs_voxel_size(getattr(x, "attrs", None)))


MAX_COLOURS = 4  # RGB(A): a longer last axis of an undeclared 4-d array is not colour


def check_channel_last(shape: Sequence[int], source: str) -> None:
    """Refuse (one line) a 4-d array whose axes no metadata declares and whose last axis is too long to be colour
    (> :data:`MAX_COLOURS`): reading it as Z×Y×X×C would be a guess (it is most likely channel-first C, Z, Y, X)."""
    if len(shape) == 4 and int(shape[-1]) > MAX_COLOURS:
        raise InputError(
            f"{source}: a 4-d array of shape {tuple(int(n) for n in shape)} without axes metadata: read as "
            f"Z×Y×X×C it would have {int(shape[-1])} colour channels, so its layout would be a guess: save "
            f"volumes as Z×Y×X or Z×Y×X×C (colour last, ≤ {MAX_COLOURS}), e.g. numpy.moveaxis(a, 0, -1) for "
            f"channel-first data, or as OME-Zarr with named axes"
        )


def attrs_voxel_size(attrs: Any) -> tuple[float, float, float] | None:
    """Voxel size (z, y, x, nm) from HDF5/Zarr attributes: ``resolution`` or ``voxel_size`` (nm, CREMI),
    ``element_size_um`` (ilastik, µm); ``None`` when absent or unreadable."""
    if attrs is None:
        return None
    try:
        for name, scale in (("resolution", 1.0), ("voxel_size", 1.0), ("element_size_um", 1e3)):
            if name in attrs:
                v = [float(x) * scale for x in np.ravel(attrs[name])]
                if len(v) >= 3:
                    return tuple(v[-3:])  # type: ignore[return-value]
    except (TypeError, ValueError):
        return None
    return None


def slab_depth(vol: Volume, budget: int = 64 << 20) -> int:
    """Number of Z slices in about ``budget`` bytes (at least 1)."""
    per_slice = max(1, vol.size // max(1, vol.shape[0]) * vol.dtype.itemsize)
    return max(1, budget // per_slice)
