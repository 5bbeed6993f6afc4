""":func:`as_volume`: whatever a caller passes as a volume (a :class:`Volume`, a path, an array-like) → a
:class:`Volume`. It sits above the readers (a path is opened with :func:`open_volume`) and below the checks
and writers that accept any of these."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from slicewise.data.io.readers import open_volume
from slicewise.data.io.volume import Volume, attrs_voxel_size
from slicewise.errors import InputError


def as_volume(x: Any, key: str | None = None) -> Volume:
    """Wrap ``x`` as a :class:`Volume`: a Volume is returned as is, a path is opened with :func:`open_volume`
    (``key`` for HDF5/Zarr/N5 containers), an array-like (numpy, h5py/zarr array) is wrapped without copying.
    A 2-D array is an image of depth 1; a 3-D array is Z×Y×X (use ``x[None]`` for one RGB image)."""
    if isinstance(x, Volume):
        return x
    if isinstance(x, (str, os.PathLike)):
        return open_volume(x, key=key)
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().numpy()
    if not (hasattr(x, "shape") and hasattr(x, "dtype") and hasattr(x, "__getitem__")):
        x = np.asarray(x)
    if len(x.shape) not in (2, 3, 4):
        raise InputError(f"expected a 2-D image or a Z×Y×X(×C) volume, got an array of shape {tuple(x.shape)}")
    return Volume(x, add_depth=len(x.shape) == 2, voxel_size=attrs_voxel_size(getattr(x, "attrs", None)))
