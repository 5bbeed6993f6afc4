"""Instances from probabilities: connected components or seeded watershed, 2-D per slice or 3-D.

Input: probabilities ``(C, Z, Y, X)`` as written by :func:`slicewise.infer.predict` (channel names
``class0 … classN-1`` then head names such as ``boundary`` / ``distance``), a single foreground map
``(Z, Y, X)``, or a path to such a file: ``.zarr`` / ``.h5`` with key ``probabilities`` by default,
channel-first, channel names from the ``channels`` attribute; ``.tif`` as ``predict`` writes it,
channel-last ``Z×Y×X×C`` (the data layer's volume layout) or a ``Z×Y×X`` foreground map.
Channels are chosen by index or by name:

- foreground: ``foreground_channel`` (index or name); default ``1 − P(class0)`` (every non-background
  class; with one channel, that channel).
- boundary: ``boundary_channel``; default the channel named ``boundary``.
- distance: ``distance_channel``; default the channel named ``distance``, else the Euclidean
  distance transform of the foreground mask (per slice when ``per_slice``).

Modes (``fg = P_fg > foreground_threshold`` is the mask in every mode):

- ``cc``: connected components of ``fg`` (face connectivity).
- ``watershed`` with ``use="boundary"``: seeds are connected components of
  ``P_fg > seed_threshold`` (default: ``foreground_threshold``) and ``boundary < boundary_threshold``;
  flooded on the boundary map inside ``fg`` (PyTorch Connectomics' ``bc_watershed`` scheme).
- ``watershed`` with ``use="distance"``: seeds are ``distance > seed_threshold`` if given, else the
  local maxima of the distance map (``min_distance`` apart); flooded on ``−distance`` inside ``fg``.

In watershed modes a foreground component without any seed keeps its own id rather than being
dropped. ``per_slice=True`` labels each slice in 2-D (ids unique across slices); otherwise 3-D.
Objects smaller than ``min_size`` voxels (pixels per slice object when ``per_slice``) are removed
and ids are renumbered 1…N. The result is int32 ``(Z, Y, X)``, 0 = background.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import ndimage as ndi

from slicewise.errors import InputError

Mode = Literal["cc", "watershed"]
Use = Literal["boundary", "distance"]
MODES: tuple[str, ...] = ("cc", "watershed")
USES: tuple[str, ...] = ("boundary", "distance")


def read_probabilities(path: str | os.PathLike, key: str | None = None) -> tuple[np.ndarray, list[str] | None]:
    """Load a probability file written by ``predict``: the array and its channel names (if stored)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"probability file {p} does not exist: check the path")
    sfx = p.suffix.lower()
    names: list[str] | None = None
    if sfx == ".zarr":
        import zarr

        node = zarr.open(str(p), mode="r")
        if isinstance(node, zarr.Group):
            k = key or "probabilities"
            if k not in node:
                raise InputError(f"{p} has no array {k!r} (it holds {', '.join(sorted(node.array_keys()))}): pass --key")
            names = node.attrs.get("channels")
            node = node[k]
        return np.asarray(node[...]), names
    if sfx in (".h5", ".hdf5", ".hdf"):
        import h5py

        with h5py.File(p, "r") as f:
            k = key or "probabilities"
            if k not in f:
                raise InputError(f"{p} has no dataset {k!r} (it holds {', '.join(sorted(f.keys()))}): pass --key")
            raw = f.attrs.get("channels")
            names = json.loads(raw) if raw is not None else None
            return np.asarray(f[k][...]), names
    from slicewise.data.io import open_volume

    arr = np.asarray(open_volume(p, key=key)[...])
    return (np.moveaxis(arr, -1, 0) if arr.ndim == 4 else arr), None


def _index(sel: int | str, names: Sequence[str] | None, n: int, what: str) -> int:
    if isinstance(sel, str) and not sel.lstrip("-").isdigit():
        if not names or sel not in names:
            have = ", ".join(names) if names else "none stored: give an index"
            raise InputError(f"{what} channel {sel!r} is not among the channel names ({have})")
        return list(names).index(sel)
    i = int(sel)
    if not -n <= i < n:
        raise InputError(f"{what} channel {i} is out of range: the input has {n} channels (0..{n - 1})")
    return i % n


def _named(names: Sequence[str] | None, name: str) -> int | None:
    return list(names).index(name) if names and name in names else None


def _foreground(prob: np.ndarray, sel: int | str | None, names: Sequence[str] | None) -> np.ndarray:
    if sel is not None:
        return prob[_index(sel, names, len(prob), "foreground")]
    if len(prob) == 1:
        return prob[0]
    background = _named(names, "class0")
    return 1.0 - prob[0 if background is None else background]


def _per_slice(fn: Callable[..., np.ndarray], per_slice: bool, *arrays: np.ndarray) -> np.ndarray:
    """Apply a labelling ``fn`` to the whole volume or to each slice with ids offset to stay unique."""
    if not per_slice:
        return fn(*arrays).astype(np.int32)
    out = np.zeros(arrays[0].shape, np.int32)
    offset = 0
    for z in range(arrays[0].shape[0]):
        lab = fn(*(a[z] for a in arrays)).astype(np.int32)
        out[z] = np.where(lab > 0, lab + offset, 0)
        offset += int(lab.max())
    return out


def _label(mask: np.ndarray) -> np.ndarray:
    return ndi.label(mask)[0]


def _flood(surface: np.ndarray, seeds: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Seeded watershed of ``surface`` within ``mask``; unseeded mask components keep their own id."""
    from skimage.segmentation import watershed

    markers = _label(seeds & mask)
    lab = watershed(surface, markers=markers, mask=mask) if markers.max() > 0 else np.zeros(mask.shape, np.int32)
    orphans = _label(mask & (lab == 0))
    return np.where(orphans > 0, orphans + lab.max(), lab)


def _distance_seeds(dist: np.ndarray, mask: np.ndarray, min_distance: int) -> np.ndarray:
    from skimage.feature import peak_local_max

    seeds = np.zeros(mask.shape, bool)
    if mask.any():
        peaks = peak_local_max(dist, min_distance=max(1, int(min_distance)), labels=_label(mask), exclude_border=False)
        seeds[tuple(peaks.T)] = True
    return seeds


def remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Drop objects with fewer than ``min_size`` voxels and renumber ids 1…N (int32)."""
    from skimage.segmentation import relabel_sequential

    labels = labels.astype(np.int32, copy=False)
    if min_size > 1:
        counts = np.bincount(labels.ravel())
        small = counts < int(min_size)
        small[0] = False
        labels = np.where(small[labels], 0, labels)
    return relabel_sequential(labels)[0].astype(np.int32)


def segment(
    prob: Any,
    *,
    mode: Mode = "cc",
    use: Use = "boundary",
    foreground_channel: int | str | None = None,
    boundary_channel: int | str | None = None,
    distance_channel: int | str | None = None,
    foreground_threshold: float = 0.5,
    boundary_threshold: float = 0.5,
    seed_threshold: float | None = None,
    min_distance: int = 3,
    per_slice: bool = False,
    min_size: int = 0,
    channel_names: Sequence[str] | None = None,
    key: str | None = None,
    output: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> np.ndarray:
    """Instance labels ``(Z, Y, X)`` int32 from probabilities (see the module docstring for the rules).

    ``prob``: ``(C, Z, Y, X)`` or ``(Z, Y, X)`` array, or a path (``key`` selects the dataset).
    ``channel_names`` override the names stored in the file. With ``output``, the labels are also
    written there (TIFF / HDF5 / Zarr through the data layer; existing files need ``overwrite``).
    """
    if mode not in MODES:
        raise InputError(f"mode {mode!r} is unknown: use one of {', '.join(MODES)}")
    if use not in USES:
        raise InputError(f"use {use!r} is unknown: use one of {', '.join(USES)}")
    if min_size < 0:
        raise InputError(f"min_size {min_size} must be >= 0 voxels")
    if output is not None:
        from slicewise.utils.atomic import check_output_path

        check_output_path(output, overwrite=overwrite)
    names: Sequence[str] | None = None
    if isinstance(prob, (str, os.PathLike)):
        prob, names = read_probabilities(prob, key)
    prob = np.asarray(prob)
    if prob.ndim == 3:
        prob = prob[None]
    if prob.ndim != 4:
        raise InputError(f"probabilities have shape {prob.shape}: expected (C, Z, Y, X) or a (Z, Y, X) foreground map")
    names = list(channel_names) if channel_names is not None else names
    if names is not None and len(names) != len(prob):
        raise InputError(f"{len(names)} channel names for {len(prob)} channels: give one name per channel")
    prob = prob.astype(np.float32, copy=False)
    fg_p = _foreground(prob, foreground_channel, names)
    fg = fg_p > float(foreground_threshold)

    if mode == "cc":
        labels = _per_slice(_label, per_slice, fg)
    elif use == "boundary":
        sel = boundary_channel if boundary_channel is not None else _named(names, "boundary")
        if sel is None:
            raise InputError("watershed on boundaries needs a boundary channel: pass --boundary-channel (index or name) or use distance")
        b = prob[_index(sel, names, len(prob), "boundary")]
        t_seed = float(foreground_threshold if seed_threshold is None else seed_threshold)
        seeds = (fg_p > t_seed) & (b < float(boundary_threshold))
        labels = _per_slice(_flood, per_slice, b, seeds, fg)
    else:
        sel = distance_channel if distance_channel is not None else _named(names, "distance")
        if sel is not None:
            dist = prob[_index(sel, names, len(prob), "distance")]
        elif per_slice:
            dist = np.stack([ndi.distance_transform_edt(m) for m in fg]).astype(np.float32)
        else:
            dist = ndi.distance_transform_edt(fg).astype(np.float32)

        def _ws(d: np.ndarray, m: np.ndarray) -> np.ndarray:
            seeds = (d > float(seed_threshold)) if seed_threshold is not None else _distance_seeds(d, m, min_distance)
            return _flood(-d, seeds, m)

        labels = _per_slice(_ws, per_slice, dist, fg)
    labels = remove_small(labels, min_size)
    if output is not None:
        from slicewise.data.io import write_volume

        write_volume(output, labels, overwrite=overwrite)
    return labels
