"""OME-Zarr (OME-NGFF v0.4, Zarr format 2): read multiscale images as volumes, write NGFF metadata and pyramids.

This is the one place that knows the NGFF layout. Axes are named ``c`` (channel), ``z``, ``y``, ``x``
(space, nanometre). Level ``l`` of a pyramid has the scale ``voxel_size · (1, 2^l, 2^l)`` in (z, y, x):
z is never downsampled (EM sections are thick), channels never.

CONTRACT (being implemented; signatures are fixed so the writer and the reader can be built in parallel).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

DOWNSCALE = 2


def write_image_metadata(group: Any, *, axes: Sequence[str], voxel_size: Sequence[float] | None, n_levels: int,
                         channel_names: Sequence[str] | None = None, name: str = "",
                         method: str = "mean", downscale: int = DOWNSCALE) -> None:
    """Write ``multiscales`` (v0.4) on a Zarr-v2 ``group`` whose arrays ``"0"`` … ``str(n_levels-1)`` exist.

    ``axes``: e.g. ``("c", "z", "y", "x")`` or ``("z", "y", "x")``. ``voxel_size``: (z, y, x) nm, or
    ``None`` (scale 1, unit omitted). With ``channel_names``, also an ``omero`` block whose channel
    ``label`` s are the names (napari shows them as layer names).
    """
    raise NotImplementedError


def build_pyramid(group: Any, *, method: Literal["mean", "mode", "stride"], n_levels: int | None = None,
                  min_size: int = 64, downscale: int = DOWNSCALE) -> int:
    """Write levels ``"1"``, ``"2"``, … of ``group`` from array ``"0"`` (last two axes Y, X), block by block
    (memory bounded by a block, never the volume), halving Y and X per level until the smaller of them
    would drop below ``min_size`` or ``n_levels`` exist. ``mean`` for probabilities (computed in float,
    rounded back for integer dtypes), ``mode`` for label images, ``stride`` = every 2nd pixel. Returns the
    number of levels (≥ 1)."""
    raise NotImplementedError


def write_labels_metadata(root: Any, name: str, *, voxel_size: Sequence[float] | None, n_levels: int,
                          downscale: int = DOWNSCALE) -> None:
    """Declare ``root/labels/<name>`` (arrays ``0`` … with axes z, y, x) as an NGFF label image: the
    ``labels`` list in ``root/labels`` attributes, ``multiscales`` and ``image-label`` (source ``../../``)."""
    raise NotImplementedError


def is_ome_zarr(path: Any) -> bool:
    """True if ``path`` is a Zarr group carrying NGFF ``multiscales`` metadata."""
    raise NotImplementedError


def open_ome_zarr(path: Any, level: int = 0) -> Any:
    """Open level ``level`` of an NGFF image as a lazy :class:`slicewise.data.io.Volume` (Z×Y×X or Z×Y×X×C),
    voxel size from the level's ``scale`` (converted to nm from the axis unit)."""
    raise NotImplementedError
