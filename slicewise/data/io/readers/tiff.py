"""Multi-page TIFF (``.tif`` / ``.tiff``), read page by page through tifffile's zarr store of the first
series, so compressed and tiled files are lazy too. ImageJ hyperstacks with a channel axis other than the
last (``CYX``, ``ZCYX``) are not supported: save them as Z×Y×X(×C). The voxel size comes from the JSON
description (``voxel_size``) or from the resolution tags with ImageJ units, converted to nm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from slicewise.data.io.integrity import damaged, tifffile_warnings
from slicewise.data.io.lazy import Key, LazyView
from slicewise.data.io.volume import Volume
from slicewise.errors import InputError

_NM_PER_UNIT = {
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometers": 1.0,
    "um": 1e3,
    "µm": 1e3,
    "\u03bcm": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "mm": 1e6,
    "cm": 1e7,
    "m": 1e9,
}


def open_tiff(p: Path, key: str | None = None) -> Volume:
    """Open a multi-page TIFF lazily as Z×Y×X(×C) (a single page: depth 1); ``key`` is unused (no datasets)."""
    import tifffile
    import zarr

    with tifffile_warnings() as problems:
        try:
            tif = tifffile.TiffFile(p)
        except (tifffile.TiffFileError, OSError, ValueError, EOFError) as err:
            raise InputError(
                f"cannot read {p} as TIFF ({' '.join(str(err).split())[:160]}): the file is damaged, "
                f"incomplete or not a TIFF: re-export or re-download it"
            ) from None
        try:
            series = tif.series[0]
            axes, shape = series.axes, tuple(series.shape)
            _ = len(tif.pages)
        except Exception as err:
            tif.close()
            raise damaged(p, err) from None
    if problems:
        tif.close()
        raise InputError(
            f"cannot read {p}: the file is damaged or incomplete (tifffile: {problems[0][:120]}): "
            f"re-export or re-download it"
        )
    keep = [i for i, (a, n) in enumerate(zip(axes, shape)) if n > 1 or a in "YXS"]
    axes_k = "".join(axes[i] for i in keep)
    plain = axes_k[-3:] == "YXS" or axes_k[-2:] == "YX"
    n_lead = len(axes_k) - (3 if axes_k.endswith("S") else 2)
    if not plain or n_lead > 1 or "C" in axes_k:
        tif.close()
        raise InputError(
            f"{p}: TIFF axes {axes!r} (shape {shape}) are not Z×Y×X(×C): "
            f"save the stack as Z×Y×X or Z×Y×X×C (color last) and try again"
        )
    arr = zarr.open(series.aszarr(), mode="r")
    if len(keep) != len(shape):
        arr = _Squeezed(arr, keep)
    return Volume(
        arr,
        voxel_size=_tiff_voxel_size(tif),
        source=str(p),
        add_depth=n_lead == 0,
        closer=tif,
        reopen=(open_tiff, (p,)),
    )


class _Squeezed(LazyView):
    """View of an array-like with singleton axes dropped (``keep`` = axes retained)."""

    def __init__(self, array: Any, keep: list[int]) -> None:
        self._array, self._keep = array, keep
        self.shape = tuple(array.shape[i] for i in keep)
        self.dtype = array.dtype

    def _read(self, key: Key) -> np.ndarray:
        full: list[Any] = [0] * len(self._array.shape)
        for i, k in zip(self._keep, key):
            full[i] = k
        return np.asarray(self._array[tuple(full)])


def _tiff_voxel_size(tif: Any) -> tuple[float, float, float] | None:
    try:
        md = tif.shaped_metadata
        if md and "voxel_size" in md[0]:
            return tuple(float(v) for v in md[0]["voxel_size"])  # type: ignore[return-value]
        page = tif.pages[0]
        xres, yres = page.tags.get("XResolution"), page.tags.get("YResolution")
        if xres is None or yres is None:
            return None
        x_px, y_px = xres.value[0] / xres.value[1], yres.value[0] / yres.value[1]
        ij = tif.imagej_metadata
        if ij:
            scale = _NM_PER_UNIT.get(str(ij.get("unit", "")).strip().lower())
            if scale is None or "spacing" not in ij:
                return None
            return (float(ij["spacing"]) * scale, scale / y_px, scale / x_px)
        return None
    except (KeyError, ValueError, ZeroDivisionError, TypeError, IndexError):
        return None
