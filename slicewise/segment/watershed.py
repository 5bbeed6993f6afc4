"""Seeded watershed of one block: seeds, flooding surface and flooding with a halo of context.

- ``use="boundary"``: seeds are ``P_fg > seed_threshold`` (default: ``foreground_threshold``) and
  ``boundary < boundary_threshold``; flooded on the boundary map inside the mask (PyTorch Connectomics'
  ``bc_watershed`` scheme).
- ``use="distance"``: seeds are ``distance > seed_threshold`` (a distance >= 0) if given, else the local
  maxima of the distance map (``min_distance`` apart); flooded on ``−distance`` inside the mask. The distance
  is the distance channel, else the Euclidean distance transform of the mask (per slice when ``per_slice``).

Plateaus of the surface are flooded in C order (:func:`tie_broken`), so equal values cannot make the result
depend on the block cut. The block driver (:mod:`slicewise.segment.blockwise`) gives seeds their global ids.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

from slicewise.data.grid import Box
from slicewise.segment.inputs import RegionReader


def tie_broken(surface: np.ndarray) -> np.ndarray:
    """The rank of each voxel by (surface value, position in C order), int64: equal values become distinct.

    Flooding compares values only, so ranks give the same watershed as the surface except on plateaus,
    which are flooded in C order. skimage's heap has no order among equal values, which would make
    plateaus depend on everything else in the array (and so on the block cut); ranks remove that.
    """
    order = np.argsort(surface, axis=None, kind="stable")
    rank = np.empty(order.size, np.int64)
    rank[order] = np.arange(order.size)
    return rank.reshape(surface.shape)


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


def distance_seeds(dist: np.ndarray, mask: np.ndarray, min_distance: int) -> np.ndarray:
    """Local maxima of ``dist`` at least ``min_distance`` apart within each component of ``mask``, as a mask."""
    from skimage.feature import peak_local_max

    seeds = np.zeros(mask.shape, bool)
    if mask.any():
        labels = ndi.label(mask)[0]
        peaks = peak_local_max(dist, min_distance=max(1, int(min_distance)), labels=labels, exclude_border=False)
        seeds[tuple(peaks.T)] = True
    return seeds


def distance_map(reader: RegionReader, p: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The distance of a block: its distance channel, else the distance transform of mask ``m``."""
    plan = reader.plan
    if plan.distance is not None:
        return p[plan.distance]
    if plan.per_slice:
        return np.stack([ndi.distance_transform_edt(s) for s in m]).astype(np.float32)
    return ndi.distance_transform_edt(m).astype(np.float32)


def seed_mask(reader: RegionReader, box: Box) -> np.ndarray:
    """Seed mask of a block core (computed with the halo where seeds are not voxel-wise)."""
    pl = reader.plan
    if pl.use == "boundary":
        p = reader.probs(box)
        fg_p = reader.foreground(p)
        t_seed = pl.t_fg if pl.t_seed is None else pl.t_seed
        return (fg_p > t_seed) & (p[pl.boundary] < pl.t_boundary) & (fg_p > pl.t_fg)
    big, inner = reader.grown(box)
    p = reader.probs(big)
    m = reader.foreground(p) > pl.t_fg
    dist = distance_map(reader, p, m)
    if pl.t_seed is not None:
        seeds = dist > pl.t_seed
    elif pl.per_slice:
        seeds = np.stack([distance_seeds(d, s, pl.min_distance) for d, s in zip(dist, m)])
    else:
        seeds = distance_seeds(dist, m, pl.min_distance)
    return (seeds & m)[inner]


def flood(reader: RegionReader, box: Box, markers_store: Any) -> np.ndarray:
    """Watershed of a block core with its halo, markers = global seed ids; returns the core's ids (int64)."""
    from skimage.segmentation import watershed

    big, inner = reader.grown(box)
    p = reader.probs(big)
    m = reader.foreground(p) > reader.plan.t_fg
    surface = tie_broken(p[reader.plan.boundary] if reader.plan.use == "boundary" else -distance_map(reader, p, m))
    markers = np.asarray(markers_store[big]).astype(np.int64, copy=False)
    if reader.plan.per_slice:
        out = np.stack(
            [
                watershed(s, markers=k, mask=w) if k.any() else np.zeros(k.shape, np.int64)
                for s, k, w in zip(surface, markers, m)
            ]
        )
    else:
        out = watershed(surface, markers=markers, mask=m) if markers.any() else np.zeros(m.shape, np.int64)
    return np.asarray(out, np.int64)[inner]
