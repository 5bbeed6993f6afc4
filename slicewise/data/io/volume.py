"""The lazy :class:`Volume` (Z×Y×X gray or Z×Y×X×C color) and the metadata helpers
shared by the readers (voxel size from HDF5/Zarr attributes) and writers (slab depth).

Voxel sizes are ``(z, y, x)`` in nanometers; ``None`` when unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from slicewise.data.grid import block_grid
from slicewise.data.io.integrity import damaged
from slicewise.data.io.lazy import Key, LazyView
from slicewise.errors import InputError
from slicewise.utils import progress


class Volume(LazyView):
    """A lazy Z×Y×X (gray) or Z×Y×X×C (color, C last) volume.

    Indexing follows numpy basic indexing (ints, slices with any step, ``...``) plus an
    integer list/array on the first axis (:class:`~slicewise.data.io.lazy.LazyView`), and returns numpy
    arrays; only the addressed slices/chunks are read from disk. ``voxel_size`` is ``(z, y, x)`` in nm or
    ``None``. ``reopen``: ``(opener, args)``, a module-level function and its arguments that open the same
    volume again; a file-backed volume is pickled as that recipe, so DataLoader workers open their own handle.
    """

    what = "volume"

    def __init__(
        self,
        array: Any,
        *,
        voxel_size: Sequence[float] | None = None,
        source: str = "array",
        add_depth: bool = False,
        closer: Any = None,
        reopen: tuple[Callable[..., Volume], tuple[Any, ...]] | None = None,
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
    def channels(self) -> int | None:
        """Number of color channels (last axis) or ``None`` for a gray volume."""
        return self.shape[3] if self.ndim == 4 else None

    def __repr__(self) -> str:
        return f"Volume(shape={self.shape}, dtype={self.dtype}, voxel_size={self.voxel_size}, source={self.source!r})"

    def _read(self, key: Key) -> np.ndarray:
        try:
            if self._add_depth:
                inner = np.asarray(self._array[key[1:]])
                return inner[np.newaxis][(key[0],)]
            return np.asarray(self._array[key])
        except (InputError, IndexError, MemoryError):
            raise
        except Exception as err:  # codec, HDF5 and zarr errors of a file that opened but cannot be read
            raise damaged(self.source, err) from None

    to_numpy = LazyView.numpy

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
        grid = block_grid(self.shape[:3], steps)
        for box in progress(grid, desc=desc, total=len(grid), disable=None if desc else True):
            yield box, self[box]

    def __reduce_ex__(self, protocol: Any) -> Any:
        """File-backed volumes pickle as their ``reopen`` recipe (each process opens its own handle)."""
        if self._reopen is None:
            return super().__reduce_ex__(protocol)
        opener, args = self._reopen
        return opener, tuple(args)

    def close(self) -> None:
        """Release the open file handle (HDF5 / TIFF), if any."""
        if self._closer is not None:
            self._closer.close()
            self._closer = None

    def __enter__(self) -> Volume:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


MAX_COLORS = 4  # RGB(A): a longer last axis of an undeclared 4-d array is not color


def check_channel_last(shape: Sequence[int], source: str) -> None:
    """Refuse (one line) a 4-d array whose axes no metadata declares and whose last axis is too long to be color
    (> :data:`MAX_COLORS`): reading it as Z×Y×X×C would be a guess (it is most likely channel-first C, Z, Y, X)."""
    if len(shape) == 4 and int(shape[-1]) > MAX_COLORS:
        raise InputError(
            f"{source}: a 4-d array of shape {tuple(int(n) for n in shape)} without axes metadata: read as "
            f"Z×Y×X×C it would have {int(shape[-1])} color channels, so its layout would be a guess: save "
            f"volumes as Z×Y×X or Z×Y×X×C (color last, ≤ {MAX_COLORS}), e.g. numpy.moveaxis(a, 0, -1) for "
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
